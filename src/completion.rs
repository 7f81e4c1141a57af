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
    /// Saturating: the counters come from Bedrock's output, and a hostile or broken one must not wrap a
    /// batch's total round to a small number.
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
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

impl<'a> Completion<'a> {
    /// The answer of a line that asked for structured output (docs/formats.md, "Structured output"): the
    /// input of the model's call to `tool` becomes the message content, a JSON string, and the call itself is
    /// not shown; a call that ended the turn is `finish_reason: stop`. An answer cut by max_tokens before the
    /// call keeps its text and `length`. An answer that ended without the call is unusable.
    pub fn into_structured(mut self, tool: &str) -> Result<Completion<'a>, Unusable> {
        match self.tool_calls.iter().position(|c| c.name == tool) {
            Some(at) => {
                let call = self.tool_calls.swap_remove(at);
                self.text = Some(call.arguments.get().trim().to_string());
                self.tool_calls.clear();
                if self.finish_reason == "tool_calls" {
                    self.finish_reason = "stop";
                }
                Ok(self)
            }
            None if self.finish_reason == "length" => Ok(self),
            None => Err(Unusable {
                code: MALFORMED_MODEL_OUTPUT,
                message: format!(
                    "the model ended its answer without calling the structured-output tool '{tool}', so there is \
                     no JSON answer (finish_reason {})",
                    self.finish_reason
                ),
            }),
        }
    }
}

/// Why a `modelOutput` gives no usable answer: it becomes an error line with status 500, `code` and
/// `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// The OpenAI error `code` of the error line.
    pub code: &'static str,
    pub message: String,
}

/// The code of every unusable `modelOutput`: not the model family's shape, not readable, or a Nova
/// stop reason that says the output is broken.
pub const MALFORMED_MODEL_OUTPUT: &str = "malformed_model_output";

impl Unusable {
    fn malformed(message: impl Into<String>) -> Unusable {
        Unusable {
            code: MALFORMED_MODEL_OUTPUT,
            message: message.into(),
        }
    }
}

/// Every field optional here, so that what is missing is said in our words (see [`claude_shape`]).
#[derive(Deserialize)]
struct ClaudeResponse<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Vec<ClaudeBlock<'a>>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_details: Option<StopDetails<'a>>,
    #[serde(default)]
    usage: Option<ClaudeUsage>,
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

/// Every field optional here, so that what is missing is said in our words (see [`nova_shape`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaResponse<'a> {
    #[serde(borrow, default)]
    output: Option<NovaOutput<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<NovaUsage>,
}

#[derive(Deserialize)]
struct NovaOutput<'a> {
    #[serde(borrow, default)]
    message: Option<NovaMessage<'a>>,
}

#[derive(Deserialize)]
struct NovaMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<NovaBlock<'a>>>,
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

/// Reads a `modelOutput` of `family`, given as its JSON text.
pub fn read(family: Family, model_output: &str) -> Result<Completion<'_>, Unusable> {
    match family {
        Family::Claude => read_claude(model_output),
        Family::Nova => read_nova(model_output, "Nova"),
        // A Converse response has the shape of Nova's: output.message, stopReason, usage.
        Family::Converse => read_nova(model_output, "Converse"),
        // The results step reads an embeddings model's answers as embeddings (crate::embeddings::read).
        Family::TitanEmbed => Err(Unusable::malformed(
            "an embeddings model's answer is not a chat completion",
        )),
    }
}

fn unreadable(family: &str, e: serde_json::Error) -> Unusable {
    let text = e.to_string();
    let text = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    Unusable::malformed(format!(
        "Bedrock returned a {family} response batchdrop could not read: {text}"
    ))
}

/// A `modelOutput` that is not the shape of `family`'s responses: `why` says what it lacks.
fn not_shaped(family: &str, why: &str) -> Unusable {
    Unusable::malformed(format!("the modelOutput is not a {family} response: {why}"))
}

/// What a JSON text is when it is not an object, for the message; `None` for an object.
fn not_an_object(json: &str) -> Option<&'static str> {
    Some(match json.trim_start().as_bytes().first() {
        Some(b'{') => return None,
        Some(b'[') => "it is an array, not an object",
        Some(b'"') => "it is a string, not an object",
        Some(b't' | b'f') => "it is a boolean, not an object",
        Some(b'n') => "it is null, not an object",
        _ => "it is a number, not an object",
    })
}

fn join(parts: Vec<Cow<'_, str>>) -> Option<String> {
    if parts.is_empty() {
        None
    } else {
        Some(parts.concat())
    }
}

/// Claude's parts, once it is known to be a Messages response.
struct ClaudeParts<'a> {
    content: Vec<ClaudeBlock<'a>>,
    usage: ClaudeUsage,
}

/// What every Claude Messages response has: `type` "message", a `content` array and a `usage`
/// object. Without this check a Nova body or `{}` on a Claude record would pass as an empty answer.
fn claude_shape<'a>(r: &mut ClaudeResponse<'a>) -> Result<ClaudeParts<'a>, &'static str> {
    let Some(content) = r.content.take() else {
        return Err("it has no content array");
    };
    let Some(usage) = r.usage.take() else {
        return Err("it has no usage object");
    };
    if r.kind.as_deref() != Some("message") {
        return Err("its type is not \"message\"");
    }
    Ok(ClaudeParts { content, usage })
}

const CLAUDE: &str = "Claude Messages";

fn read_claude(json: &str) -> Result<Completion<'_>, Unusable> {
    if let Some(why) = not_an_object(json) {
        return Err(not_shaped(CLAUDE, why));
    }
    let mut r: ClaudeResponse = serde_json::from_str(json).map_err(|e| unreadable("Claude", e))?;
    let parts = claude_shape(&mut r).map_err(|why| not_shaped(CLAUDE, why))?;
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
    Ok(Completion {
        text: join(texts),
        tool_calls,
        refusal,
        finish_reason,
        usage: claude_usage(&parts.usage),
        unknown_stop_reason: unknown,
    })
}

/// SPEC §6.2: cached tokens count inside prompt_tokens, as in OpenAI. Saturating: Bedrock's numbers
/// are not ours to trust, and a wrapped sum would be a small, plausible, wrong number.
fn claude_usage(u: &ClaudeUsage) -> Usage {
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

/// What every Nova response has: `output.message.content` and `usage`.
fn nova_shape<'a>(r: &mut NovaResponse<'a>) -> Result<(Vec<NovaBlock<'a>>, NovaUsage), &'static str> {
    let Some(content) = r.output.take().and_then(|o| o.message).and_then(|m| m.content) else {
        return Err("it has no output.message.content array");
    };
    let Some(usage) = r.usage.take() else {
        return Err("it has no usage object");
    };
    Ok((content, usage))
}

/// Nova's response, or a Converse response (`shape` names which, for messages).
fn read_nova<'j>(json: &'j str, shape: &'static str) -> Result<Completion<'j>, Unusable> {
    if let Some(why) = not_an_object(json) {
        return Err(not_shaped(shape, why));
    }
    let mut r: NovaResponse = serde_json::from_str(json).map_err(|e| unreadable(shape, e))?;
    let stop = r.stop_reason.as_deref().unwrap_or("end_turn");
    // SPEC §6.1, Nova rows; malformed output is unusable, so it is an error line (the recommended choice).
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
    let (content, u) = nova_shape(&mut r).map_err(|why| not_shaped(shape, why))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
