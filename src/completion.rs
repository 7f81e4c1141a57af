//! The answer of one chat record, model-neutral: what [`crate::format`] reads from a Bedrock `modelOutput` and
//! writes as an OpenAI `chat.completion` (docs/formats.md#openai-lines and #results).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

/// Token usage as OpenAI counts it (docs/formats.md#usage).
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
    /// Bedrock's stop reason when it was not one we know (mapped to `stop`, docs/formats.md#finish_reason).
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
    pub(crate) fn malformed(message: impl Into<String>) -> Unusable {
        Unusable {
            code: MALFORMED_MODEL_OUTPUT,
            message: message.into(),
        }
    }
}
