//! Why a line was rejected, said so that a person can fix it: the line, the custom_id, the field.

use std::fmt;

/// The reason a line was rejected. Its code (`as_str`) is the OpenAI error `code` of its error line and
/// the key of the report's "rejected by reason" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    InvalidJson,
    LineTooLong,
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
    Input,
    EncodingFormat,
    Dimensions,
    UnsupportedModel,
    NoModel,
    /// Set by the job planner (issue: pipeline): too few records for a model's Bedrock minimum.
    BelowMinimum,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::LineTooLong => "line_too_long",
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
            Reason::Input => "invalid_input",
            Reason::EncodingFormat => "invalid_encoding_format",
            Reason::Dimensions => "invalid_dimensions",
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

/// Every user-given string in the message (custom_id, roles, URLs, names) is escaped with
/// [`escape_controls`]: the message is printed on terminals.
impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = format!("line {}", self.line);
        if let Some(id) = &self.custom_id {
            text.push_str(&format!(", custom_id {}", serde_json::Value::from(id.as_str())));
        }
        let r = &self.rejection;
        if r.field.is_empty() {
            text.push_str(&format!(": {}", r.message));
        } else {
            text.push_str(&format!(": {}: {}", r.field, r.message));
        }
        f.write_str(&escape_controls(&text))
    }
}

/// A string safe to print on a terminal: C0 and C1 control characters, DEL and the bidirectional
/// overrides become `\u{…}` escapes, so that a hostile file cannot move the cursor, recolour the screen or
/// reorder what a person reads. Borrowed when there is nothing to escape.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// At most `limit` bytes of `s`, cut at a character boundary; `…` marks a cut.
pub fn cut(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// serde_json's message for `e` without its ` at line 1 column N`: a JSONL line is one line, and where the
/// fault is, when it matters, is said apart.
pub fn serde_message(e: &serde_json::Error) -> String {
    without_position(&e.to_string()).to_string()
}

/// A serde_json message without its ` at line L column C` ending.
pub fn without_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}

/// `s` as a report or a warning shows it: control characters escaped, then [`cut`] to `limit` bytes.
pub fn shown(s: &str, limit: usize) -> String {
    cut(&escape_controls(s), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(escape_controls("plain é"), "plain é");
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\u{7}\r\n\u{9b}\u{202e}z"),
            "a\\u{1b}[2Jb\\u{7}\\u{d}\\u{a}\\u{9b}\\u{202e}z"
        );
    }
}
