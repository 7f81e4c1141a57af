//! Why a line was rejected, said so that a person can fix it: the line, the custom_id, the field.

use std::fmt;

/// The reason a line was rejected. Its code (`as_str`) is the OpenAI error `code` of its error line and
/// the key of the report's "rejected by reason" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    InvalidJson,
    NotAnObject,
    InvalidType,
    MissingCustomId,
    InvalidCustomId,
    DuplicateCustomId,
    Method,
    Url,
    MissingBody,
    Messages,
    Role,
    Content,
    Image,
    ToolCall,
    Tool,
    ToolChoice,
    Sampling,
    MaxTokens,
    Stop,
    N,
    Stream,
    Logprobs,
    ResponseFormat,
    LegacyFunctions,
    UnsupportedModel,
    NoModel,
    /// Set by the job planner (issue: pipeline): too few records for a model's Bedrock minimum.
    BelowMinimum,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::InvalidType => "invalid_type",
            Reason::MissingCustomId => "missing_custom_id",
            Reason::InvalidCustomId => "invalid_custom_id",
            Reason::DuplicateCustomId => "duplicate_custom_id",
            Reason::Method => "invalid_method",
            Reason::Url => "invalid_url",
            Reason::MissingBody => "missing_body",
            Reason::Messages => "invalid_messages",
            Reason::Role => "invalid_role",
            Reason::Content => "invalid_content",
            Reason::Image => "invalid_image",
            Reason::ToolCall => "invalid_tool_call",
            Reason::Tool => "invalid_tool",
            Reason::ToolChoice => "invalid_tool_choice",
            Reason::Sampling => "invalid_sampling",
            Reason::MaxTokens => "invalid_max_tokens",
            Reason::Stop => "invalid_stop",
            Reason::N => "unsupported_n",
            Reason::Stream => "unsupported_stream",
            Reason::Logprobs => "unsupported_logprobs",
            Reason::ResponseFormat => "unsupported_response_format",
            Reason::LegacyFunctions => "unsupported_functions",
            Reason::UnsupportedModel => "unsupported_model",
            Reason::NoModel => "no_model",
            Reason::BelowMinimum => "below_bedrock_minimum",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a line, without saying which line: `field` is a path such as `body.messages[2].role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub field: String,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A rejected line: where it is, whose it is, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LineError {
    /// 1-based line number in the input file.
    pub line: u64,
    pub custom_id: Option<String>,
    pub rejection: Rejection,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(id) = &self.custom_id {
            write!(f, ", custom_id {}", serde_json::Value::from(id.as_str()))?;
        }
        let r = &self.rejection;
        if r.field.is_empty() {
            write!(f, ": {}", r.message)
        } else {
            write!(f, ": {}: {}", r.field, r.message)
        }
    }
}
