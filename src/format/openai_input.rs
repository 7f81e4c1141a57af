//! OpenAI Batch API input lines (docs/formats.md#openai-lines) and the chat request body (docs/formats.md#how-openai-requests-are-translated), as read.
//!
//! Strings borrow from the line wherever JSON escaping allows, so the hot path copies little. Only the
//! body has a hand-written reader: it has to notice the fields it does not know, to count what it drops.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fingerprint;
use crate::json_text::{self, Unfit};

/// One line of an OpenAI batch input file.
#[derive(Deserialize)]
pub struct InputLine<'a> {
    /// Kept raw so a number or an object here gets a precise message rather than a type error.
    #[serde(borrow, default)]
    pub custom_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub body: Option<Body<'a>>,
}

/// Only the custom_id of a line, read when the whole line would not parse, to name it in the message.
#[derive(Deserialize)]
pub struct LineHead<'a> {
    #[serde(borrow, default)]
    pub custom_id: Option<&'a RawValue>,
}

/// A chat completion request body: the fields batchdrop reads, and the names of those it drops.
#[derive(Default)]
pub struct Body<'a> {
    pub model: Option<Cow<'a, str>>,
    pub messages: Option<Vec<Message<'a>>>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Option<Stop<'a>>,
    pub n: Option<u64>,
    pub stream: Option<bool>,
    pub logprobs: Option<bool>,
    pub tools: Option<Vec<Tool<'a>>>,
    pub tool_choice: Option<ToolChoice<'a>>,
    pub response_format: Option<ResponseFormat<'a>>,
    /// `functions` or `function_call`, the deprecated forerunners of `tools`.
    pub legacy_functions: Option<&'static str>,
    /// The fields of an embeddings request (`/v1/embeddings`), read whatever their type: only an embeddings
    /// line checks them ([`crate::embeddings::build`]), so on a chat line they are dropped. `input`, most of
    /// an embeddings line, is read in the same pass as the rest; the other two are kept raw.
    pub input: Option<EmbeddingInput<'a>>,
    pub encoding_format: Option<&'a RawValue>,
    pub dimensions: Option<&'a RawValue>,
    /// Fields present in the body that have no Bedrock meaning, in the order met.
    pub dropped: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Message<'a> {
    #[serde(borrow, default)]
    pub role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    pub tool_call_id: Option<Cow<'a, str>>,
}

/// Message content: a plain string or a list of parts.
pub enum Content<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Deserialize)]
pub struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct ImageUrl<'a> {
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

#[derive(Deserialize)]
pub struct ToolCall<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
pub struct FunctionCall<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Tool<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionDef<'a>>,
}

#[derive(Deserialize)]
pub struct FunctionDef<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
}

/// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name": …}}`.
pub enum ToolChoice<'a> {
    Mode(Cow<'a, str>),
    Named(NamedToolChoice<'a>),
}

#[derive(Deserialize)]
pub struct NamedToolChoice<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionName<'a>>,
}

#[derive(Deserialize)]
pub struct FunctionName<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

/// `response_format.json_schema`: OpenAI's structured output.
#[derive(Deserialize)]
pub struct JsonSchemaFormat<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
}

/// An embeddings `input`: one text, or a list whose items are texts (`Some`) or token ids (`None`: a number or
/// a list of numbers, which Titan cannot take). Of a list longer than [`crate::embeddings::MAX_INPUTS`], only
/// that many items are kept; `total` counts them all. Any other JSON is `Invalid`, with what serde would
/// say of it, so that the line still reads and its error names `input`.
pub enum EmbeddingInput<'a> {
    Text(JsonText<'a>),
    List {
        items: Vec<Option<JsonText<'a>>>,
        total: usize,
    },
    Invalid(String),
}

/// A text as the line wrote it: the inside of its string token, escapes and all ([`crate::json_text`]), with
/// what it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonText<'a> {
    pub raw: &'a str,
    /// The hash of its value, as a [`crate::fingerprint::Fingerprint`] counts a string, and the length of its
    /// decoded text in bytes; or why its escapes make no text.
    pub value: Result<(u64, usize), Unfit>,
}

impl<'a> JsonText<'a> {
    /// The text of a whole string token; `None` for any other JSON value.
    pub fn of_token(token: &'a str) -> Option<JsonText<'a>> {
        JsonText::read(token, 0, &mut Vec::new()).map(|(text, _)| text)
    }

    /// The string token at `open` in `json`, and the index just past it; `None` if no string is there.
    /// `scratch` holds the decoded text meanwhile.
    fn read(json: &'a str, open: usize, scratch: &mut Vec<u8>) -> Option<(JsonText<'a>, usize)> {
        scratch.clear();
        let (end, fits) = json_text::read(json.as_bytes(), open, scratch)?;
        let raw = &json[open + 1..end - 1];
        // Every escape stands for at least one byte: nothing decoded means there was none.
        let value = fits.map(|()| {
            let text = if scratch.is_empty() {
                raw.as_bytes()
            } else {
                scratch.as_slice()
            };
            (fingerprint::string_hash(text), text.len())
        });
        Some((JsonText { raw, value }, end))
    }
}

/// serde's words for a value of the wrong type.
fn wrong_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> String {
    <serde_json::Error as de::Error>::invalid_type(unexpected, expected).to_string()
}

impl<'a> Body<'a> {
    /// The chat fields the body holds, by name: an embeddings line has no use for them.
    pub fn chat_fields(&self) -> Vec<&'static str> {
        let mut present = Vec::new();
        let mut note = |set: bool, name: &'static str| {
            if set {
                present.push(name);
            }
        };
        note(self.messages.is_some(), "messages");
        note(self.max_tokens.is_some(), "max_tokens");
        note(self.max_completion_tokens.is_some(), "max_completion_tokens");
        note(self.temperature.is_some(), "temperature");
        note(self.top_p.is_some(), "top_p");
        note(self.top_k.is_some(), "top_k");
        note(self.stop.is_some(), "stop");
        note(self.n.is_some(), "n");
        note(self.stream.is_some(), "stream");
        note(self.logprobs.is_some(), "logprobs");
        note(self.tools.is_some(), "tools");
        note(self.tool_choice.is_some(), "tool_choice");
        note(self.response_format.is_some(), "response_format");
        if let Some(name) = self.legacy_functions {
            present.push(name);
        }
        present
    }

    /// The embeddings fields the body holds, by name: a chat line has no use for them.
    pub fn embedding_fields(&self) -> Vec<&'static str> {
        [
            (self.input.is_some(), "input"),
            (self.encoding_format.is_some(), "encoding_format"),
            (self.dimensions.is_some(), "dimensions"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// One item of an `input` list that is not a text: token ids (`Ok`: a number or a list), or something else
/// (`Err`, in serde's words).
struct NotText(Result<(), String>);

impl<'de> Deserialize<'de> for NotText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn wrong<E>(&self, unexpected: de::Unexpected<'_>) -> Result<NotText, E> {
                Ok(NotText(Err(wrong_type(unexpected, self))))
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = NotText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NotText(Ok(())))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NotText(Ok(())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NotText(Ok(())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Unit)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                self.wrong(de::Unexpected::Map)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'a> EmbeddingInput<'a> {
    /// `input` from its JSON text, which serde_json has read past. A text, or a list of texts alone, is
    /// taken apart by finding where each string ends; anything else is read by serde_json again, for the
    /// token ids or the first item of a wrong type, in serde's words.
    fn of_raw(raw: &'a str) -> EmbeddingInput<'a> {
        if let Some(text) = JsonText::of_token(raw) {
            return EmbeddingInput::Text(text);
        }
        EmbeddingInput::texts(raw).unwrap_or_else(|| match serde_json::from_str(raw) {
            Ok(Mixed(input)) => input,
            Err(e) => EmbeddingInput::Invalid(e.to_string()),
        })
    }

    /// A list whose items are all texts; `None` at the first item that is not.
    fn texts(raw: &'a str) -> Option<EmbeddingInput<'a>> {
        let bytes = raw.as_bytes();
        let skip_space = |mut i: usize| {
            while bytes.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            i
        };
        if bytes.first() != Some(&b'[') {
            return None;
        }
        let (mut items, mut total, mut scratch) = (Vec::new(), 0, Vec::new());
        let mut i = skip_space(1);
        if bytes.get(i) == Some(&b']') {
            return Some(EmbeddingInput::List { items, total });
        }
        loop {
            let (text, end) = JsonText::read(raw, i, &mut scratch)?;
            // Past the limit the line is rejected: the rest is only counted, never kept.
            if total < crate::embeddings::MAX_INPUTS {
                items.push(Some(text));
            }
            total += 1;
            i = skip_space(end);
            match bytes.get(i)? {
                b',' => i = skip_space(i + 1),
                b']' => return Some(EmbeddingInput::List { items, total }),
                _ => return None,
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EmbeddingInput<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(EmbeddingInput::of_raw(raw.get()))
    }
}

/// An `input` that is neither a text nor a list of texts alone, read item by item as before the fast path:
/// texts kept as written, and the first item that is not a text decides.
struct Mixed<'a>(EmbeddingInput<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Mixed<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'a> V<'a> {
            fn wrong<E>(&self, unexpected: de::Unexpected<'_>) -> Result<Mixed<'a>, E> {
                Ok(Mixed(EmbeddingInput::Invalid(wrong_type(unexpected, self))))
            }
        }
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Mixed<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let (mut items, mut scratch) = (Vec::new(), Vec::new());
                let mut total = 0;
                let mut invalid = None;
                while total < crate::embeddings::MAX_INPUTS {
                    let Some(item) = seq.next_element::<&'de RawValue>()? else {
                        return Ok(Mixed(EmbeddingInput::List { items, total }));
                    };
                    match JsonText::read(item.get(), 0, &mut scratch).map(|(text, _)| text) {
                        Some(text) => items.push(Some(text)),
                        None => match serde_json::from_str::<NotText>(item.get()) {
                            Ok(NotText(Ok(()))) => items.push(None),
                            // The first item of a wrong type is the answer; the rest is read past.
                            Ok(NotText(Err(why))) => {
                                invalid = Some(why);
                                break;
                            }
                            Err(e) => {
                                invalid = Some(e.to_string());
                                break;
                            }
                        },
                    }
                    total += 1;
                }
                // Past the limit the line is rejected: the rest is only counted, never kept.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(Mixed(match invalid {
                    Some(why) => EmbeddingInput::Invalid(why),
                    None => EmbeddingInput::List { items, total },
                }))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.wrong(de::Unexpected::Bool(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                self.wrong(de::Unexpected::Map)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `stop`: one string or a list of them.
pub enum Stop<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

/// A string that borrows from the input when it can.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Stop<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Stop<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Stop::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Stop::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(CowStr(s)) = seq.next_element()? {
                    all.push(s);
                }
                Ok(Stop::Many(all))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ToolChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": …}}")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ToolChoice::Mode(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ToolChoice::Mode(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                NamedToolChoice::deserialize(MapAccessDeserializer::new(map)).map(ToolChoice::Named)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

macro_rules! set_once {
    ($map:ident, $slot:expr, $name:literal) => {{
        if $slot.is_some() {
            return Err(de::Error::duplicate_field($name));
        }
        $slot = $map.next_value()?;
    }};
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Body<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the request body object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut b = Body::default();
                while let Some(CowStr(key)) = map.next_key()? {
                    match key.as_ref() {
                        "model" => {
                            let v: Option<CowStr> = map.next_value()?;
                            b.model = v.map(|s| s.0);
                        }
                        "messages" => set_once!(map, b.messages, "messages"),
                        "max_tokens" => set_once!(map, b.max_tokens, "max_tokens"),
                        "max_completion_tokens" => set_once!(map, b.max_completion_tokens, "max_completion_tokens"),
                        "temperature" => set_once!(map, b.temperature, "temperature"),
                        "top_p" => set_once!(map, b.top_p, "top_p"),
                        "top_k" => set_once!(map, b.top_k, "top_k"),
                        "stop" => set_once!(map, b.stop, "stop"),
                        "n" => set_once!(map, b.n, "n"),
                        "stream" => set_once!(map, b.stream, "stream"),
                        "logprobs" => set_once!(map, b.logprobs, "logprobs"),
                        "tools" => set_once!(map, b.tools, "tools"),
                        "tool_choice" => set_once!(map, b.tool_choice, "tool_choice"),
                        "response_format" => set_once!(map, b.response_format, "response_format"),
                        "input" => set_once!(map, b.input, "input"),
                        "encoding_format" => set_once!(map, b.encoding_format, "encoding_format"),
                        "dimensions" => set_once!(map, b.dimensions, "dimensions"),
                        "functions" | "function_call" => {
                            map.next_value::<IgnoredAny>()?;
                            b.legacy_functions = Some(if key == "functions" {
                                "functions"
                            } else {
                                "function_call"
                            });
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            b.dropped.push(key);
                        }
                    }
                }
                Ok(b)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The string inside a raw JSON value, if it is a string.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<CowStr>(raw.get()).ok().map(|s| s.0)
}
