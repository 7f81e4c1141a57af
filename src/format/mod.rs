//! The wire formats, one module each: what batchdrop reads from OpenAI and writes to Bedrock, and back.
//!
//! | module | format | direction |
//! |---|---|---|
//! | [`openai_input`] | an OpenAI Batch API input line and its chat or embeddings body (docs/formats.md#openai-lines and #how-openai-requests-are-translated) | read |
//! | [`openai_output`] | OpenAI batch output and error lines, `chat.completion` and embeddings bodies (docs/formats.md#openai-lines) | written |
//! | [`claude`] | Anthropic Messages on Bedrock (docs/formats.md#claude-and-nova-bodies) | body written, answer read |
//! | [`nova`] | Amazon Nova `messages-v1` (docs/formats.md#claude-and-nova-bodies) | body written, answer read |
//! | [`converse`] | Bedrock Converse, for Llama, Mistral and the other models the catalogue runs so | body written, answer read |
//! | [`titan`] | Amazon Titan Text Embeddings | body written, answer read |
//!
//! The model-neutral meaning in between is [`crate::request::Request`] and [`crate::embeddings::Embeddings`]
//! on the way in, and [`crate::completion::Completion`] on the way back; [`crate::catalogue`] says which
//! format each model speaks. This module picks the format of a [`Family`].

pub mod claude;
pub mod converse;
pub mod nova;
pub mod openai_input;
pub mod openai_output;
pub mod titan;

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::completion::{Completion, Unusable};
use crate::error::serde_message;
use crate::fingerprint::{self, Fingerprint, NotJson};
use crate::model::Family;
use crate::request::{Block, Request, Role, ToolSpec, Turn};

/// The arguments schema of a tool that declares none.
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Writes the `modelInput` body of a chat request for `family` and returns its fingerprint (the one
/// [`Fingerprint::of_json`] gives for the bytes written), in one pass.
pub fn write_body(family: Family, request: &Request<'_>, out: &mut Vec<u8>) -> Result<Fingerprint, NotJson> {
    match family {
        Family::Claude => fingerprint::write(&claude::Body(request), out),
        Family::Nova => fingerprint::write(&nova::body(request), out),
        Family::Converse => fingerprint::write(&converse::body(request), out),
        Family::TitanEmbed => Err(serde::ser::Error::custom("an embeddings model takes no chat request")),
    }
}

/// Reads a chat `modelOutput` of `family`, given as its JSON text.
pub fn read(family: Family, model_output: &str) -> Result<Completion<'_>, Unusable> {
    match family {
        Family::Claude => claude::read(model_output),
        Family::Nova => nova::read(model_output, "Nova"),
        Family::Converse => converse::read(model_output),
        // The results step reads an embeddings model's answers with titan::read.
        Family::TitanEmbed => Err(Unusable::malformed(
            "an embeddings model's answer is not a chat completion",
        )),
    }
}

/// The turns of a request as Claude and Nova both write them, `[{"role", "content": [block, …]}, …]`, each block
/// written by the format's own `B`.
pub(super) struct Turns<'r, 'a, B>(pub(super) &'r [Turn<'a>], pub(super) fn(&'r Block<'a>) -> B);

impl<'r, 'a, B: Serialize> Serialize for Turns<'r, 'a, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let block = self.1;
        s.collect_seq(self.0.iter().map(|t| TurnOut {
            role: role(t.role),
            content: Seq(move || t.blocks.iter().map(block)),
        }))
    }
}

#[derive(serde::Serialize)]
struct TurnOut<F> {
    role: &'static str,
    content: F,
}

fn role(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

pub(super) fn schema<'a>(tool: &'a ToolSpec<'_>) -> &'a RawValue {
    match tool.schema {
        Some(s) => s,
        None => empty_schema(),
    }
}

fn empty_schema() -> &'static RawValue {
    // A constant that is valid JSON; the conversion cannot fail, but a failure must not panic either.
    static SCHEMA: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| RawValue::from_string(EMPTY_SCHEMA.to_string()).unwrap_or_else(|_| Box::<RawValue>::default()))
}

/// A list written from an iterator, without collecting it.
pub(super) struct Seq<F>(pub(super) F);

impl<I, F> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// A one-entry object `{key: value}`.
pub(super) struct One<'k, V>(pub(super) &'k str, pub(super) V);

impl<V: Serialize> Serialize for One<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

pub(super) struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

pub(super) fn unreadable(family: &str, e: serde_json::Error) -> Unusable {
    Unusable::malformed(format!(
        "Bedrock returned a {family} response batchdrop could not read: {}",
        serde_message(&e)
    ))
}

/// A `modelOutput` that is not the shape of `family`'s responses: `why` says what it lacks.
pub(super) fn not_shaped(family: &str, why: &str) -> Unusable {
    Unusable::malformed(format!("the modelOutput is not a {family} response: {why}"))
}

/// What a JSON text is when it is not an object, for the message; `None` for an object.
pub(super) fn not_an_object(json: &str) -> Option<&'static str> {
    Some(match json.trim_start().as_bytes().first() {
        Some(b'{') => return None,
        Some(b'[') => "it is an array, not an object",
        Some(b'"') => "it is a string, not an object",
        Some(b't' | b'f') => "it is a boolean, not an object",
        Some(b'n') => "it is null, not an object",
        _ => "it is a number, not an object",
    })
}

pub(super) fn join(parts: Vec<Cow<'_, str>>) -> Option<String> {
    if parts.is_empty() {
        None
    } else {
        Some(parts.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::MALFORMED_MODEL_OUTPUT;

    fn claude(json: &str) -> Result<Completion<'_>, Unusable> {
        read(Family::Claude, json)
    }

    fn nova(json: &str) -> Result<Completion<'_>, Unusable> {
        read(Family::Nova, json)
    }

    fn malformed(result: Result<Completion<'_>, Unusable>) -> String {
        match result {
            Ok(_) => panic!("read as an answer"),
            Err(u) => {
                assert_eq!(u.code, MALFORMED_MODEL_OUTPUT, "{}", u.message);
                u.message
            }
        }
    }

    const NOVA_BODY: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},
        "stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}"#;
    const CLAUDE_BODY: &str = r#"{"id":"msg_1","type":"message","role":"assistant",
        "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;

    #[test]
    fn a_body_of_the_other_family_is_malformed() {
        assert_eq!(
            malformed(claude(NOVA_BODY)),
            "the modelOutput is not a Claude Messages response: it has no content array"
        );
        assert_eq!(
            malformed(nova(CLAUDE_BODY)),
            "the modelOutput is not a Nova response: it has no output.message.content array"
        );
        assert!(claude(CLAUDE_BODY).is_ok());
        assert!(nova(NOVA_BODY).is_ok());
    }

    #[test]
    fn what_every_response_has_is_required() {
        let cases = [
            (Family::Claude, "{}", "it has no content array"),
            (
                Family::Claude,
                r#"{"type":"message","content":[]}"#,
                "it has no usage object",
            ),
            (
                Family::Claude,
                r#"{"type":"error","content":[],"usage":{}}"#,
                "its type is not \"message\"",
            ),
            (Family::Claude, "[]", "it is an array, not an object"),
            (Family::Claude, "null", "it is null, not an object"),
            (Family::Nova, "{}", "it has no output.message.content array"),
            (
                Family::Nova,
                r#"{"output":{"message":{}}}"#,
                "it has no output.message.content array",
            ),
            (
                Family::Nova,
                r#"{"output":{"message":{"content":[]}}}"#,
                "it has no usage object",
            ),
            (Family::Nova, "7", "it is a number, not an object"),
        ];
        for (family, json, why) in cases {
            let message = malformed(read(family, json));
            assert!(message.ends_with(why), "{json}: {message}");
        }
    }

    #[test]
    fn every_unusable_output_has_a_code() {
        let broken_tool = r#"{"type":"message","content":[{"type":"tool_use"}],"usage":{}}"#;
        assert!(malformed(claude(broken_tool)).contains("tool_use block"));
        assert!(malformed(claude(r#"{"content":"x"}"#)).contains("could not read"));
        let stop = NOVA_BODY.replace("end_turn", "malformed_tool_use");
        assert!(malformed(nova(&stop)).contains("malformed_tool_use"));
    }

    #[test]
    fn huge_token_counts_saturate() {
        let max = u64::MAX;
        let json = format!(
            r#"{{"type":"message","content":[],"usage":{{"input_tokens":{},"cache_read_input_tokens":5,
                "cache_creation_input_tokens":{max},"output_tokens":{max}}}}}"#,
            max - 1
        );
        let usage = claude(&json).map_err(|u| u.message).unwrap().usage;
        assert_eq!((usage.prompt_tokens, usage.total_tokens), (max, max));
        let json = format!(
            r#"{{"output":{{"message":{{"content":[]}}}},"usage":{{"inputTokens":{max},"outputTokens":{max}}}}}"#
        );
        assert_eq!(nova(&json).map_err(|u| u.message).unwrap().usage.total_tokens, max);

        let mut sum = usage;
        sum.add(&usage);
        assert_eq!(sum.total_tokens, max);
        assert_eq!(sum.cached_tokens, 10);
    }

    /// A float that serde_json does not read back to the same f64 it wrote (its parser is not always
    /// correctly rounded) still gives the body the fingerprint its echo will have.
    #[test]
    fn a_body_with_a_seventeen_digit_temperature_matches_its_echo() {
        use crate::model::{classify, ModelName};
        use crate::policy::Policy;

        let line = r#"{"body":{"messages":[{"role":"user","content":"hi"}],"temperature":0.90494076670778435,"top_p":0.44416359704555347}}"#;
        let input: openai_input::InputLine = serde_json::from_str(line).expect("a request line");
        let ModelName::Supported(model) = classify("anthropic.claude-3-5-haiku-20241022-v1:0") else {
            panic!("Claude is in the catalogue");
        };
        let body = input.body.expect("a body");
        let request = crate::request::build(body, &Policy::default(), Some(&model)).expect("a valid request");
        let mut written = Vec::new();
        let fingerprint = write_body(model.family, &request, &mut written).expect("written");
        assert_eq!(Some(fingerprint), Fingerprint::of_json(&written));
        let echoed: serde_json::Value = serde_json::from_slice(&written).expect("JSON");
        assert_eq!(Some(fingerprint), Fingerprint::of_json(echoed.to_string().as_bytes()));
    }

    /// `write_body` writes serde_json's very bytes for every golden fixture's request, in every chat family.
    #[test]
    fn bodies_are_written_as_serde_json_writes_them() {
        use crate::model::{classify, ModelName};
        use crate::policy::Policy;

        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden/translate");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("the golden fixtures") {
            let path = entry.expect("a fixture").path();
            let text = std::fs::read_to_string(&path).expect("a fixture");
            let fixture: serde_json::Value = serde_json::from_str(&text).expect("a fixture is JSON");
            let line = fixture["input"].to_string();
            for model in [
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                "amazon.nova-lite-v1:0",
                "meta.llama3-3-70b-instruct-v1:0",
            ] {
                let ModelName::Supported(model) = classify(model) else {
                    panic!("{model} is in the catalogue");
                };
                let input: openai_input::InputLine = serde_json::from_str(&line).expect("a request line");
                let Some(body) = input.body else { continue };
                // A fixture a family cannot run (tools through Converse) has no body to compare.
                let Ok(request) = crate::request::build(body, &Policy::default(), Some(&model)) else {
                    continue;
                };
                let mut ours = Vec::new();
                let fingerprint = write_body(model.family, &request, &mut ours).expect("written");
                let theirs = match model.family {
                    Family::Claude => serde_json::to_vec(&claude::Body(&request)),
                    Family::Nova => serde_json::to_vec(&nova::body(&request)),
                    _ => serde_json::to_vec(&converse::body(&request)),
                }
                .expect("serde_json writes it");
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs),
                    "{} for {}",
                    path.display(),
                    model.id
                );
                assert_eq!(Some(fingerprint), Fingerprint::of_json(&theirs));
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} bodies compared");
    }
}
