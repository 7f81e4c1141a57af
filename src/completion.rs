//! A Bedrock `modelOutput` (SPEC §3.1 Claude, §3.2 Nova) as an OpenAI `chat.completion` (SPEC §4.3, §6).

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::Family;

/// Token usage as OpenAI counts it (SPEC §6.2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens read from Bedrock's prompt cache; they are part of `prompt_tokens`.
    pub cached_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// One tool call of the answer; `arguments` is the raw JSON of Bedrock's `input`.
pub struct ToolCallOut<'a> {
    pub id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub arguments: &'a RawValue,
}

/// The answer of one record, model-neutral.
pub struct Completion<'a> {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCallOut<'a>>,
    pub refusal: Option<Cow<'a, str>>,
    pub finish_reason: &'static str,
    pub usage: Usage,
    /// Bedrock's stop reason when it was not one we know (mapped to `stop`, SPEC §6.1).
    pub unknown_stop_reason: Option<String>,
}

/// Why a `modelOutput` gives no usable answer: it becomes an error line with status 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

#[derive(Deserialize)]
struct ClaudeResponse<'a> {
    #[serde(borrow, default)]
    content: Vec<ClaudeBlock<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_details: Option<StopDetails<'a>>,
    #[serde(default)]
    usage: ClaudeUsage,
}

#[derive(Deserialize)]
struct ClaudeBlock<'a> {
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
struct ClaudeUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaResponse<'a> {
    #[serde(borrow)]
    output: NovaOutput<'a>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: NovaUsage,
}

#[derive(Deserialize)]
struct NovaOutput<'a> {
    #[serde(borrow)]
    message: NovaMessage<'a>,
}

#[derive(Deserialize)]
struct NovaMessage<'a> {
    #[serde(borrow, default)]
    content: Vec<NovaBlock<'a>>,
}

/// Other block kinds (`reasoningContent`, …) are dropped (SPEC §6.3).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_use: Option<NovaToolUse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaToolUse<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    input: &'a RawValue,
}

/// Invoke responses name the cache counters `…TokenCount`, Converse ones `…Tokens` (SPEC §3.2).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NovaUsage {
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

/// Reads a `modelOutput` of `family`.
pub fn read(family: Family, model_output: &RawValue) -> Result<Completion<'_>, Unusable> {
    match family {
        Family::Claude => read_claude(model_output),
        Family::Nova => read_nova(model_output),
    }
}

fn unreadable(family: &str, e: serde_json::Error) -> Unusable {
    let text = e.to_string();
    let text = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    Unusable(format!(
        "Bedrock returned a {family} response batchdrop could not read: {text}"
    ))
}

fn join(parts: Vec<Cow<'_, str>>) -> Option<String> {
    if parts.is_empty() {
        None
    } else {
        Some(parts.concat())
    }
}

fn read_claude(raw: &RawValue) -> Result<Completion<'_>, Unusable> {
    let r: ClaudeResponse = serde_json::from_str(raw.get()).map_err(|e| unreadable("Claude", e))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in r.content {
        match block.kind.as_ref() {
            "text" => texts.extend(block.text),
            "tool_use" => {
                let (Some(id), Some(name), Some(arguments)) = (block.id, block.name, block.input) else {
                    return Err(Unusable(
                        "Bedrock returned a Claude tool_use block without id, name or input".into(),
                    ));
                };
                tool_calls.push(ToolCallOut { id, name, arguments });
            }
            // thinking and other block kinds carry nothing OpenAI's message has room for.
            _ => {}
        }
    }
    let stop = r.stop_reason.as_deref().unwrap_or("end_turn");
    // SPEC §6.1, Claude rows.
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
    // SPEC §6.2: cached tokens count inside prompt_tokens, as in OpenAI.
    let u = r.usage;
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + cached + u.cache_creation_input_tokens.unwrap_or(0);
    Ok(Completion {
        text: join(texts),
        tool_calls,
        refusal,
        finish_reason,
        usage: Usage {
            prompt_tokens: prompt,
            completion_tokens: u.output_tokens,
            total_tokens: prompt + u.output_tokens,
            cached_tokens: cached,
        },
        unknown_stop_reason: unknown,
    })
}

fn read_nova(raw: &RawValue) -> Result<Completion<'_>, Unusable> {
    let r: NovaResponse = serde_json::from_str(raw.get()).map_err(|e| unreadable("Nova", e))?;
    let stop = r.stop_reason.as_deref().unwrap_or("end_turn");
    // SPEC §6.1, Nova rows; malformed output is unusable, so it is an error line (the recommended choice).
    let (finish_reason, unknown) = match stop {
        "end_turn" | "stop_sequence" => ("stop", None),
        "max_tokens" | "model_context_window_exceeded" => ("length", None),
        "tool_use" => ("tool_calls", None),
        "content_filtered" | "guardrail_intervened" => ("content_filter", None),
        "malformed_model_output" | "malformed_tool_use" => {
            return Err(Unusable(format!(
                "the model produced unusable output (Nova stopReason {stop})"
            )))
        }
        other => ("stop", Some(other.to_string())),
    };
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in r.output.message.content {
        texts.extend(block.text);
        if let Some(t) = block.tool_use {
            tool_calls.push(ToolCallOut {
                id: t.tool_use_id,
                name: t.name,
                arguments: t.input,
            });
        }
    }
    let u = r.usage;
    Ok(Completion {
        text: join(texts),
        tool_calls,
        refusal: None,
        finish_reason,
        usage: Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens.unwrap_or(u.input_tokens + u.output_tokens),
            cached_tokens: u
                .cache_read_input_token_count
                .or(u.cache_read_input_tokens)
                .unwrap_or(0),
        },
        unknown_stop_reason: unknown,
    })
}

/// The `chat.completion` object written for a completion.
pub struct ChatCompletion<'c, 'a> {
    pub id: &'c str,
    pub created: u64,
    pub model: &'c str,
    pub completion: &'c Completion<'a>,
}

impl Serialize for ChatCompletion<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("id", self.id)?;
        m.serialize_entry("object", "chat.completion")?;
        m.serialize_entry("created", &self.created)?;
        m.serialize_entry("model", self.model)?;
        m.serialize_entry("choices", &[Choice(self.completion)])?;
        m.serialize_entry("usage", &UsageOut(&self.completion.usage))?;
        m.end()
    }
}

struct Choice<'c, 'a>(&'c Completion<'a>);

impl Serialize for Choice<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("index", &0)?;
        m.serialize_entry("message", &MessageOut(self.0))?;
        m.serialize_entry("logprobs", &())?;
        m.serialize_entry("finish_reason", self.0.finish_reason)?;
        m.end()
    }
}

struct MessageOut<'c, 'a>(&'c Completion<'a>);

impl Serialize for MessageOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", "assistant")?;
        // SPEC §6.3: null content when there is no text but tool calls (or a refusal); "" otherwise.
        let content = match &c.text {
            Some(t) => Some(t.as_str()),
            None if !c.tool_calls.is_empty() || c.finish_reason == "content_filter" => None,
            None => Some(""),
        };
        m.serialize_entry("content", &content)?;
        m.serialize_entry("refusal", &c.refusal)?;
        if !c.tool_calls.is_empty() {
            m.serialize_entry("tool_calls", &ToolCallsOut(&c.tool_calls))?;
        }
        m.end()
    }
}

struct ToolCallsOut<'c, 'a>(&'c [ToolCallOut<'a>]);

impl Serialize for ToolCallsOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToolCallJson))
    }
}

struct ToolCallJson<'c, 'a>(&'c ToolCallOut<'a>);

impl Serialize for ToolCallJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &t.id)?;
        m.serialize_entry("type", "function")?;
        // SPEC §4.3: `arguments` is a JSON string, not an object.
        m.serialize_entry(
            "function",
            &FunctionOut {
                name: &t.name,
                arguments: t.arguments.get(),
            },
        )?;
        m.end()
    }
}

#[derive(Serialize)]
struct FunctionOut<'c> {
    name: &'c str,
    arguments: &'c str,
}

struct UsageOut<'c>(&'c Usage);

impl Serialize for UsageOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("prompt_tokens", &u.prompt_tokens)?;
        m.serialize_entry("completion_tokens", &u.completion_tokens)?;
        m.serialize_entry("total_tokens", &u.total_tokens)?;
        if u.cached_tokens > 0 {
            m.serialize_entry("prompt_tokens_details", &CachedOut(u.cached_tokens))?;
        }
        m.end()
    }
}

struct CachedOut(u64);

impl Serialize for CachedOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("cached_tokens", &self.0)?;
        m.end()
    }
}
