//! OpenAI batch output and error lines (`BatchRequestOutput`, SPEC §4.2), and the ids they carry.

use std::io::{self, Write};

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128_with_seed;

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

/// OpenAI's `ErrorResponse.error`: all four members present, `param` and `code` may be null (SPEC §4.2).
#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An HTTP-style failure of one request (SPEC §4.2, second form; §6.4).
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

/// A request that failed with an HTTP-style error. `type` is `server_error` from status 500 up (SPEC §6.4).
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
