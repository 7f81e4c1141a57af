//! OpenAI Batch API input lines (SPEC §4.1) and the chat request body (SPEC §4.4), as read.
//!
//! Strings borrow from the line wherever JSON escaping allows, so the hot path copies little. Only the
//! body has a hand-written reader: it has to notice the fields it does not know, to count what it drops.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

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
    Text(Cow<'a, str>),
    List {
        items: Vec<Option<Cow<'a, str>>>,
        total: usize,
    },
    Invalid(String),
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

/// One item of an `input` list: a text (`Some`), token ids (`None`: a number or a list), or something else
/// (`Err`, in serde's words).
struct InputItem<'a>(Result<Option<Cow<'a, str>>, String>);

impl<'de: 'a, 'a> Deserialize<'de> for InputItem<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'a> V<'a> {
            fn wrong<E>(&self, unexpected: de::Unexpected<'_>) -> Result<InputItem<'a>, E> {
                Ok(InputItem(Err(wrong_type(unexpected, self))))
            }
        }
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = InputItem<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(InputItem(Ok(Some(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(InputItem(Ok(Some(Cow::Owned(v.to_owned())))))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(InputItem(Ok(None)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(InputItem(Ok(None)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(InputItem(Ok(None)))
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
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EmbeddingInput<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'a> V<'a> {
            fn wrong<E>(&self, unexpected: de::Unexpected<'_>) -> Result<EmbeddingInput<'a>, E> {
                Ok(EmbeddingInput::Invalid(wrong_type(unexpected, self)))
            }
        }
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = EmbeddingInput<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(EmbeddingInput::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EmbeddingInput::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                let mut total = 0;
                let mut invalid = None;
                while total < crate::embeddings::MAX_INPUTS {
                    match seq.next_element()? {
                        Some(InputItem(Ok(item))) => items.push(item),
                        // The first item of a wrong type is the answer; the rest is read past.
                        Some(InputItem(Err(why))) => {
                            invalid = Some(why);
                            break;
                        }
                        None => return Ok(EmbeddingInput::List { items, total }),
                    }
                    total += 1;
                }
                // Past the limit the line is rejected: the rest is only counted, never kept.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(match invalid {
                    Some(why) => EmbeddingInput::Invalid(why),
                    None => EmbeddingInput::List { items, total },
                })
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
