"""A fault-injecting HTTP reverse proxy for the local stack: faults on the wire, never flags in product code.

    python faultproxy.py [--seed N] PORT=UPSTREAM_URL [PORT=UPSTREAM_URL ...]

Each PORT listens on 127.0.0.1 and forwards to its upstream (the stack runs one port in front of moto and one
in front of the Bedrock emulator; the Lambda functions' AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_BEDROCK point at
them, while the tests' own clients talk to moto and the emulator directly, unfaulted). PORT 0 picks a free
port; the bound ports are printed on stdout ("faultproxy 127.0.0.1:PORT -> URL").

Requests are forwarded byte for byte: the request line and headers as received (Host included, so SigV4
signatures still hold), bodies streamed in bounded pieces whether framed by Content-Length or chunked
(an aws-chunked upload is just a body here), `Expect: 100-continue` honoured, HEAD without a body, client
connections kept alive. Each request goes to the upstream on a connection of its own.

What each request is: the AWS service comes from the SigV4 credential scope (`Credential=AKID/DATE/REGION/
SERVICE/aws4_request`, in the Authorization header or a presigned URL's X-Amz-Credential); the operation from
X-Amz-Target (JSON protocols: Step Functions, EventBridge, SQS), the form's Action (query protocol), or the
method and path (S3: PutObject, GetObject, HeadObject, ListObjectsV2, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, ...; the Bedrock REST API: CreateModelInvocationJob = POST /model-invocation-job,
GetModelInvocationJob = GET /model-invocation-job/{id}, ListModelInvocationJobs = GET /model-invocation-jobs,
StopModelInvocationJob = POST /model-invocation-job/{id}/stop). S3 is read path-style (what the SDKs use
against an IP endpoint), which also gives the bucket and the key.

Control API, on every proxy port, never forwarded (faultrules.py has the shapes): /_faults/rules (GET, POST
[?append=1], DELETE), /_faults/stats, /_faults/log, /_faults/seed, /_faults/reset.

A rule: {"id", "action", "skip", "times", "rate"} (faultrules.py) plus any of these filters, all of which must
match: "service" (SigV4 service name: "s3", "states", "events", "sqs", "bedrock", ...; a string or a list),
"operation" (e.g. "PutObject"; string or list), "method", "bucket", "path" (regex searched in path + query as
sent), "key" (regex searched in the decoded S3 key), "header" ({name: regex}; a missing header never
matches). The actions, in AWS terms:

  error          {"status", "code", "message"}: the service refuses the call and nothing runs upstream. The
                 answer is in the service's own wire format, so the SDK parses the code as for a real error:
                 S3 an XML <Error><Code/><Message/><RequestId/></Error> (a HEAD gets the status and no body,
                 as from S3, so SDKs see the bare status code), JSON protocols {"__type", "message"} with
                 x-amzn-ErrorType, REST JSON (Bedrock, Lambda) {"message"} with x-amzn-ErrorType, query
                 protocol an XML ErrorResponse. E.g. S3 503 SlowDown, 500 InternalError, 409
                 ConditionalRequestConflict; Bedrock 429 ThrottlingException; Step Functions 400
                 ThrottlingException. Defaults: status 500 (or the code's usual one), code from the status.
  delay          {"ms"}: the call is slow to arrive; it is forwarded after "ms" (default 1000).
  drop_response  {"reset"}: the lost response. The call is forwarded and runs upstream; its reply is read and
                 thrown away and the client connection is closed without a byte of response (with "reset":
                 true by a TCP RST instead of a FIN). The caller sees a connection error and will typically
                 retry a call that already took effect.
  hang           {"ms"}: the call runs upstream, then the caller gets nothing for "ms" (default 60000) and
                 then a closed connection: a read timeout on the client's side, after the effect.

Only 127.0.0.1. Stdlib only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultrules import Rule, RuleSet, one_of  # noqa: E402

HOST = "127.0.0.1"
CONTROL_PREFIX = "/_faults"
PIECE = 64 * 1024
MAX_LINE = 64 * 1024
FORM_PEEK_LIMIT = 1024 * 1024
UPSTREAM_TIMEOUT = 900.0
IDLE_TIMEOUT = 300.0
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business; Transfer-Encoding is framed here.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect", "transfer-encoding"}

ACTIONS = {
    "error": {"status", "code", "message"},
    "delay": {"ms"},
    "drop_response": {"reset"},
    "hang": {"ms"},
}
FILTERS = {"service", "operation", "method", "bucket", "path", "key", "header"}

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
TARGET_SERVICES = {"AWSStepFunctions": "states", "AWSEvents": "events", "AmazonSQS": "sqs", "AWSLambda": "lambda"}

# The REST JSON operations the local stack routes through the proxy: (method, path regex, operation).
REST_OPERATIONS = [
    ("POST", r"/model-invocation-job", "CreateModelInvocationJob"),
    ("GET", r"/model-invocation-jobs", "ListModelInvocationJobs"),
    ("GET", r"/model-invocation-job/[^/]+", "GetModelInvocationJob"),
    ("POST", r"/model-invocation-job/[^/]+/stop", "StopModelInvocationJob"),
    ("GET", r"/foundation-models", "ListFoundationModels"),
    ("GET", r"/foundation-models/[^/]+", "GetFoundationModel"),
    ("POST", r"/model/[^/]+/invoke", "InvokeModel"),
    ("POST", r"/model/[^/]+/converse", "Converse"),
    ("POST", r"/2015-03-31/functions/[^/]+/invocations", "Invoke"),
]
REST_OPERATIONS = [(m, re.compile(p + r"/?"), op) for m, p, op in REST_OPERATIONS]

# S3 bucket subresources: query parameter -> operation suffix, by method.
S3_BUCKET_SUB = {
    "versioning": "BucketVersioning",
    "notification": "BucketNotificationConfiguration",
    "policy": "BucketPolicy",
    "tagging": "BucketTagging",
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "lifecycle": "BucketLifecycleConfiguration",
    "encryption": "BucketEncryption",
    "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock",
}

DEFAULT_CODES = {
    "s3": {400: "BadRequest", 403: "AccessDenied", 404: "NoSuchKey", 409: "ConditionalRequestConflict",
           412: "PreconditionFailed", 500: "InternalError", 503: "SlowDown"},
    "json": {400: "ThrottlingException", 403: "AccessDeniedException", 429: "ThrottlingException",
             500: "InternalServerException", 503: "ServiceUnavailableException"},
}
DEFAULT_STATUS = {
    "SlowDown": 503, "ServiceUnavailable": 503, "ServiceUnavailableException": 503, "InternalError": 500,
    "InternalServerException": 500, "InternalFailure": 500, "ServiceException": 500, "AccessDenied": 403,
    "AccessDeniedException": 403, "NoSuchKey": 404, "NoSuchBucket": 404, "PreconditionFailed": 412,
    "ConditionalRequestConflict": 409, "TooManyRequestsException": 429, "ValidationException": 400,
    "ConflictException": 409, "ServiceQuotaExceededException": 400, "RequestTimeout": 400,
    "ThrottlingException": 400,
}
# Bedrock's ThrottlingException is a 429; the JSON-protocol services answer throttling with 400.
SERVICE_STATUS = {("bedrock", "ThrottlingException"): 429, ("lambda", "TooManyRequestsException"): 429}


class Call:
    """What a request is, in AWS terms."""

    __slots__ = ("service", "operation", "protocol", "bucket", "key", "form_body")

    def __init__(self):
        self.service: str | None = None
        self.operation: str | None = None
        self.protocol = "rest-json"
        self.bucket: str | None = None
        self.key: str | None = None
        self.form_body: bytes | None = None

    def label(self) -> str:
        return f"{self.service or '?'}:{self.operation or '?'}"


def s3_operation(method: str, path: str, query: dict, headers) -> tuple[str | None, str | None, str | None]:
    """(operation, bucket, key) of a path-style S3 request."""
    bucket_part, _, key_part = path.lstrip("/").partition("/")
    bucket = unquote(bucket_part) or None
    key = unquote(key_part) or None
    q = set(query)
    copy = "x-amz-copy-source" in headers
    if bucket is None:
        return ("ListBuckets" if method == "GET" else None), None, None
    if key is None:
        sub = next((S3_BUCKET_SUB[k] for k in query if k in S3_BUCKET_SUB), None)
        if method == "GET":
            if query.get("list-type") == ["2"]:
                return "ListObjectsV2", bucket, None
            for name, op in [("versions", "ListObjectVersions"), ("uploads", "ListMultipartUploads"), ("location", "GetBucketLocation")]:
                if name in q:
                    return op, bucket, None
            return (f"Get{sub}" if sub else "ListObjects"), bucket, None
        if method == "PUT":
            return (f"Put{sub}" if sub else "CreateBucket"), bucket, None
        if method == "DELETE":
            return (f"Delete{sub}" if sub else "DeleteBucket"), bucket, None
        if method == "HEAD":
            return "HeadBucket", bucket, None
        if method == "POST" and "delete" in q:
            return "DeleteObjects", bucket, None
        return None, bucket, None
    if method == "GET":
        for name, op in [("uploadId", "ListParts"), ("tagging", "GetObjectTagging"), ("acl", "GetObjectAcl"), ("attributes", "GetObjectAttributes")]:
            if name in q:
                return op, bucket, key
        return "GetObject", bucket, key
    if method == "HEAD":
        return "HeadObject", bucket, key
    if method == "PUT":
        if "uploadId" in q and "partNumber" in q:
            return ("UploadPartCopy" if copy else "UploadPart"), bucket, key
        if "tagging" in q:
            return "PutObjectTagging", bucket, key
        if "acl" in q:
            return "PutObjectAcl", bucket, key
        return ("CopyObject" if copy else "PutObject"), bucket, key
    if method == "POST":
        if "uploads" in q:
            return "CreateMultipartUpload", bucket, key
        if "uploadId" in q:
            return "CompleteMultipartUpload", bucket, key
        if "restore" in q:
            return "RestoreObject", bucket, key
        return None, bucket, key
    if method == "DELETE":
        if "uploadId" in q:
            return "AbortMultipartUpload", bucket, key
        if "tagging" in q:
            return "DeleteObjectTagging", bucket, key
        return "DeleteObject", bucket, key
    return None, bucket, key


def classify(method: str, raw_path: str, headers, peek_form) -> Call:
    call = Call()
    parts = urlsplit(raw_path)
    path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
    found = CREDENTIAL.search(headers.get("Authorization", ""))
    if found:
        call.service = found.group(4).lower()
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0].split("/")
        if len(scope) >= 5:
            call.service = scope[3].lower()
    target = headers.get("X-Amz-Target")
    content_type = headers.get("Content-Type", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        call.operation = operation or None
        call.protocol = "json"
        call.service = call.service or TARGET_SERVICES.get(prefix.split("_")[0])
    elif call.service == "s3":
        call.protocol = "s3"
        call.operation, call.bucket, call.key = s3_operation(method, path, query, headers)
    elif "Action" in query or content_type.startswith("application/x-www-form-urlencoded"):
        call.protocol = "query"
        action = query.get("Action", [None])[0]
        if action is None and method == "POST":
            call.form_body = peek_form()
            if call.form_body is not None:
                action = parse_qs(call.form_body.decode("utf-8", "replace")).get("Action", [None])[0]
        call.operation = action
    else:
        for m, pattern, operation in REST_OPERATIONS:
            if m == method and pattern.fullmatch(path):
                call.operation = operation
                break
    return call


def compile_rule(spec: dict) -> dict:
    compiled = {}
    for key in ("service", "operation", "method", "bucket"):
        values = one_of(spec, key)
        if values is not None:
            compiled[key] = {v.lower() for v in values} if key == "service" else ({v.upper() for v in values} if key == "method" else values)
    for key in ("path", "key"):
        if spec.get(key) is not None:
            try:
                compiled[key] = re.compile(spec[key])
            except (re.error, TypeError) as e:
                raise ValueError(f"rule {spec.get('id', '?')}: {key} is not a regular expression: {e}") from None
    if spec.get("header") is not None:
        if not isinstance(spec["header"], dict):
            raise ValueError(f"rule {spec.get('id', '?')}: header must be an object {{name: regex}}")
        try:
            compiled["header"] = {name: re.compile(rx) for name, rx in spec["header"].items()}
        except (re.error, TypeError) as e:
            raise ValueError(f"rule {spec.get('id', '?')}: header regex: {e}") from None
    action = spec["action"]
    if action == "error":
        status = spec.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError(f"rule {spec.get('id', '?')}: status must be an HTTP error status 400..599")
        for key in ("code", "message"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise ValueError(f"rule {spec.get('id', '?')}: {key} must be a string")
    if action in {"delay", "hang"} and spec.get("ms") is not None:
        ms = spec["ms"]
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 3_600_000:
            raise ValueError(f"rule {spec.get('id', '?')}: ms must be a number in 0..3600000")
    return compiled


def rule_matches(rule: Rule, call: Call, method: str, raw_path: str, headers) -> bool:
    c = rule.compiled
    if "service" in c and (call.service or "") not in c["service"]:
        return False
    if "operation" in c and call.operation not in c["operation"]:
        return False
    if "method" in c and method not in c["method"]:
        return False
    if "bucket" in c and call.bucket not in c["bucket"]:
        return False
    if "path" in c and not c["path"].search(raw_path):
        return False
    if "key" in c and (call.key is None or not c["key"].search(call.key)):
        return False
    for name, rx in c.get("header", {}).items():
        value = headers.get(name)
        if value is None or not rx.search(value):
            return False
    return True


def error_reply(rule: Rule, call: Call, method: str, request_content_type: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of an injected service error, in the call's wire protocol."""
    code = rule.get("code")
    status = rule.get("status")
    if status is None:
        status = SERVICE_STATUS.get((call.service, code)) or DEFAULT_STATUS.get(code or "", 500)
    if code is None:
        table = DEFAULT_CODES["s3" if call.protocol == "s3" else "json"]
        code = table.get(status) or ("InternalError" if call.protocol == "s3" else "InternalServerException")
    message = rule.get("message") or f"injected by the local stack's fault proxy (rule {rule.id})"
    request_id = uuid.uuid4().hex.upper()[:16] if call.protocol == "s3" else str(uuid.uuid4())
    if call.protocol == "s3":
        headers = [("x-amz-request-id", request_id), ("x-amz-id-2", uuid.uuid4().hex), ("Content-Type", "application/xml")]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>"
        ).encode()
    elif call.protocol == "json":
        content_type = request_content_type if request_content_type.startswith("application/x-amz-json") else "application/x-amz-json-1.0"
        headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code), ("Content-Type", content_type)]
        body = json.dumps({"__type": code, "message": message}).encode()
    elif call.protocol == "query":
        headers = [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")]
        sender = "Receiver" if status >= 500 else "Sender"
        body = (
            f"<ErrorResponse><Error><Type>{sender}</Type><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    else:
        headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code), ("Content-Type", "application/json")]
        body = json.dumps({"message": message}).encode()
    if method == "HEAD":
        body = b""
    return status, headers, body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class BodyError(Exception):
    """The client's request body ended early or was malformed."""


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: "ProxyServer"

    # -- plumbing ---------------------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass

    def parse_request(self) -> bool:
        self._expect_continue = False
        self._body_done = False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # Deferred: "100 Continue" goes out only when the body is wanted, so that an injected error can
        # answer instead, as S3 does.
        self._expect_continue = True
        return True

    def _send_continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def body_pieces(self):
        """The request body as received on the wire (chunked framing included), in bounded pieces."""
        if self._body_done:
            return
        self._body_done = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_continue()
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line.endswith(b"\n"):
                    raise BodyError("chunk size line missing or too long")
                yield line
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError(f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    for _ in range(1000):  # trailers, then the blank line
                        trailer = self.rfile.readline(MAX_LINE)
                        if not trailer.endswith(b"\n"):
                            raise BodyError("trailer missing or too long")
                        yield trailer
                        if trailer in (b"\r\n", b"\n"):
                            return
                    raise BodyError("too many trailers")
                yield from self._read_exactly(size + 2)  # the data and its CRLF
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise BodyError("bad Content-Length") from None
            if length > 0:
                self._send_continue()
                yield from self._read_exactly(length)

    def _read_exactly(self, n: int):
        while n > 0:
            piece = self.rfile.read(min(n, PIECE))
            if not piece:
                raise BodyError("the request body ended early")
            n -= len(piece)
            yield piece

    def drain_body(self) -> None:
        for _ in self.body_pieces():
            pass

    def peek_form(self) -> bytes | None:
        """The whole body of a small form POST (query protocol), read ahead so the Action can be known."""
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            return None
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not 0 <= length <= FORM_PEEK_LIMIT:
            return None
        return b"".join(self.body_pieces())

    def send_plain(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    # -- requests ---------------------------------------------------------------------------------------

    def handle_any(self) -> None:
        try:
            if urlsplit(self.path).path.startswith(CONTROL_PREFIX):
                return self.control()
            self.proxy()
        except BodyError as e:
            self.close_connection = True
            print(f"faultproxy: bad request from client: {e}", file=sys.stderr, flush=True)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any

    def control(self) -> None:
        parts = urlsplit(self.path)
        body = b"".join(self.body_pieces())
        status, doc = self.server.rules.control(self.command, parts.path[len(CONTROL_PREFIX):], parts.query, body)
        self.send_plain(status, [("Content-Type", "application/json")], json.dumps(doc).encode())

    def proxy(self) -> None:
        method, raw_path, headers = self.command, self.path, self.headers
        call = classify(method, raw_path, headers, self.peek_form)
        rule = self.server.rules.pick(lambda r: rule_matches(r, call, method, raw_path, headers), label=call.label())
        if rule is not None:
            entry = self.server.rules.record(
                rule, service=call.service, operation=call.operation, method=method, path=raw_path, bucket=call.bucket, key=call.key
            )
            print(f"faultproxy :{self.server.server_port}: {json.dumps(entry)}", file=sys.stderr, flush=True)
        action = rule.action if rule else None
        if action == "error":
            return self.inject_error(rule, call)
        if action == "delay":
            self.server.stopping.wait(float(rule.get("ms", 1000)) / 1000)
        self.forward(call, rule)

    def inject_error(self, rule: Rule, call: Call) -> None:
        status, headers, body = error_reply(rule, call, self.command, self.headers.get("Content-Type", ""))
        if self._expect_continue and not self._body_done:
            # The client waits for "100 Continue" before sending its body: answer instead, and close,
            # since the body it did not send cannot be told from the next request.
            self.close_connection = True
        else:
            self.drain_body()
        self.send_plain(status, headers, body)

    def forward(self, call: Call, rule: Rule | None) -> None:
        upstream = self.server.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    conn.putheader("Transfer-Encoding", "chunked")  # framing forwarded as received
                conn.putheader("Connection", "close")
                conn.endheaders()
                if call.form_body is not None:
                    conn.send(call.form_body)
                else:
                    for piece in self.body_pieces():
                        conn.send(piece)
                reply = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                return self.bad_gateway(e)
            if rule is not None and rule.action in {"drop_response", "hang"}:
                return self.swallow(reply, rule)
            self.relay(reply)
        finally:
            conn.close()

    def bad_gateway(self, error: Exception) -> None:
        print(f"faultproxy :{self.server.server_port}: upstream {self.server.upstream.geturl()} failed: {error!r}", file=sys.stderr, flush=True)
        if not self._body_done:
            self.close_connection = True  # the client's body was not read: the connection is out of step
        else:
            try:
                self.drain_body()
            except BodyError:
                self.close_connection = True
        body = f"fault proxy: upstream failed: {error}".encode()
        self.send_plain(502, [("Content-Type", "text/plain")], body)

    def swallow(self, reply: http.client.HTTPResponse, rule: Rule) -> None:
        """drop_response / hang: the upstream has answered; the client gets no response at all."""
        while reply.read(PIECE):
            pass
        self.close_connection = True
        if rule.action == "hang":
            deadline = time.monotonic() + float(rule.get("ms", 60000)) / 1000
            while not self.server.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                readable, _, _ = select.select([self.connection], [], [], min(left, 0.5))
                if readable:
                    try:
                        if self.connection.recv(1, socket.MSG_PEEK) == b"":
                            break  # the client gave up and closed
                    except OSError:
                        break
                    time.sleep(min(left, 0.5))  # bytes of a next request: still ignored
        if rule.get("reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def relay(self, reply: http.client.HTTPResponse) -> None:
        status = reply.status
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        has_length = False
        self.send_response_only(status, reply.reason)
        for name, value in reply.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "content-length":
                has_length = True
            self.send_header(name, value)
        rechunk = not no_body and not has_length
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        if rechunk:
            while True:
                piece = reply.read1(PIECE)
                if not piece:
                    break
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            while True:
                piece = reply.read(PIECE)
                if not piece:
                    break
                self.wfile.write(piece)
            if reply.length:
                self.close_connection = True  # the upstream's body ended short of its Content-Length


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, port: int, upstream: str, seed: int, stopping: threading.Event):
        self.upstream = urlsplit(upstream)
        if self.upstream.scheme != "http" or not self.upstream.hostname:
            raise SystemExit(f"faultproxy: upstream must be http://host:port, got {upstream}")
        self.rules = RuleSet(ACTIONS, FILTERS, compile_rule, seed=seed)
        self.stopping = stopping
        super().__init__((HOST, port), ProxyHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query an offline machine can stall on.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def parse_listen(spec: str) -> tuple[int, str]:
    port, sep, url = spec.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected PORT=http://HOST:PORT, got {spec!r}")
    return int(port), url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("listen", nargs="+", type=parse_listen, help="PORT=UPSTREAM_URL, one per proxy port")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rules' RNG (rate)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    servers = []
    for port, url in args.listen:
        server = ProxyServer(port, url, args.seed, stopping)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        print(f"faultproxy {HOST}:{server.server_port} -> {url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
