"""The local stack's fault injection: the wire proxy (faultproxy.py), the Lambda router's faults, Step
Functions error names, EventBridge Lambda targets and S3 conditional writes (moto_server.py).

Runs its own processes on free ports, apart from any running stack: moto_server.py (the stack's wrapper), the
fault proxy in front of it (and of the Bedrock emulator when its binary is at hand: BEDROCK_EMULATOR_BIN or
the cargo target dir), and, in this process, a stub that speaks `cargo lambda watch`'s Invoke API, so no
function crate has to be built. Every process started here is stopped by PID.
"""

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError  # noqa: E402

LOCAL = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(LOCAL))
import stack  # noqa: E402
from localtools import Faults  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": REGION}
NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20)
BUCKET = "faults-bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stops one child by PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{proc.args[:2]} exited during start-up"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s"
            time.sleep(0.1)


# -- a stand-in for cargo lambda watch -------------------------------------------------------------------


class FunctionStub(ThreadingHTTPServer):
    """Speaks cargo lambda watch's Invoke API: POST /2015-03-31/functions/<name>/invocations. The event
    says what to do: {"sleep_ms": N} takes that long, {"fail": "<errorType>"} is a handler error (HTTP 500
    with errorType and errorMessage, as cargo lambda answers one). Every delivery is recorded."""

    daemon_threads = True

    def __init__(self):
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), StubHandler)

    def of(self, marker: str) -> list[dict]:
        with self.lock:
            return [d for d in self.deliveries if d["event"].get("marker") == marker]

    def wait_for(self, marker: str, count: int, timeout: float = 15, finished: bool = True) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(marker)
            if len(got) >= count and (not finished or all("end" in d for d in got[:count])):
                return got
            time.sleep(0.05)
        raise AssertionError(f"{marker}: {len(self.of(marker))} deliveries after {timeout} s, expected {count}")


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        parts = self.path.split("/")
        function = parts[3] if len(parts) > 4 else "?"
        event = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        if not isinstance(event, dict):
            event = {"value": event}
        record = {"function": function, "event": event, "start": time.monotonic()}
        with self.server.lock:
            self.server.deliveries.append(record)
        time.sleep(event.get("sleep_ms", 0) / 1000)
        if event.get("fail"):
            status, reply = 500, {"errorType": event["fail"], "errorMessage": "the handler failed"}
        else:
            status, reply = 200, {"ok": True, "marker": event.get("marker")}
        record["end"] = time.monotonic()
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# -- fixtures -------------------------------------------------------------------------------------------


def emulator_binary() -> str | None:
    for candidate in [os.environ.get("BEDROCK_EMULATOR_BIN"), stack.cargo_target() / "debug" / "bedrock-emulator"]:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("faults-state")
    stub = FunctionStub()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{stub.server_address[1]}"
    moto_port, aws_port, bedrock_port, emulator_port = free_port(), free_port(), free_port(), free_port()
    procs = []
    logs = open(state / "processes.log", "wb")
    try:
        moto = subprocess.Popen(
            [sys.executable, str(LOCAL / "moto_server.py"), str(moto_port), json.dumps({"fn": stub_url, "fn2": stub_url}), str(state)],
            stdin=subprocess.DEVNULL, stdout=logs, stderr=subprocess.STDOUT,
        )
        procs.append(moto)
        proxy = subprocess.Popen(
            [sys.executable, str(LOCAL / "faultproxy.py"), f"{aws_port}=http://127.0.0.1:{moto_port}",
             f"{bedrock_port}=http://127.0.0.1:{emulator_port}", "--seed", "7"],
            stdin=subprocess.DEVNULL, stdout=logs, stderr=subprocess.STDOUT,
        )
        procs.append(proxy)
        binary = emulator_binary()
        if binary:
            emulator = subprocess.Popen(
                [binary],
                env={**os.environ, "BEDROCK_EMULATOR_HOST": "127.0.0.1", "BEDROCK_EMULATOR_PORT": str(emulator_port),
                     "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "test",
                     "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": REGION, "RUST_LOG": "warn"},
                stdin=subprocess.DEVNULL, stdout=logs, stderr=subprocess.STDOUT,
            )
            procs.append(emulator)
        moto_url, aws_url, bedrock_url = (f"http://127.0.0.1:{p}" for p in (moto_port, aws_port, bedrock_port))
        wait_http(f"{moto_url}/moto-api/", moto)
        wait_http(f"{aws_url}/_faults/stats", proxy)
        if binary:
            wait_http(f"http://127.0.0.1:{emulator_port}/_emulator/health", emulator)
        config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/config", data=config, method="POST"), timeout=10).read()

        direct = lambda service, url=moto_url, **kw: boto3.client(service, endpoint_url=url, **CREDENTIALS, **kw)  # noqa: E731
        s3 = direct("s3")
        s3.create_bucket(Bucket=BUCKET)
        iam = direct("iam")
        iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
        code = BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("bootstrap", "served by the stub")
        for name in ["fn", "fn2"]:
            direct("lambda").create_function(
                FunctionName=name, Runtime="provided.al2023", Role=f"arn:aws:iam::{ACCOUNT}:role/fn-role",
                Handler="bootstrap", Code={"ZipFile": code.getvalue()},
            )
        yield {
            "state": state,
            "stub": stub,
            "emulator": bool(binary),
            "direct": direct,
            "proxied": lambda service, config=NO_RETRIES: boto3.client(
                service, endpoint_url=bedrock_url if service == "bedrock" else aws_url, **CREDENTIALS, config=config
            ),
            "s3": s3,
            "aws": Faults(aws_url),
            "bedrock": Faults(bedrock_url),
            "lambda": Faults(moto_url, "/_lambda-faults"),
        }
    finally:
        for proc in reversed(procs):
            stop(proc)
        stub.shutdown()
        stub.server_close()
        logs.close()


@pytest.fixture(autouse=True)
def no_rules_left(env):
    yield
    for faults in ("aws", "bedrock", "lambda"):
        env[faults].reset()


def client_error(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


# -- the proxy: forwarding ------------------------------------------------------------------------------


def test_without_rules_the_proxy_forwards_every_byte(env):
    s3 = env["proxied"]("s3")
    key = "dir/a key with spaces + ünïcode.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello")
    assert env["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"hello"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"hello"
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == 5
    assert key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="dir/")["Contents"]]

    big = os.urandom(24 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="big", Body=big)
    assert s3.get_object(Bucket=BUCKET, Key="big")["Body"].read() == big
    # Multipart: CreateMultipartUpload, UploadPart x3, CompleteMultipartUpload.
    from boto3.s3.transfer import TransferConfig

    s3.upload_fileobj(BytesIO(big), BUCKET, "multi", Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, use_threads=False))
    assert env["s3"].get_object(Bucket=BUCKET, Key="multi")["Body"].read() == big
    seen = env["aws"].stats()["seen"]
    for op in ["PutObject", "GetObject", "HeadObject", "ListObjectsV2", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]:
        assert seen.get(f"s3:{op}", 0) >= 1, (op, seen)
    assert seen["s3:UploadPart"] == 3


def raw_put(url: str, path: str, headers: dict, body_pieces) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    for piece in body_pieces:
        conn.send(piece)
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, data


def test_chunked_and_aws_chunked_uploads_pass_through_unchanged(env):
    url = env["aws"].url.removesuffix("/_faults")
    # HTTP chunked transfer encoding, in uneven chunks.
    data = os.urandom(300_000)
    pieces = [data[:1], data[1:70_000], data[70_000:]]
    framed = [b"%x\r\n%b\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    status, _ = raw_put(url, f"/{BUCKET}/chunked", {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}, framed)
    assert status == 200
    assert env["s3"].get_object(Bucket=BUCKET, Key="chunked")["Body"].read() == data
    # aws-chunked (what the SDKs send with a trailing checksum): the proxy forwards the encoded body as is,
    # and moto decodes it.
    payload = b"aws-chunked body " * 1000
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    encoded = b"%x\r\n%b\r\n0\r\nx-amz-checksum-crc32:%b\r\n\r\n" % (len(payload), payload, crc.encode())
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(len(encoded)),
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    status, reply = raw_put(url, f"/{BUCKET}/aws-chunked", headers, [encoded[:100], encoded[100:]])
    assert status == 200, reply
    assert env["s3"].get_object(Bucket=BUCKET, Key="aws-chunked")["Body"].read() == payload


def test_control_paths_are_never_forwarded(env):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(env["aws"].url + "/nothing-here", timeout=5)
    assert caught.value.code == 404
    assert "no control endpoint" in json.loads(caught.value.read())["error"]


def test_invalid_rules_are_refused(env):
    faults = env["aws"]
    for bad in [
        {"action": "explode"},
        {"action": "error", "colour": "red"},
        {"action": "delay", "path": "("},
        {"action": "error", "rate": 2},
        {"action": "error", "times": -1},
        [{"id": "a", "action": "hang"}, {"id": "a", "action": "hang"}],
    ]:
        with pytest.raises(ValueError, match="400"):
            faults.set(bad)
    assert faults.rules() == []
    assert faults.set([{"id": "one", "action": "delay", "ms": 0}]) == ["one"]
    assert faults.set([{"id": "two", "action": "delay", "ms": 0}], append=True) == ["one", "two"]


# -- the proxy: errors ----------------------------------------------------------------------------------


def test_s3_errors_are_s3_xml_and_the_call_never_runs(env):
    s3 = env["proxied"]("s3")
    env["aws"].set([{"id": "slow", "service": "s3", "operation": "PutObject", "key": "^slow/", "action": "error", "code": "SlowDown"}])
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="slow/x", Body=b"1"))
    assert e.response["Error"]["Code"] == "SlowDown"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/xml"
    assert "x-amz-request-id" in e.response["ResponseMetadata"]["HTTPHeaders"]
    assert "Contents" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="slow/")
    s3.put_object(Bucket=BUCKET, Key="fast/x", Body=b"1")  # not matched by the key filter

    # A HEAD error has no body, so the SDK knows only the status, as with S3.
    env["aws"].set([{"operation": "HeadObject", "action": "error", "status": 500, "code": "InternalError"}])
    e = client_error(lambda: s3.head_object(Bucket=BUCKET, Key="fast/x"))
    assert e.response["Error"]["Code"] == "500"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    # The conditional-write race S3 reports as 409, picked out by its header.
    env["aws"].set([{"operation": "PutObject", "header": {"If-None-Match": r"^\*$"}, "action": "error", "status": 409, "code": "ConditionalRequestConflict"}])
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="cond", Body=b"1", IfNoneMatch="*"))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("ConditionalRequestConflict", 409)
    s3.put_object(Bucket=BUCKET, Key="cond", Body=b"1")  # no If-None-Match: no match


def test_json_protocol_errors_carry_their_code(env):
    env["aws"].set([
        {"id": "sfn", "service": "states", "operation": "ListStateMachines", "action": "error", "code": "ThrottlingException"},
        {"id": "events", "service": "events", "operation": "PutEvents", "action": "error", "status": 500, "code": "InternalException"},
        {"id": "sqs", "service": "sqs", "operation": "GetQueueUrl", "action": "error", "status": 400, "code": "QueueDoesNotExist"},
    ])
    e = client_error(lambda: env["proxied"]("stepfunctions").list_state_machines())
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 400)
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    e = client_error(lambda: env["proxied"]("events").put_events(Entries=[{"Source": "x", "DetailType": "y", "Detail": "{}"}]))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalException", 500)
    sqs = env["proxied"]("sqs")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="nope")
    assert [r["injected"] for r in env["aws"].stats()["rules"]] == [1, 1, 1]
    # Other operations of the same services pass.
    env["proxied"]("stepfunctions").list_activities()


def test_bedrock_rest_errors_and_operation_names(env):
    bedrock = env["proxied"]("bedrock")
    env["bedrock"].set([{"id": "throttle", "service": "bedrock", "action": "error", "code": "ThrottlingException"}])
    job = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/abc123"
    calls = [
        lambda: bedrock.create_model_invocation_job(
            jobName="j", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r", modelId="anthropic.claude-3-haiku-20240307-v1:0",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://b/in.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}},
        ),
        lambda: bedrock.get_model_invocation_job(jobIdentifier=job),
        lambda: bedrock.list_model_invocation_jobs(),
        lambda: bedrock.stop_model_invocation_job(jobIdentifier=job),
    ]
    for call in calls:
        e = client_error(call)
        assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 429)
        assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    operations = [entry["operation"] for entry in env["bedrock"].log()]
    assert operations == ["CreateModelInvocationJob", "GetModelInvocationJob", "ListModelInvocationJobs", "StopModelInvocationJob"]


def test_bedrock_calls_reach_the_emulator_through_the_proxy(env):
    if not env["emulator"]:
        pytest.skip("no bedrock-emulator binary (set BEDROCK_EMULATOR_BIN or build it with cargo)")
    bedrock = env["proxied"]("bedrock")
    env["bedrock"].set([{"id": "slow-list", "operation": "ListModelInvocationJobs", "action": "delay", "ms": 300}])
    started = time.monotonic()
    assert bedrock.list_model_invocation_jobs()["invocationJobSummaries"] == []
    assert time.monotonic() - started >= 0.3
    e = client_error(lambda: bedrock.get_model_invocation_job(jobIdentifier="nope"))
    assert e.response["Error"]["Code"] in {"ResourceNotFoundException", "ValidationException"}  # the emulator's answer
    assert env["bedrock"].rule_stats("slow-list")["injected"] == 1


# -- the proxy: delay, lost responses, hangs ------------------------------------------------------------


def test_delay_holds_the_call_back(env):
    s3 = env["proxied"]("s3")
    s3.put_object(Bucket=BUCKET, Key="delayed", Body=b"1")
    env["aws"].set([{"id": "d", "operation": "GetObject", "action": "delay", "ms": 700}])
    started = time.monotonic()
    assert s3.get_object(Bucket=BUCKET, Key="delayed")["Body"].read() == b"1"
    assert time.monotonic() - started >= 0.7
    started = time.monotonic()
    s3.head_object(Bucket=BUCKET, Key="delayed")
    assert time.monotonic() - started < 0.5


def test_drop_response_runs_the_call_but_the_caller_sees_a_connection_error(env):
    s3 = env["proxied"]("s3")
    env["aws"].set([{"id": "lost", "operation": "PutObject", "key": "^lost$", "action": "drop_response", "times": 1}])
    with pytest.raises(ConnectionClosedError):
        s3.put_object(Bucket=BUCKET, Key="lost", Body=b"it happened")
    assert env["s3"].get_object(Bucket=BUCKET, Key="lost")["Body"].read() == b"it happened"
    assert env["aws"].rule_stats("lost") == {"id": "lost", "action": "drop_response", "matched": 1, "injected": 1}

    # With the SDK's retries, the retry repeats a call that already took effect, and succeeds.
    retrying = env["proxied"]("s3", Config(retries={"mode": "standard", "total_max_attempts": 3}))
    env["aws"].set([{"id": "lost-once", "operation": "PutObject", "key": "^lost2$", "action": "drop_response", "times": 1, "reset": True}])
    retrying.put_object(Bucket=BUCKET, Key="lost2", Body=b"twice")
    assert env["aws"].rule_stats("lost-once") == {"id": "lost-once", "action": "drop_response", "matched": 2, "injected": 1}


def test_hang_is_a_read_timeout_after_the_effect(env):
    s3 = env["proxied"]("s3", Config(retries={"total_max_attempts": 1}, read_timeout=1))
    env["aws"].set([{"id": "h", "operation": "PutObject", "action": "hang", "ms": 20000}])
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        s3.put_object(Bucket=BUCKET, Key="hung", Body=b"done anyway")
    assert 0.9 <= time.monotonic() - started < 5
    assert env["s3"].get_object(Bucket=BUCKET, Key="hung")["Body"].read() == b"done anyway"


# -- the proxy: skip, times, rate, stats, log -----------------------------------------------------------


def outcomes(s3, n: int) -> str:
    """'.' for a call that passed, 'x' for one that got the injected error."""
    out = ""
    for _ in range(n):
        try:
            s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1)
            out += "."
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InternalError"
            out += "x"
    return out


def test_skip_times_and_counting(env):
    s3 = env["proxied"]("s3")
    env["aws"].set([{"id": "st", "operation": "ListObjectsV2", "action": "error", "code": "InternalError", "skip": 2, "times": 3}])
    assert outcomes(s3, 8) == "..xxx..."
    stats = env["aws"].stats()
    assert stats["rules"] == [{"id": "st", "action": "error", "matched": 8, "injected": 3}]
    assert stats["totals"]["injected"] == 3 and stats["totals"]["requests"] >= 8
    log = env["aws"].log()
    assert [(e["rule"], e["service"], e["operation"], e["method"], e["bucket"]) for e in log] == [("st", "s3", "ListObjectsV2", "GET", BUCKET)] * 3
    assert all(e["path"].startswith(f"/{BUCKET}?") and e["time"] > 0 for e in log)


def test_first_injecting_rule_wins(env):
    s3 = env["proxied"]("s3")
    env["aws"].set([
        {"id": "first", "operation": "ListObjectsV2", "action": "error", "code": "InternalError", "times": 1},
        {"id": "second", "service": "s3", "action": "error", "code": "InternalError", "times": 1},
    ])
    assert outcomes(s3, 3) == "xx."
    assert [(r["matched"], r["injected"]) for r in env["aws"].stats()["rules"]] == [(3, 1), (2, 1)]


def test_rate_is_seeded_and_repeatable(env):
    s3 = env["proxied"]("s3")
    rule = [{"id": "coin", "operation": "ListObjectsV2", "action": "error", "code": "InternalError", "rate": 0.5}]
    env["aws"].seed(1234)
    env["aws"].set(rule)
    first = outcomes(s3, 40)
    env["aws"].seed(1234)
    env["aws"].set(rule)
    assert outcomes(s3, 40) == first
    assert 8 <= first.count("x") <= 32, first
    env["aws"].set([{**rule[0], "rate": 0}])
    assert outcomes(s3, 5) == "....."


# -- S3 conditional writes (moto_server.py) -------------------------------------------------------------


def test_conditional_put_object(env):
    s3 = env["s3"]
    etag = s3.put_object(Bucket=BUCKET, Key="cw", Body=b"v1", IfNoneMatch="*")["ETag"]
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="cw", Body=b"v2", IfNoneMatch="*"))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed", 412)
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="cw", Body=b"v2", IfMatch='"0123456789abcdef0123456789abcdef"'))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed", 412)
    new = s3.put_object(Bucket=BUCKET, Key="cw", Body=b"v2", IfMatch=etag)["ETag"]
    assert new != etag and s3.get_object(Bucket=BUCKET, Key="cw")["Body"].read() == b"v2"
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="cw", Body=b"v3", IfMatch=etag))  # stale now
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    e = client_error(lambda: s3.put_object(Bucket=BUCKET, Key="cw-missing", Body=b"v1", IfMatch=etag))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("NoSuchKey", 404)


def multipart(s3, key: str, body: bytes, **condition):
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=body)
    parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    return lambda: s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload=parts, **condition)


def test_conditional_complete_multipart_upload(env):
    s3 = env["s3"]
    etag = multipart(s3, "cmu", b"first", IfNoneMatch="*")()["ETag"]
    e = client_error(multipart(s3, "cmu", b"second", IfNoneMatch="*"))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed", 412)
    e = client_error(multipart(s3, "cmu", b"second", IfMatch='"stale-etag"'))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=BUCKET, Key="cmu")["Body"].read() == b"first"
    multipart(s3, "cmu", b"second", IfMatch=etag)()
    assert s3.get_object(Bucket=BUCKET, Key="cmu")["Body"].read() == b"second"
    e = client_error(multipart(s3, "cmu-missing", b"x", IfMatch=etag))
    assert e.response["Error"]["Code"] == "NoSuchKey"


def test_racing_conditional_writes_have_one_winner(env):
    s3 = boto3.client("s3", endpoint_url=env["s3"].meta.endpoint_url, **CREDENTIALS, config=Config(max_pool_connections=16, retries={"total_max_attempts": 1}))
    for round_ in range(5):
        key, results = f"race-{round_}", []
        start = threading.Barrier(8)

        def racer(i):
            start.wait(timeout=10)
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=b"%d" % i, IfNoneMatch="*")
                results.append("won")
            except ClientError as e:
                results.append(e.response["Error"]["Code"])

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results) == ["PreconditionFailed"] * 7 + ["won"], results


def test_the_write_lock_is_what_makes_the_race_safe(monkeypatch):
    """In-process and white-box: with a slow write the race is certain; without the lock every racer wins,
    with it exactly one does. Proves that the test above can fail."""
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    import moto_server

    original_put = S3Backend.put_object

    def slow_put(self, *args, **kwargs):
        time.sleep(0.3)  # between moto's If-None-Match check and the write
        return original_put(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    monkeypatch.setattr(S3Response, "_key_response", S3Response._key_response)  # restored after the test
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", **CREDENTIALS, config=Config(max_pool_connections=8, retries={"total_max_attempts": 1}))
        s3.create_bucket(Bucket="lock-test")

        def race(key: str) -> list[str]:
            results, start = [], threading.Barrier(4)

            def racer():
                start.wait(timeout=10)
                try:
                    s3.put_object(Bucket="lock-test", Key=key, Body=b"x", IfNoneMatch="*")
                    results.append("won")
                except ClientError as e:
                    results.append(e.response["Error"]["Code"])

            threads = [threading.Thread(target=racer) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            return results

        assert race("unlocked").count("won") > 1  # moto alone: the check and the write are apart
        moto_server.use_atomic_conditional_writes()
        assert sorted(race("locked")) == ["PreconditionFailed"] * 3 + ["won"]
    finally:
        server.stop()


# -- the Lambda router ----------------------------------------------------------------------------------


def invoke(env, event: dict, function: str = "fn", **kw):
    client = env["direct"]("lambda", config=NO_RETRIES)
    return client.invoke(FunctionName=function, Payload=json.dumps(event).encode(), **kw)


def test_duplicate_delivers_one_event_twice_at_once(env):
    env["lambda"].set([{"id": "dup", "function": "fn", "action": "duplicate", "times": 1}])
    reply = invoke(env, {"marker": "dup-1", "sleep_ms": 300}, InvocationType="Event")
    assert reply["StatusCode"] == 202
    first, second = env["stub"].wait_for("dup-1", 2)
    assert abs(first["start"] - second["start"]) < 0.25, "both copies are released together"
    assert first["start"] < second["end"] and second["start"] < first["end"], "they overlap"
    invoke(env, {"marker": "dup-2"}, InvocationType="Event")  # times: 1
    env["stub"].wait_for("dup-2", 1)
    time.sleep(0.3)
    assert len(env["stub"].of("dup-2")) == 1
    assert env["lambda"].rule_stats("dup") == {"id": "dup", "action": "duplicate", "matched": 2, "injected": 1}


def test_duplicate_reaches_s3_notifications(env):
    s3 = env["s3"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"LambdaFunctionConfigurations": [
            {"LambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn2", "Events": ["s3:ObjectCreated:*"],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "notify/"}]}}}
        ]},
    )
    try:
        env["lambda"].set([{"id": "dup-s3", "function": "fn2", "invocation": "Event", "action": "duplicate"}])
        s3.put_object(Bucket=BUCKET, Key="notify/one.jsonl", Body=b"{}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = [d for d in env["stub"].deliveries if d["function"] == "fn2" and "Records" in d["event"]]
            if len(got) >= 2:
                break
            time.sleep(0.05)
        assert len(got) == 2
        assert got[0]["event"] == got[1]["event"]
        assert unquote_plus(got[0]["event"]["Records"][0]["s3"]["object"]["key"]) == "notify/one.jsonl"
    finally:
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})


def test_eventbridge_rules_invoke_lambda_targets_asynchronously(env):
    events, sqs = env["direct"]("events"), env["direct"]("sqs")
    queue = sqs.create_queue(QueueName="eb-lambda")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="eb-lambda", EventPattern=json.dumps({"source": ["test.wake"]}))
    events.put_targets(Rule="eb-lambda", Targets=[
        {"Id": "fn2", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn2"},
        {"Id": "queue", "Arn": queue_arn},
        {"Id": "fn", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn", "InputTransformer": {
            "InputPathsMap": {"m": "$.detail.marker"}, "InputTemplate": '{"marker": "<m>"}'}},
    ])
    try:
        # The Event invocation's fault rules apply: one event reaches fn2 twice.
        env["lambda"].set([{"id": "dup-eb", "function": "fn2", "invocation": "Event", "action": "duplicate", "times": 1}])
        reply = events.put_events(Entries=[{
            "Source": "test.wake", "DetailType": "Wake Test", "Detail": json.dumps({"marker": "eb-1"}),
            "Resources": ["arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"],
        }])
        assert reply["FailedEntryCount"] == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = [d for d in env["stub"].deliveries if d["function"] == "fn2" and d["event"].get("detail", {}).get("marker") == "eb-1"]
            if len(got) >= 2:
                break
            time.sleep(0.05)
        assert len(got) == 2 and got[0]["event"] == got[1]["event"]
        event = got[0]["event"]
        assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
        assert event["id"] == reply["Entries"][0]["EventId"]
        assert (event["source"], event["detail-type"], event["account"], event["region"]) == ("test.wake", "Wake Test", ACCOUNT, REGION)
        assert event["resources"] == ["arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"]
        assert len(event["time"]) == 20 and event["time"].endswith("Z"), event["time"]
        assert env["lambda"].rule_stats("dup-eb")["injected"] == 1
        # A target's InputTransformer shapes its payload; the queue target works as before.
        env["stub"].wait_for("eb-1", 1)
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        assert [json.loads(m["Body"])["detail"] for m in messages] == [{"marker": "eb-1"}]
    finally:
        events.remove_targets(Rule="eb-lambda", Ids=["fn2", "queue", "fn"])
        events.delete_rule(Name="eb-lambda")


def test_direct_invocations_see_lambdas_replies(env):
    env["lambda"].set([
        {"id": "k", "function": "fn", "action": "kill", "after_ms": 100, "times": 1},
        {"id": "t", "function": "fn", "action": "timeout", "after_ms": 200, "times": 1},
        {"id": "e", "function": "fn", "action": "error", "times": 1},
    ])
    started = time.monotonic()
    reply = invoke(env, {"marker": "kill-direct", "sleep_ms": 1500})
    assert 0.1 <= time.monotonic() - started < 1.0, "the crash is reported at after_ms, not when the function ends"
    assert reply["FunctionError"] == "Unhandled"
    crash = json.loads(reply["Payload"].read())
    assert crash["errorType"] == "Runtime.ExitError" and "signal: killed" in crash["errorMessage"]
    # The zombie: the function itself still runs to its end (cargo lambda watch cannot lose its process).
    env["stub"].wait_for("kill-direct", 1, timeout=5)

    reply = invoke(env, {"marker": "timeout-direct"})
    assert reply["FunctionError"] == "Unhandled"
    assert json.loads(reply["Payload"].read())["errorType"] == "Sandbox.Timedout"

    e = client_error(lambda: invoke(env, {"marker": "error-direct"}))
    assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("TooManyRequestsException", 429)
    assert env["stub"].of("error-direct") == [], "a refused Invoke never runs the function"

    reply = invoke(env, {"marker": "fine"})  # every rule spent
    assert "FunctionError" not in reply and json.loads(reply["Payload"].read())["ok"] is True
    assert [(r["id"], r["injected"]) for r in env["lambda"].stats()["rules"]] == [("k", 1), ("t", 1), ("e", 1)]
    assert [e["action"] for e in env["lambda"].log()] == ["kill", "timeout", "error"]


def test_a_failed_event_invocation_is_retried_then_dead_lettered(env):
    env["lambda"].set([{"id": "k-event", "function": "fn", "invocation": "Event", "action": "kill", "after_ms": 0, "times": 1}])
    invoke(env, {"marker": "event-kill"}, InvocationType="Event")
    # The killed attempt (its zombie still runs) and Lambda's retry a second later.
    first, retry = env["stub"].wait_for("event-kill", 2)
    assert retry["start"] - first["start"] >= 0.9

    env["lambda"].set([{"id": "e-event", "function": "fn", "invocation": "Event", "action": "error", "code": "ServiceException"}])
    invoke(env, {"marker": "event-error"}, InvocationType="Event")
    dlq = env["state"] / "async-failures.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "event-error" not in (dlq.read_text() if dlq.exists() else ""):
        time.sleep(0.1)
    record = [json.loads(line) for line in dlq.read_text().splitlines() if "event-error" in line][-1]
    assert json.loads(record["reply"])["errorType"] == "ServiceException"
    assert env["lambda"].rule_stats("e-event")["injected"] == 3, "the first attempt and two retries"
    assert env["stub"].of("event-error") == []


RETRIED = ["Lambda.Unknown", "Sandbox.Timedout", "Lambda.TooManyRequestsException", "Lambda.ServiceException", "BatchdropTransientError"]


def run_machine(env, name: str, event: dict, retry: bool) -> tuple[dict, list[str]]:
    """Runs a one-Task state machine on fn (Retry on the names batch.asl.json retries, or none, and a Catch
    of States.ALL); returns the execution and the error names of the Task's failures, in order."""
    sfn = env["direct"]("stepfunctions")
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
        "End": True,
    }
    if retry:
        task["Retry"] = [{"ErrorEquals": RETRIED, "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}]
    definition = {"StartAt": "Call", "States": {"Call": task, "Caught": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/fn-role")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run", input=json.dumps(event))["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=execution)["events"]
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in history if e["type"] == "LambdaFunctionFailed"]
    return described, errors


@pytest.mark.parametrize(
    "rule, name",
    [
        ({"action": "kill", "after_ms": 50}, "Lambda.Unknown"),
        ({"action": "timeout", "after_ms": 50}, "Sandbox.Timedout"),
        ({"action": "error", "status": 429}, "Lambda.TooManyRequestsException"),
        ({"action": "error", "code": "ServiceException"}, "Lambda.ServiceException"),
    ],
    ids=["kill", "timeout", "throttled", "service-exception"],
)
def test_step_functions_names_lambda_failures_as_aws_does(env, rule, name):
    slug = rule["action"] + str(rule.get("status", rule.get("code", "")))
    env["lambda"].set([{"id": slug, "function": "fn", "invocation": "RequestResponse", **rule}])
    caught, errors = run_machine(env, f"caught-{slug}", {"marker": f"caught-{slug}"}, retry=False)
    assert caught["status"] == "SUCCEEDED"
    assert json.loads(caught["output"])["error"]["Error"] == name
    assert errors == [name]

    # The same failure once, under a Retry on that name: the retry succeeds.
    env["lambda"].set([{"id": slug, "function": "fn", "invocation": "RequestResponse", "times": 1, **rule}])
    retried, errors = run_machine(env, f"retried-{slug}", {"marker": f"retried-{slug}"}, retry=True)
    assert retried["status"] == "SUCCEEDED"
    assert "error" not in json.loads(retried["output"]), retried["output"]
    assert errors == [name]


def test_a_handlers_own_error_name_is_kept(env):
    caught, errors = run_machine(env, "handler-error", {"marker": "handler-error", "fail": "BatchdropFatalError"}, retry=True)
    assert json.loads(caught["output"])["error"]["Error"] == "BatchdropFatalError"
    assert errors == ["BatchdropFatalError"]
