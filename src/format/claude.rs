//! Anthropic's Messages format on Bedrock, both ways (docs/formats.md#claude-and-nova-bodies): the `modelInput` body written from a validated
//! [`Request`], and the `modelOutput` read back as a [`Completion`].

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{join, not_an_object, not_shaped, schema, unreadable, Seq, Turns};
use crate::completion::{Completion, ToolCallOut, Unusable, Usage};
use crate::request::{Block, Request, ToolMode, ToolSpec};

/// `anthropic_version` that Claude on Bedrock requires (docs/formats.md#claude-and-nova-bodies).
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The body of a request.
pub(super) struct Body<'r, 'a>(pub(super) &'r Request<'a>);

impl Serialize for Body<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("anthropic_version", ANTHROPIC_VERSION)?;
        m.serialize_entry("max_tokens", &r.max_tokens)?;
        if !r.system.is_empty() {
            m.serialize_entry("system", &Seq(|| r.system.iter().map(|t| SystemText(t))))?;
        }
        m.serialize_entry("messages", &Turns(&r.turns, BlockOut))?;
        if let Some(t) = r.temperature {
            m.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = r.top_p {
            m.serialize_entry("top_p", &p)?;
        }
        if let Some(k) = r.top_k {
            m.serialize_entry("top_k", &k)?;
        }
        if !r.stop.is_empty() {
            m.serialize_entry("stop_sequences", &r.stop)?;
        }
        if !r.tools.is_empty() {
            m.serialize_entry("tools", &Seq(|| r.tools.iter().map(ToolOut)))?;
        }
        if let Some(choice) = &r.tool_choice {
            m.serialize_entry("tool_choice", &ToolChoiceOut(choice))?;
        }
        m.end()
    }
}

struct SystemText<'t>(&'t str);

impl Serialize for SystemText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", "text")?;
        m.serialize_entry("text", self.0)?;
        m.end()
    }
}

struct BlockOut<'r, 'a>(&'r Block<'a>);

impl Serialize for BlockOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Block::Text(text) => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
            }
            Block::Image { format, data } => {
                m.serialize_entry("type", "image")?;
                m.serialize_entry(
                    "source",
                    &ImageOut {
                        kind: "base64",
                        media_type: format,
                        data,
                    },
                )?;
            }
            Block::ToolUse { id, name, input } => {
                m.serialize_entry("type", "tool_use")?;
                m.serialize_entry("id", id)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("input", input)?;
            }
            Block::ToolResult { id, text } => {
                m.serialize_entry("type", "tool_result")?;
                m.serialize_entry("tool_use_id", id)?;
                m.serialize_entry("content", text)?;
            }
        }
        m.end()
    }
}

struct ImageOut<'d> {
    kind: &'static str,
    media_type: &'d str,
    data: &'d str,
}

impl Serialize for ImageOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("media_type", &format_args!("image/{}", self.media_type))?;
        m.serialize_entry("data", self.data)?;
        m.end()
    }
}

struct ToolOut<'r, 'a>(&'r ToolSpec<'a>);

impl Serialize for ToolOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &t.name)?;
        if let Some(d) = &t.description {
            m.serialize_entry("description", d)?;
        }
        m.serialize_entry("input_schema", schema(t))?;
        m.end()
    }
}

/// docs/formats.md#how-openai-requests-are-translated: auto → auto, required → any, named → tool. ("none" never gets here: the tools are dropped.)
struct ToolChoiceOut<'r, 'a>(&'r ToolMode<'a>);

impl Serialize for ToolChoiceOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            ToolMode::Auto => m.serialize_entry("type", "auto")?,
            ToolMode::Any => m.serialize_entry("type", "any")?,
            ToolMode::Tool(name) => {
                m.serialize_entry("type", "tool")?;
                m.serialize_entry("name", name)?;
            }
        }
        m.end()
    }
}

/// Every field optional here, so that what is missing is said in our words (see [`shape`]).
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Vec<BlockIn<'a>>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_details: Option<StopDetails<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct BlockIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StopDetails<'a> {
    #[serde(borrow, default)]
    explanation: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct UsageIn {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

/// Claude's parts, once it is known to be a Messages response.
struct Parts<'a> {
    content: Vec<BlockIn<'a>>,
    usage: UsageIn,
}

/// What every Claude Messages response has: `type` "message", a `content` array and a `usage`
/// object. Without this check a Nova body or `{}` on a Claude record would pass as an empty answer.
fn shape<'a>(r: &mut Response<'a>) -> Result<Parts<'a>, &'static str> {
    let Some(content) = r.content.take() else {
        return Err("it has no content array");
    };
    let Some(usage) = r.usage.take() else {
        return Err("it has no usage object");
    };
    if r.kind.as_deref() != Some("message") {
        return Err("its type is not \"message\"");
    }
    Ok(Parts { content, usage })
}

const FORMAT: &str = "Claude Messages";

pub(super) fn read(json: &str) -> Result<Completion<'_>, Unusable> {
    if let Some(why) = not_an_object(json) {
        return Err(not_shaped(FORMAT, why));
    }
    let mut r: Response = serde_json::from_str(json).map_err(|e| unreadable("Claude", e))?;
    let parts = shape(&mut r).map_err(|why| not_shaped(FORMAT, why))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in parts.content {
        match block.kind.as_ref() {
            "text" => texts.extend(block.text),
            "tool_use" => {
                let (Some(id), Some(name), Some(arguments)) = (block.id, block.name, block.input) else {
                    return Err(Unusable::malformed(
                        "Bedrock returned a Claude tool_use block without id, name or input",
                    ));
                };
                tool_calls.push(ToolCallOut { id, name, arguments });
            }
            // thinking and other block kinds carry nothing OpenAI's message has room for.
            _ => {}
        }
    }
    let stop = r.stop_reason.as_deref().unwrap_or("end_turn");
    // docs/formats.md#finish_reason, Claude rows.
    let (finish_reason, unknown) = match stop {
        "end_turn" | "stop_sequence" => ("stop", None),
        "max_tokens" | "model_context_window_exceeded" => ("length", None),
        "tool_use" => ("tool_calls", None),
        "refusal" => ("content_filter", None),
        other => ("stop", Some(other.to_string())),
    };
    let refusal = if stop == "refusal" && texts.is_empty() {
        r.stop_details.and_then(|d| d.explanation)
    } else {
        None
    };
    Ok(Completion {
        text: join(texts),
        tool_calls,
        refusal,
        finish_reason,
        usage: usage(&parts.usage),
        unknown_stop_reason: unknown,
    })
}

/// docs/formats.md#usage: cached tokens count inside prompt_tokens, as in OpenAI. Saturating: Bedrock's numbers
/// are not ours to trust, and a wrapped sum would be a small, plausible, wrong number.
fn usage(u: &UsageIn) -> Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let prompt = u
        .input_tokens
        .saturating_add(cached)
        .saturating_add(u.cache_creation_input_tokens.unwrap_or(0));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: u.output_tokens,
        total_tokens: prompt.saturating_add(u.output_tokens),
        cached_tokens: cached,
    }
}
