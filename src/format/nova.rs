//! Amazon Nova's `messages-v1` format, both ways (docs/formats.md#claude-and-nova-bodies): the `modelInput` body written from a validated
//! [`Request`], and the `modelOutput` read back as a [`Completion`]. A Converse request and response share
//! these shapes; [`super::converse`] says where they differ.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{join, not_an_object, not_shaped, schema, unreadable, Empty, One, Seq, Turns};
use crate::completion::{Completion, ToolCallOut, Unusable, Usage};
use crate::request::{Block, Request, ToolMode, ToolSpec};

/// Nova's body schema version (docs/formats.md#claude-and-nova-bodies).
pub const NOVA_SCHEMA_VERSION: &str = "messages-v1";

/// Nova's `messages-v1` body, or with `converse` a Converse request without `modelId` (docs/formats.md,
/// "Converse"), which shares its content blocks, `system` and `inferenceConfig`. A Converse request has no
/// `schemaVersion`, and `topK` goes in `additionalModelRequestFields` as `top_k`. The catalogue's Converse
/// models take no tools: Bedrock fails Converse-type batch records with a `toolConfig`.
pub(super) struct Body<'r, 'a> {
    pub(super) request: &'r Request<'a>,
    pub(super) converse: bool,
}

/// Nova's body of a request.
pub(super) fn body<'r, 'a>(request: &'r Request<'a>) -> Body<'r, 'a> {
    Body {
        request,
        converse: false,
    }
}

impl Serialize for Body<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut m = s.serialize_map(None)?;
        if !self.converse {
            m.serialize_entry("schemaVersion", NOVA_SCHEMA_VERSION)?;
        }
        if !r.system.is_empty() {
            m.serialize_entry("system", &Seq(|| r.system.iter().map(|t| One("text", t))))?;
        }
        m.serialize_entry("messages", &Turns(&r.turns, BlockOut))?;
        m.serialize_entry("inferenceConfig", &Inference(r, !self.converse))?;
        if let Some(k) = r.top_k.filter(|_| self.converse) {
            m.serialize_entry("additionalModelRequestFields", &One("top_k", k))?;
        }
        if !r.tools.is_empty() {
            m.serialize_entry("toolConfig", &ToolConfig(r))?;
        }
        m.end()
    }
}

struct BlockOut<'r, 'a>(&'r Block<'a>);

impl Serialize for BlockOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Block::Text(text) => One("text", text).serialize(s),
            Block::Image { format, data } => One("image", ImageOut { format, data }).serialize(s),
            Block::ToolUse { id, name, input } => One("toolUse", ToolUseOut { id, name, input }).serialize(s),
            Block::ToolResult { id, text } => One("toolResult", ToolResultOut { id, text }).serialize(s),
        }
    }
}

struct ImageOut<'d> {
    format: &'d str,
    data: &'d str,
}

impl Serialize for ImageOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("format", self.format)?;
        m.serialize_entry("source", &One("bytes", self.data))?;
        m.end()
    }
}

struct ToolUseOut<'d> {
    id: &'d str,
    name: &'d str,
    input: &'d RawValue,
}

impl Serialize for ToolUseOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("toolUseId", self.id)?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("input", self.input)?;
        m.end()
    }
}

struct ToolResultOut<'d> {
    id: &'d str,
    text: &'d str,
}

impl Serialize for ToolResultOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("toolUseId", self.id)?;
        m.serialize_entry("content", &[One("text", self.text)])?;
        m.serialize_entry("status", "success")?;
        m.end()
    }
}

/// `inferenceConfig`; the flag says whether `topK` belongs in it (Nova's body) or not (Converse's).
struct Inference<'r, 'a>(&'r Request<'a>, bool);

impl Serialize for Inference<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("maxTokens", &r.max_tokens)?;
        if let Some(t) = r.temperature {
            m.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = r.top_p {
            m.serialize_entry("topP", &p)?;
        }
        if let Some(k) = r.top_k.filter(|_| self.1) {
            m.serialize_entry("topK", &k)?;
        }
        if !r.stop.is_empty() {
            m.serialize_entry("stopSequences", &r.stop)?;
        }
        m.end()
    }
}

struct ToolConfig<'r, 'a>(&'r Request<'a>);

impl Serialize for ToolConfig<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "tools",
            &Seq(|| r.tools.iter().map(|t| One("toolSpec", ToolSpecOut(t)))),
        )?;
        match &r.tool_choice {
            None => {}
            Some(ToolMode::Auto) => m.serialize_entry("toolChoice", &One("auto", Empty))?,
            // docs/formats.md#claude-and-nova-bodies: the Nova docs conflict on `any`/`tool`; the tool-choice page, the newer, allows both.
            Some(ToolMode::Any) => m.serialize_entry("toolChoice", &One("any", Empty))?,
            Some(ToolMode::Tool(name)) => m.serialize_entry("toolChoice", &One("tool", One("name", name)))?,
        }
        m.end()
    }
}

struct ToolSpecOut<'r, 'a>(&'r ToolSpec<'a>);

impl Serialize for ToolSpecOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &t.name)?;
        if let Some(d) = &t.description {
            m.serialize_entry("description", d)?;
        }
        m.serialize_entry("inputSchema", &One("json", schema(t)))?;
        m.end()
    }
}

/// Every field optional here, so that what is missing is said in our words (see [`shape`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    #[serde(borrow, default)]
    output: Option<OutputIn<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct OutputIn<'a> {
    #[serde(borrow, default)]
    message: Option<MessageIn<'a>>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<BlockIn<'a>>>,
}

/// Other block kinds (`reasoningContent`, …) are dropped (docs/formats.md#message-content).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockIn<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_use: Option<ToolUseIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseIn<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    input: &'a RawValue,
}

/// Invoke responses name the cache counters `…TokenCount`, Converse ones `…Tokens` (docs/formats.md#claude-and-nova-bodies).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UsageIn {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_token_count: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// What every Nova response has: `output.message.content` and `usage`.
fn response_shape<'a>(r: &mut Response<'a>) -> Result<(Vec<BlockIn<'a>>, UsageIn), &'static str> {
    let Some(content) = r.output.take().and_then(|o| o.message).and_then(|m| m.content) else {
        return Err("it has no output.message.content array");
    };
    let Some(usage) = r.usage.take() else {
        return Err("it has no usage object");
    };
    Ok((content, usage))
}

/// Nova's response, or a Converse response (`shape` names which, for messages).
pub(super) fn read<'j>(json: &'j str, shape: &'static str) -> Result<Completion<'j>, Unusable> {
    if let Some(why) = not_an_object(json) {
        return Err(not_shaped(shape, why));
    }
    let mut r: Response = serde_json::from_str(json).map_err(|e| unreadable(shape, e))?;
    let stop = r.stop_reason.as_deref().unwrap_or("end_turn");
    // docs/formats.md#finish_reason, Nova rows; malformed output is unusable, so it is an error line (the recommended choice).
    let (finish_reason, unknown) = match stop {
        "end_turn" | "stop_sequence" => ("stop", None),
        "max_tokens" | "model_context_window_exceeded" => ("length", None),
        "tool_use" => ("tool_calls", None),
        "content_filtered" | "guardrail_intervened" => ("content_filter", None),
        "malformed_model_output" | "malformed_tool_use" => {
            return Err(Unusable::malformed(format!(
                "the model produced unusable output (Nova stopReason {stop})"
            )))
        }
        other => ("stop", Some(other.to_string())),
    };
    let (content, u) = response_shape(&mut r).map_err(|why| not_shaped(shape, why))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in content {
        texts.extend(block.text);
        if let Some(t) = block.tool_use {
            tool_calls.push(ToolCallOut {
                id: t.tool_use_id,
                name: t.name,
                arguments: t.input,
            });
        }
    }
    Ok(Completion {
        text: join(texts),
        tool_calls,
        refusal: None,
        finish_reason,
        usage: Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens.unwrap_or(u.input_tokens.saturating_add(u.output_tokens)),
            cached_tokens: u
                .cache_read_input_token_count
                .or(u.cache_read_input_tokens)
                .unwrap_or(0),
        },
        unknown_stop_reason: unknown,
    })
}
