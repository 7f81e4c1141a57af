//! OpenAI batch output and error lines (`BatchRequestOutput`, docs/formats.md#openai-lines) and the ids they carry, and the bodies
//! of their answers: `chat.completion` (docs/formats.md#openai-lines) and the embeddings list (docs/formats.md, "Embeddings").

use std::io::{self, Write};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::completion::{Completion, ToolCallOut, Usage};

/// Ids for a batch's lines: unique per batch and line, and the same every time the same batch is
/// converted, so that re-running a step rewrites identical files.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    seed: u64,
}

impl Ids {
    pub fn new(batch_id: &str) -> Self {
        Ids {
            seed: xxhash_rust::xxh3::xxh3_64(batch_id.as_bytes()),
        }
    }

    fn hex(&self, domain: u8, line: u64) -> String {
        let mut input = [0u8; 9];
        input[0] = domain;
        input[1..].copy_from_slice(&line.to_le_bytes());
        format!("{:032x}", xxh3_128_with_seed(&input, self.seed))
    }

    /// The line's `id`, `batch_req_…`.
    pub fn line_id(&self, line: u64) -> String {
        format!("batch_req_{}", self.hex(0, line))
    }

    /// `response.request_id`, `req_…`.
    pub fn request_id(&self, line: u64) -> String {
        format!("req_{}", self.hex(1, line))
    }

    /// The `chat.completion` id, `chatcmpl-…`.
    pub fn completion_id(&self, line: u64) -> String {
        format!("chatcmpl-{}", self.hex(2, line))
    }
}

#[derive(Serialize)]
struct Line<'a, B: Serialize> {
    id: &'a str,
    custom_id: Option<&'a str>,
    response: Option<Response<'a, B>>,
    error: Option<BatchError<'a>>,
}

#[derive(Serialize)]
struct Response<'a, B: Serialize> {
    status_code: u16,
    request_id: &'a str,
    body: B,
}

#[derive(Serialize)]
struct BatchError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

/// OpenAI's `ErrorResponse.error`: all four members present, `param` and `code` may be null (docs/formats.md#openai-lines).
#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An HTTP-style failure of one request (docs/formats.md#openai-lines, the first form of an error line).
pub struct HttpError<'a> {
    pub status: u16,
    pub message: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// Writes one line and its newline.
fn write_line<W: Write, B: Serialize>(out: &mut W, line: &Line<'_, B>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// A successful request: `response.status_code` 200 with the completion as body.
pub fn write_success<W: Write, B: Serialize>(
    out: &mut W,
    ids: &Ids,
    line: u64,
    custom_id: &str,
    body: B,
) -> io::Result<()> {
    let (id, request_id) = (ids.line_id(line), ids.request_id(line));
    write_line(
        out,
        &Line {
            id: &id,
            custom_id: Some(custom_id),
            response: Some(Response {
                status_code: 200,
                request_id: &request_id,
                body,
            }),
            error: None,
        },
    )
}

/// A request that failed with an HTTP-style error. `type` is `server_error` from status 500 up (docs/formats.md#openai-lines).
pub fn write_http_error<W: Write>(
    out: &mut W,
    ids: &Ids,
    line: u64,
    custom_id: Option<&str>,
    err: &HttpError<'_>,
) -> io::Result<()> {
    let (id, request_id) = (ids.line_id(line), ids.request_id(line));
    let kind = if err.status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    write_line(
        out,
        &Line {
            id: &id,
            custom_id,
            response: Some(Response {
                status_code: err.status,
                request_id: &request_id,
                body: ErrorBody {
                    error: ErrorObject {
                        message: err.message,
                        kind,
                        param: err.param,
                        code: err.code,
                    },
                },
            }),
            error: None,
        },
    )
}

/// A request that never ran (`batch_expired`, `batch_cancelled`, `batch_failed`): no response at all.
pub fn write_batch_error<W: Write>(
    out: &mut W,
    ids: &Ids,
    line: u64,
    custom_id: &str,
    code: &str,
    message: &str,
) -> io::Result<()> {
    let id = ids.line_id(line);
    write_line::<W, ()>(
        out,
        &Line {
            id: &id,
            custom_id: Some(custom_id),
            response: None,
            error: Some(BatchError { code, message }),
        },
    )
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
        // docs/formats.md#message-content: null content when there is no text but tool calls (or a refusal); "" otherwise.
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
        // docs/formats.md#openai-lines: `arguments` is a JSON string, not an object.
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

/// One vector of the answer, as OpenAI writes it.
pub enum Written<'a> {
    /// The vector's JSON text as Titan wrote it (checked to be an array of numbers).
    Float(&'a str),
    Base64(String),
}

impl Serialize for Written<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Written::Float(raw) => crate::fingerprint::Verbatim(raw).serialize(s),
            Written::Base64(text) => s.serialize_str(text),
        }
    }
}

/// The OpenAI embeddings response of one line.
#[derive(Serialize)]
pub struct EmbeddingsResponse<'a> {
    pub object: &'static str,
    pub data: Vec<EmbeddingOut<'a>>,
    pub model: &'a str,
    pub usage: EmbeddingsUsage,
}

#[derive(Serialize)]
pub struct EmbeddingOut<'a> {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Written<'a>,
}

#[derive(Serialize)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}
