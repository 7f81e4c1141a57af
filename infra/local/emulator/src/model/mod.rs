//! The fake models. Each family validates a record's `modelInput` strictly against that model's InvokeModel body
//! rules (docs/formats.md#claude-and-nova-bodies for Claude and Nova; #converse for `modelInvocationType: Converse`; Titan Text Embeddings V2
//! from its AWS model-parameters page) and answers in the model's exact response shape, deterministically. An
//! invalid body becomes a 400 error line, as in Bedrock, so a translation bug shows up here as it would in
//! production.

mod check;
mod claude;
mod example;
mod nova;
mod titan;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::ids::SplitMix64;
use crate::job::InvocationType;

pub use check::Invalid;

/// Below this `max_tokens` the fake model always stops on `max_tokens` (the tests' way to get that reason).
pub const TINY_MAX_TOKENS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Claude,
    Nova,
    Converse,
    TitanEmbed,
}

/// The fake model for a job, or `None` when the emulator has none (Create then answers ValidationException).
/// A Titan embeddings model is not a chat model: it has no Converse form.
pub fn family(model_id: &str, invocation: InvocationType) -> Option<Family> {
    match invocation {
        InvocationType::Converse if model_id.contains("amazon.titan-embed") => None,
        InvocationType::Converse => Some(Family::Converse),
        InvocationType::InvokeModel if model_id.contains("anthropic.claude") => Some(Family::Claude),
        InvocationType::InvokeModel if model_id.contains("amazon.nova") => Some(Family::Nova),
        InvocationType::InvokeModel if model_id.contains("amazon.titan-embed-text-v2") => Some(Family::TitanEmbed),
        InvocationType::InvokeModel => None,
    }
}

/// The per-record error object of the output line (docs/bedrock.md#output-files): `errorCode` is a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    pub error_code: u16,
    pub error_message: String,
}

impl From<Invalid> for RecordError {
    fn from(e: Invalid) -> Self {
        Self {
            error_code: 400,
            error_message: e.0,
        }
    }
}

/// A model's response body: the `modelOutput` of the output line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelOutput {
    Claude(claude::Response),
    Nova(nova::Response),
    Converse(nova::ConverseResponse),
    Titan(titan::Response),
}

impl ModelOutput {
    /// (input tokens, output tokens), for the manifest; an embedding has no output tokens.
    pub fn usage(&self) -> (u64, u64) {
        match self {
            Self::Claude(r) => (r.usage.input_tokens, r.usage.output_tokens),
            Self::Nova(r) => (r.usage.input_tokens, r.usage.output_tokens),
            Self::Converse(r) => (r.usage.input_tokens, r.usage.output_tokens),
            Self::Titan(r) => (r.input_text_token_count, 0),
        }
    }
}

/// Runs one record through the fake model of `family`.
pub fn invoke(
    family: Family,
    model_id: &str,
    record_id: &str,
    model_input: &RawValue,
) -> Result<ModelOutput, RecordError> {
    let body: Value = serde_json::from_str(model_input.get()).map_err(|e| RecordError {
        error_code: 400,
        error_message: format!("Malformed input request: {e}"),
    })?;
    let mut rng = SplitMix64::derived(xxh3_64(model_input.get().as_bytes()), record_id);
    let out = match family {
        Family::Claude => ModelOutput::Claude(claude::respond(&body, model_id, &mut rng)?),
        Family::Nova => ModelOutput::Nova(nova::respond(&body, model_id, &mut rng)?),
        Family::Converse => ModelOutput::Converse(nova::respond_converse(&body, model_id, &mut rng)?),
        Family::TitanEmbed => ModelOutput::Titan(titan::respond(&body)?),
    };
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    Any,
    Tool(String),
}

/// What the validators extract from a body: enough for a deterministic answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Characters of text, tool definitions and tool traffic in the request (input tokens ≈ chars / 4).
    pub input_chars: usize,
    pub images: usize,
    pub last_user_text: String,
    /// The last user turn carries tool results: the model answers in text instead of calling again.
    pub answered_tool: bool,
    pub max_tokens: u64,
    pub stop_sequences: Vec<String>,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    EndTurn,
    MaxTokens,
    StopSequence(String),
    ToolUse,
}

/// The family-neutral answer that each family renders in its own shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: Option<String>,
    pub tool_call: Option<(String, Value)>,
    pub stop: Stop,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Roughly four characters per token, as the usual rule of thumb.
pub fn tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

fn truncate_to_tokens(text: &str, max_tokens: u64) -> String {
    let chars = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
    text.chars().take(chars).collect()
}

/// Tool use when tools are offered (unless the last turn already answered one and the choice is `auto`),
/// `max_tokens` when the budget is tiny or too small, a cut at the first stop sequence, `end_turn` otherwise.
/// `preface` adds a short text before a tool call (Claude usually says what it is about to do).
pub fn decide(conv: &Conversation, model: &str, preface: bool) -> Reply {
    const IMAGE_TOKENS: u64 = 400;
    let input_tokens = (tokens(conv.input_chars) + IMAGE_TOKENS * u64::try_from(conv.images).unwrap_or(0)).max(1);
    let snippet: String = conv.last_user_text.chars().take(80).collect();
    let full = if snippet.trim().is_empty() {
        format!("This is an emulated response from {model}.")
    } else {
        format!("This is an emulated response from {model} to: {}", snippet.trim())
    };
    let reply = |text: String, tool_call: Option<(String, Value)>, stop| Reply {
        output_tokens: tokens(text.chars().count())
            + tool_call
                .as_ref()
                .map_or(0, |(_, input)| tokens(input.to_string().len())),
        text: Some(text).filter(|t| !t.is_empty()),
        tool_call,
        stop,
        input_tokens,
    };

    if conv.max_tokens < TINY_MAX_TOKENS {
        return reply(truncate_to_tokens(&full, conv.max_tokens), None, Stop::MaxTokens);
    }

    let wants_tool = match &conv.tool_choice {
        ToolChoice::Any | ToolChoice::Tool(_) => true,
        ToolChoice::Auto => !conv.answered_tool,
    };
    let tool = match &conv.tool_choice {
        ToolChoice::Tool(name) => conv.tools.iter().find(|t| t.name == *name),
        _ => conv.tools.first(),
    };
    if let (true, Some(tool)) = (wants_tool, tool) {
        let input = example::example(&tool.input_schema, "");
        let text = if preface {
            format!("I'll use the {} tool.", tool.name)
        } else {
            String::new()
        };
        let r = reply(text, Some((tool.name.clone(), input)), Stop::ToolUse);
        if r.output_tokens <= conv.max_tokens {
            return r;
        }
    }

    if let Some((cut, seq)) = conv
        .stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| full.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at)
    {
        let text = full[..cut].to_string();
        if tokens(text.chars().count()) <= conv.max_tokens {
            return reply(text, None, Stop::StopSequence(seq.clone()));
        }
    }
    if tokens(full.chars().count()) > conv.max_tokens {
        return reply(truncate_to_tokens(&full, conv.max_tokens), None, Stop::MaxTokens);
    }
    reply(full, None, Stop::EndTurn)
}

/// `len` characters from `[A-Za-z0-9]` for response and tool-use ids.
pub fn random_id(rng: &mut SplitMix64, prefix: &str, len: usize) -> String {
    format!("{prefix}{}", rng.string(crate::ids::ALNUM, len))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conv() -> Conversation {
        Conversation {
            input_chars: 40,
            images: 0,
            last_user_text: "What is the weather in Paris?".into(),
            answered_tool: false,
            max_tokens: 512,
            stop_sequences: vec![],
            tools: vec![],
            tool_choice: ToolChoice::Auto,
        }
    }

    #[test]
    fn families_by_model_id() {
        assert_eq!(
            family(
                "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                InvocationType::InvokeModel
            ),
            Some(Family::Claude)
        );
        assert_eq!(
            family("amazon.nova-lite-v1:0", InvocationType::InvokeModel),
            Some(Family::Nova)
        );
        assert_eq!(
            family("meta.llama3-8b-instruct-v1:0", InvocationType::InvokeModel),
            None
        );
        assert_eq!(
            family("meta.llama3-8b-instruct-v1:0", InvocationType::Converse),
            Some(Family::Converse)
        );
    }

    #[test]
    fn plain_answer_ends_the_turn_with_usage_from_lengths() {
        let r = decide(&conv(), "m", true);
        assert_eq!(r.stop, Stop::EndTurn);
        let text = r.text.expect("text");
        assert!(text.contains("Paris"));
        assert_eq!(r.output_tokens, tokens(text.chars().count()));
        assert_eq!(r.input_tokens, 10);
    }

    #[test]
    fn tiny_budget_stops_on_max_tokens() {
        let r = decide(
            &Conversation {
                max_tokens: 2,
                ..conv()
            },
            "m",
            true,
        );
        assert_eq!(r.stop, Stop::MaxTokens);
        assert_eq!(r.output_tokens, 2);
    }

    #[test]
    fn tools_are_called_unless_the_last_turn_answered_one() {
        let tools = vec![Tool {
            name: "get_weather".into(),
            input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }];
        let r = decide(
            &Conversation {
                tools: tools.clone(),
                ..conv()
            },
            "m",
            true,
        );
        assert_eq!(r.stop, Stop::ToolUse);
        assert_eq!(r.tool_call, Some(("get_weather".into(), json!({"city": "Paris"}))));
        let answered = Conversation {
            tools: tools.clone(),
            answered_tool: true,
            ..conv()
        };
        assert_eq!(decide(&answered, "m", true).stop, Stop::EndTurn);
        let forced = Conversation {
            tool_choice: ToolChoice::Any,
            ..answered
        };
        assert_eq!(decide(&forced, "m", true).stop, Stop::ToolUse);
    }

    #[test]
    fn stop_sequences_cut_the_text() {
        let r = decide(
            &Conversation {
                stop_sequences: vec!["response".into()],
                ..conv()
            },
            "m",
            true,
        );
        assert_eq!(r.stop, Stop::StopSequence("response".into()));
        assert_eq!(r.text.as_deref(), Some("This is an emulated "));
    }
}
