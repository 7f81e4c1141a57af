//! The embeddings request, model-neutral: an OpenAI embeddings body (`/v1/embeddings`) checked against the
//! model's catalogue entry (docs/formats.md, "Embeddings"); [`crate::format::titan`] writes and reads the wire
//! format.
//!
//! Titan embeds one text per request, and OpenAI's `input` may be a list of them: a line becomes one Bedrock
//! record per text, numbered one after another, and the results step joins their answers back into one
//! OpenAI embeddings response, in the order of the list. The record map says how many records a line has.

use crate::catalogue::Embedding;
use crate::error::{shown, Reason, Rejection};
use crate::fingerprint::{self, Fingerprint};
use crate::format::openai_input::{raw_str, Body, EmbeddingInput, JsonText};
use crate::format::titan;
use crate::model::BedrockModel;

/// The most texts one line's `input` may list: OpenAI's limit on one embeddings request.
pub const MAX_INPUTS: usize = 2048;

/// How the vectors of the answer are written: OpenAI's `encoding_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// The little-endian float32 bytes of the vector, in base64.
    Base64,
}

/// A validated embeddings request.
#[derive(Debug)]
pub struct Embeddings<'a> {
    /// The texts, in order, as the line wrote them, each with the hash of its value: each is one Bedrock
    /// record.
    pub inputs: Vec<(JsonText<'a>, u64)>,
    /// The vector length asked for; `None` only when validating without a model.
    pub dimensions: Option<u32>,
    pub encoding: Encoding,
}

fn reject(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::new(reason, field, message)
}

/// Checks an embeddings body for `model` (`None` when validating without one: the checks that need the
/// model's facts are then skipped).
pub fn build<'a>(body: Body<'a>, model: Option<&BedrockModel>) -> Result<Embeddings<'a>, Rejection> {
    let facts: Option<&Embedding> = model.and_then(BedrockModel::embedding);
    let (inputs, single, total) = match body.input {
        None => return Err(reject(Reason::Input, "body.input", "is missing")),
        Some(EmbeddingInput::Invalid(why)) => {
            return Err(reject(
                Reason::Input,
                "body.input",
                format!("must be a text or a list of texts ({why})"),
            ))
        }
        Some(EmbeddingInput::Text(t)) => (vec![Some(t)], true, 1),
        Some(EmbeddingInput::List { items, total }) => (items, false, total),
    };
    if total == 0 {
        return Err(reject(
            Reason::Input,
            "body.input",
            "is an empty list: give at least one text",
        ));
    }
    if total > MAX_INPUTS {
        return Err(reject(
            Reason::Input,
            "body.input",
            format!("lists {total} texts; one request takes at most {MAX_INPUTS}"),
        ));
    }
    let mut texts = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let field = || {
            if single {
                "body.input".to_string()
            } else {
                format!("body.input[{i}]")
            }
        };
        let Some(text) = input else {
            return Err(reject(
                Reason::Input,
                format!("body.input[{i}]"),
                "is a token id or a list of them: Titan embeds text, so send the text itself",
            ));
        };
        if text.raw.is_empty() {
            return Err(reject(
                Reason::Input,
                field(),
                "is empty: Titan embeds text of at least one character",
            ));
        }
        let (hash, bytes) = text.value.map_err(|_| {
            reject(
                Reason::Input,
                field(),
                "is not valid Unicode: it holds a \\u escape of half a surrogate pair (such as \\ud800) \
                 without its other half",
            )
        })?;
        // A text of no more bytes than the limit has no more characters either: only longer ones are counted.
        if let Some(f) = facts.filter(|f| bytes as u64 > f.max_input_chars) {
            let chars = crate::json_text::chars(text.raw).unwrap_or(bytes) as u64;
            if chars > f.max_input_chars {
                return Err(reject(
                    Reason::Input,
                    field(),
                    format!(
                        "is {chars} characters long; {} embeds at most {} characters per text",
                        model.map_or("the model", |m| m.id.as_str()),
                        f.max_input_chars
                    ),
                ));
            }
        }
        texts.push((text, hash));
    }
    let encoding = match body.encoding_format {
        None => Encoding::Float,
        Some(raw) if raw.get() == "null" => Encoding::Float,
        Some(raw) => match raw_str(raw).as_deref() {
            Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            _ => {
                return Err(reject(
                    Reason::EncodingFormat,
                    "body.encoding_format",
                    format!("{} is not \"float\" or \"base64\"", shown(raw.get(), 80)),
                ))
            }
        },
    };
    let asked = match body.dimensions.filter(|raw| raw.get() != "null") {
        None => None,
        Some(raw) => match serde_json::from_str::<u64>(raw.get()) {
            Ok(d) => Some(d),
            Err(_) => {
                return Err(reject(
                    Reason::Dimensions,
                    "body.dimensions",
                    format!("{} is not a whole number", shown(raw.get(), 80)),
                ))
            }
        },
    };
    let dimensions = match (asked, facts) {
        (Some(d), Some(f)) => match u32::try_from(d).ok().filter(|d| f.dimensions.contains(d)) {
            Some(d) => Some(d),
            None => {
                return Err(reject(
                    Reason::Dimensions,
                    "body.dimensions",
                    format!(
                        "{d} is not a length {} gives; it gives {}",
                        model.map_or("the model", |m| m.id.as_str()),
                        list(&f.dimensions)
                    ),
                ))
            }
        },
        (Some(0), None) => return Err(reject(Reason::Dimensions, "body.dimensions", "must be at least 1")),
        (Some(d), None) => u32::try_from(d).ok(),
        (None, f) => f.map(|f| f.default_dimensions),
    };
    Ok(Embeddings {
        inputs: texts,
        dimensions,
        encoding,
    })
}

/// The vector lengths a model gives, smallest first, for a message.
fn list(dims: &[u32]) -> String {
    let mut sorted = dims.to_vec();
    sorted.sort_unstable();
    let words: Vec<String> = sorted.iter().map(u32::to_string).collect();
    words.join(", ")
}

impl Embeddings<'_> {
    /// Writes one Titan body per text, of vectors `dimensions` long, into `out`, one after another, and returns
    /// where each ends (counted from where `out` ended before) and the fingerprint of all of them together
    /// ([`fingerprint::combined`]).
    pub fn write_bodies(&self, dimensions: u32, out: &mut Vec<u8>) -> (Vec<usize>, Fingerprint) {
        let start = out.len();
        let mut ends = Vec::with_capacity(self.inputs.len());
        let mut prints = Vec::with_capacity(self.inputs.len());
        for &(text, hash) in &self.inputs {
            prints.push(titan::write_body(text, hash, dimensions, out));
            ends.push(out.len() - start);
        }
        (ends, fingerprint::combined(prints))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(body: &str) -> Rejection {
        let body: Body = serde_json::from_str(body).expect("the body reads, whatever input holds");
        match build(body, None) {
            Ok(_) => panic!("accepted"),
            Err(r) => r,
        }
    }

    #[test]
    fn an_input_of_the_wrong_type_is_named_in_serdes_words() {
        for (body, field, message) in [
            (r#"{"input":true}"#, "body.input", "must be a text or a list of texts (invalid type: boolean `true`, expected a string or a list of strings)"),
            (r#"{"input":7}"#, "body.input", "must be a text or a list of texts (invalid type: integer `7`, expected a string or a list of strings)"),
            (r#"{"input":{"text":"a"}}"#, "body.input", "must be a text or a list of texts (invalid type: map, expected a string or a list of strings)"),
            (r#"{"input":["a",null,"b"]}"#, "body.input", "must be a text or a list of texts (invalid type: null, expected a string)"),
            (r#"{"input":["a",1.5,{"x":[1]}]}"#, "body.input", "must be a text or a list of texts (invalid type: floating point `1.5`, expected a string)"),
            (r#"{"input":[{"x":1},"a"]}"#, "body.input", "must be a text or a list of texts (invalid type: map, expected a string)"),
            (r#"{"input":null}"#, "body.input", "is missing"),
            (r#"{"input":["a",[1,2]]}"#, "body.input[1]", ""),
        ] {
            let r = rejected(body);
            assert_eq!((r.reason, r.field.as_str()), (Reason::Input, field), "{body}");
            if !message.is_empty() {
                assert_eq!(r.message, message, "{body}");
            }
        }
    }

    #[test]
    fn a_text_is_checked_as_the_value_it_stands_for() {
        for (body, field, message) in [
            (r#"{"input":"\ud800"}"#, "body.input", "is not valid Unicode"),
            (r#"{"input":["a","b\udc00c"]}"#, "body.input[1]", "is not valid Unicode"),
            (r#"{"input":["a",""]}"#, "body.input[1]", "is empty"),
        ] {
            let r = rejected(body);
            assert_eq!((r.reason, r.field.as_str()), (Reason::Input, field), "{body}");
            assert!(r.message.starts_with(message), "{body}: {}", r.message);
        }
        // Escapes count as the characters they stand for: `\u00e9` is one, a surrogate pair one more.
        let crate::model::ModelName::Supported(titan) = crate::model::classify("amazon.titan-embed-text-v2:0") else {
            panic!("the catalogue knows Titan V2");
        };
        let limit = titan.embedding().expect("an embeddings model").max_input_chars as usize;
        let text = |plain: usize| format!(r#"{{"input":"{}\u00e9\ud83d\ude00"}}"#, "a".repeat(plain));
        let read = |body: &str| build(serde_json::from_str(body).expect("reads"), Some(&titan)).map(|_| ());
        assert!(read(&text(limit - 2)).is_ok());
        let r = read(&text(limit - 1)).expect_err("one character over");
        assert!(
            r.message.starts_with(&format!("is {} characters long", limit + 1)),
            "{}",
            r.message
        );
    }

    /// The fast reading of a list of texts and serde_json's reading item by item agree.
    #[test]
    fn a_list_of_texts_reads_as_its_items_do() {
        let texts = |body: &str| match serde_json::from_str::<Body>(body).expect("reads").input {
            Some(EmbeddingInput::List { items, total }) => {
                let items: Vec<Option<String>> = items.iter().map(|t| t.map(|t| t.raw.to_string())).collect();
                Some((items, total))
            }
            Some(EmbeddingInput::Text(t)) => Some((vec![Some(t.raw.to_string())], 0)),
            _ => None,
        };
        let some = |items: &[Option<&str>]| items.iter().map(|t| t.map(str::to_string)).collect::<Vec<_>>();
        assert_eq!(texts(r#"{"input":"a\"b"}"#), Some((some(&[Some(r#"a\"b"#)]), 0)));
        assert_eq!(texts(r#"{"input":[]}"#), Some((vec![], 0)));
        assert_eq!(
            texts("{\"input\": [ \"a\" ,\n\t\"\\\\\" , \"\\u0022\"] }"),
            Some((some(&[Some("a"), Some(r"\\"), Some(r"\u0022")]), 3))
        );
        assert_eq!(
            texts(r#"{"input":["a",5,"b"]}"#),
            Some((some(&[Some("a"), None, Some("b")]), 3))
        );
        assert_eq!(
            texts(r#"{"input":[[1,2],"\n"]}"#),
            Some((some(&[None, Some(r"\n")]), 2))
        );
        // Past the limit only the first MAX_INPUTS are kept, whatever the rest is.
        for tail in [r#""x""#, "1", "true"] {
            let many = vec![r#""t""#; MAX_INPUTS].join(",");
            let (items, total) = texts(&format!(r#"{{"input":[{many},{tail}]}}"#)).expect("a list");
            assert_eq!((items.len(), total), (MAX_INPUTS, MAX_INPUTS + 1), "{tail}");
        }
    }
}
