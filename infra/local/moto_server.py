"""moto server for the local stack, with Lambda invocations routed to the real functions, scripted Lambda
faults, Step Functions' Lambda error names, EventBridge Lambda targets, and atomic S3 conditional writes.

Usage: python moto_server.py PORT FUNCTIONS_JSON STATE_DIR, where FUNCTIONS_JSON maps each function name to
the base URL of the `cargo lambda watch` that serves it. Environment: BATCHDROP_FAULT_SEED (default 0) seeds
the Lambda fault rules' RNG.

Lambda router. moto runs the state machine (the real statemachine/batch.asl.json) and delivers S3
notifications, but without Docker its Lambda backend only echoes canned replies. This
wrapper makes every Lambda invocation, from a Step Functions Task, an S3 notification or an EventBridge rule,
a call to `cargo lambda watch`'s Invoke API, with Lambda's error semantics:

- RequestResponse (Step Functions, direct Invoke): a handler error comes back from cargo lambda as HTTP 500
  with {"errorType", "errorMessage"}; real Lambda answers 200 with `X-Amz-Function-Error: Unhandled`, which is
  what Step Functions' Retry and Catch read, so that is what this returns.
- Event (S3 notifications, which call invoke with no headers, EventBridge rules, or Invoke with InvocationType
  Event): asynchronous, retried twice on error as Lambda does (after 1 s and 2 s here, 1 and 2 minutes on
  AWS); a failure after the retries is appended to `<state dir>/async-failures.jsonl`, the local stand-in
  for the dead-letter queue.

Lambda faults. Rules (faultrules.py: id, skip, times, rate, first injecting rule wins) on the control API at
`/_lambda-faults/...` on this server's own port (rules, stats, log, seed, reset; never seen by moto). Filters:
"function" (bare name, string or list) and "invocation" ("RequestResponse" or "Event"). Actions:

  kill       the function's process dies mid-invocation. The invocation is sent to cargo lambda watch, and
             after "after_ms" (default: uniform 0..2000 ms from the seeded RNG), or as soon as the function is
             about to answer if that is sooner, the caller gets Lambda's reply for a crashed runtime: 200,
             FunctionError Unhandled, {"errorType": "Runtime.ExitError", "errorMessage": "RequestId: ...
             Error: Runtime exited with error: signal: killed"}. Step Functions names it Lambda.Unknown.
  timeout    the function exceeds its timeout: the caller waits "after_ms" (same default) and gets
             {"errorType": "Sandbox.Timedout", "errorMessage": "... Task timed out after N seconds"}, Unhandled.
             Step Functions names it Sandbox.Timedout.
  duplicate  Lambda delivers one asynchronous event twice (at-least-once delivery): two deliveries released
             at the same moment by one barrier. Event invocations only; decided once per event, when Lambda
             accepts it; each copy then runs (and is retried) on its own. cargo lambda watch runs them truly in
             parallel only with `--concurrency` >= 2 (stack.py sets it).
  error      the Invoke call itself fails and the function never runs: {"status", "code", "message"}, e.g.
             429 TooManyRequestsException (the default), 500 ServiceException, 502 ResourceNotReadyException.
             Step Functions names it Lambda.<code>. An Event invocation counts it as a failed attempt and
             retries, as Lambda's async queue does.

kill, timeout and error are decided per attempt: the async retries of an Event invocation meet the rules again
(so "times": 1 fails the first attempt only and the retry goes through).

A real kill is not possible with `cargo lambda watch` 1.9.2: it runs the function binary as its own child
(in a session of its own), and once that process dies (SIGKILL, or a panic that exits) watch never starts
another, so the pending invocation and every later one hang until watch is restarted. So kill and timeout
leave the function running: the invocation goes on to its end in the background and its reply is discarded
(a zombie). Whatever the function does before after_ms is done, as after a real crash; unlike a real crash
(or a real timeout, after which Lambda stops the sandbox) what it does after after_ms is done too. Code that
survives that survives the real thing.

Step Functions error names (patched in moto's interpreter, see use_step_functions_lambda_error_names): moto
5.2.5 names a Task's function error by the payload's errorType as such, and a failed Invoke call of a Lambda
ARN Task "Exception". AWS names a crash (Runtime.ExitError, Runtime.OutOfMemory, or no errorType at all)
Lambda.Unknown, a timeout Sandbox.Timedout (the errorType) and a failed Invoke call Lambda.<ErrorCode> (e.g.
Lambda.TooManyRequestsException, Lambda.ServiceException). The patch renames those three cases; a handler's
own errorType (e.g. BatchdropTransientError) passes unchanged.

EventBridge Lambda targets (use_eventbridge_lambda_targets): moto 5.2.5 delivers a matched event to SQS, log
groups, archives and other buses, but raises NotImplementedError for a Lambda function target, which fails the
PutEvents call of whoever sent the event. EventBridge invokes a Lambda target asynchronously, so the patch hands
the event to the router as an Event invocation: the Lambda fault rules with "invocation": "Event" (duplicate
included) apply to it, and so do the router's retries and async-failures.jsonl. The payload is the event as AWS
sends it: the whole envelope (`account` included, `time` as `2024-08-28T22:58:30Z`, without moto's own
`ingestion-time`), or what the target's InputTransformer makes of it. Every other target keeps moto's behaviour.

S3 conditional writes: moto 5.2.5 checks `If-None-Match: *` and `If-Match` on PutObject (412
PreconditionFailed, 404 NoSuchKey for If-Match on a missing key) and `If-None-Match: *` on
CompleteMultipartUpload, but not If-Match on CompleteMultipartUpload, and the check and the write are not
atomic (two racing `If-None-Match: *` puts can both succeed). use_atomic_conditional_writes adds the missing
check and runs every write to a key (PUT, POST, DELETE) under one lock per key (striped), so of racing
conditional writes exactly one wins and the others get 412. S3's 409 ConditionalRequestConflict never arises
here by itself: inject it with the fault proxy (an "error" rule with status 409).
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http import HTTPStatus
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultrules import RuleSet, one_of  # noqa: E402

HOST = "127.0.0.1"
LAMBDA_FAULTS_PREFIX = "/_lambda-faults"
INVOCATIONS = {"RequestResponse", "Event"}
DEFAULT_AFTER_MS = (0, 2000)
# Lambda Invoke errors: code -> HTTP status (Lambda API reference, Invoke, Errors).
LAMBDA_ERROR_STATUS = {
    "TooManyRequestsException": 429,
    "ServiceException": 500,
    "ResourceNotReadyException": 502,
    "EC2ThrottledException": 502,
    "ENILimitReachedException": 502,
    "ResourceConflictException": 409,
    "RequestTooLargeException": 413,
}
LAMBDA_ERROR_CODE = {429: "TooManyRequestsException", 500: "ServiceException", 502: "ResourceNotReadyException"}
# A function error with one of these errorTypes (or none) is a crash: Step Functions says Lambda.Unknown.
CRASH_ERROR_TYPES = {"Runtime.ExitError", "Runtime.OutOfMemory"}

LAMBDA_ACTIONS = {"kill": {"after_ms"}, "timeout": {"after_ms"}, "duplicate": set(), "error": {"status", "code", "message"}}
LAMBDA_FILTERS = {"function", "invocation"}


def compile_lambda_rule(spec: dict) -> dict:
    rid = spec.get("id", "?")
    compiled = {"function": one_of(spec, "function"), "invocation": one_of(spec, "invocation")}
    if compiled["invocation"] is not None and not compiled["invocation"] <= INVOCATIONS:
        raise ValueError(f"rule {rid}: invocation must be RequestResponse or Event")
    action = spec["action"]
    if action == "duplicate":
        if compiled["invocation"] not in (None, {"Event"}):
            raise ValueError(f"rule {rid}: duplicate applies to Event invocations only")
        compiled["invocation"] = {"Event"}
    compiled["phase"] = "event" if action == "duplicate" else "attempt"
    after = spec.get("after_ms")
    if after is not None and (isinstance(after, bool) or not isinstance(after, (int, float)) or not 0 <= after <= 900_000):
        raise ValueError(f"rule {rid}: after_ms must be a number in 0..900000")
    if action == "error":
        status, code = spec.get("status"), spec.get("code")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError(f"rule {rid}: status must be an HTTP error status 400..599")
        if code is not None and not isinstance(code, str):
            raise ValueError(f"rule {rid}: code must be a string")
        compiled["status"] = status or LAMBDA_ERROR_STATUS.get(code or "", 429 if code is None else 500)
        compiled["code"] = code or LAMBDA_ERROR_CODE.get(compiled["status"], "ServiceException")
    return compiled


class Outcome:
    """One invocation attempt: "ok", "function_error" (Unhandled, with a payload) or "service_error"
    (the Invoke call itself failed: status and code)."""

    __slots__ = ("kind", "status", "body", "code")

    def __init__(self, kind: str, status: int, body: bytes, code: str | None = None):
        self.kind, self.status, self.body, self.code = kind, status, body, code


class LambdaRouter:
    def __init__(self, functions: dict[str, str], state_dir: str, faults: RuleSet):
        self.functions = functions
        self.state_dir = state_dir
        self.faults = faults

    def call(self, function: str, payload: bytes) -> tuple[int, bytes]:
        """One call to cargo lambda watch's Invoke API."""
        base = self.functions.get(function)
        if base is None:
            body = {"errorType": "ResourceNotFoundException", "errorMessage": f"no local function {function}"}
            return 404, json.dumps(body).encode()
        url = f"{base.rstrip('/')}/2015-03-31/functions/{function}/invocations"
        request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=900) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError as e:
            body = {"errorType": "Lambda.ServiceException", "errorMessage": f"cargo lambda watch unreachable: {e}"}
            return 502, json.dumps(body).encode()

    def _pick(self, function: str, invocation: str, phase: str):
        def matches(rule) -> bool:
            c = rule.compiled
            return (
                c["phase"] == phase
                and (c["function"] is None or function in c["function"])
                and (c["invocation"] is None or invocation in c["invocation"])
            )

        if phase == "attempt":
            return self.faults.pick(matches, label=f"{function}:{invocation}")
        return self.faults.pick(matches, count=False)

    def attempt(self, function: str, payload: bytes, invocation: str) -> Outcome:
        """One invocation attempt, through the fault rules."""
        rule = self._pick(function, invocation, "attempt")
        if rule is None:
            status, body = self.call(function, payload)
            return Outcome("ok" if status == 200 else "function_error", status, body)
        request_id = str(uuid.uuid4())
        if rule.action == "error":
            code, status = rule.compiled["code"], rule.compiled["status"]
            self._record(rule, function, invocation, request_id, code=code, status=status)
            message = rule.get("message") or f"Rate exceeded (injected by the local stack, rule {rule.id})"
            return Outcome("service_error", status, json.dumps({"Type": "Service", "message": message}).encode(), code)
        after_ms = rule.get("after_ms")
        if after_ms is None:
            after_ms = round(self.faults.uniform(*DEFAULT_AFTER_MS))
        self._record(rule, function, invocation, request_id, after_ms=after_ms)
        finished = threading.Event()

        def zombie() -> None:
            # cargo lambda watch cannot survive a killed function (module docstring): the invocation runs on
            # and its reply is discarded.
            try:
                self.call(function, payload)
            finally:
                finished.set()

        threading.Thread(target=zombie, name=f"zombie-{function}", daemon=True).start()
        if rule.action == "kill":
            finished.wait(after_ms / 1000)
            body = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}
        else:
            time.sleep(after_ms / 1000)
            body = {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: Task timed out after {after_ms / 1000:.2f} seconds"}
        return Outcome("function_error", 200, json.dumps(body).encode())

    def _record(self, rule, function: str, invocation: str, request_id: str, **details) -> None:
        entry = self.faults.record(rule, function=function, invocation=invocation, request_id=request_id, **details)
        print(f"lambda fault: {json.dumps(entry)}", file=sys.stderr, flush=True)

    def invoke_event(self, function: str, payload: bytes) -> None:
        """Lambda accepts an asynchronous event; it is delivered (twice, under a duplicate rule) in the
        background."""
        rule = self._pick(function, "Event", "event")
        copies = 1
        if rule is not None:
            copies = 2
            self._record(rule, function, "Event", str(uuid.uuid4()), copies=copies)
        barrier = threading.Barrier(copies)
        for _ in range(copies):
            threading.Thread(target=self.deliver, args=(function, payload, barrier), daemon=True).start()

    def deliver(self, function: str, payload: bytes, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        outcome = None
        for attempt in range(3):
            outcome = self.attempt(function, payload, "Event")
            if outcome.kind == "ok":
                return
            if attempt < 2:
                time.sleep(attempt + 1)
        reply = outcome.body.decode("utf-8", "replace")
        if outcome.code:
            reply = json.dumps({"errorType": outcome.code, "status": outcome.status, "reply": reply})
        with open(os.path.join(self.state_dir, "async-failures.jsonl"), "a", encoding="utf-8") as f:
            record = {"function": function, "event": json.loads(payload or b"null"), "reply": reply}
            f.write(json.dumps(record) + "\n")


def use_lambda_router(router: LambdaRouter) -> None:
    """Replaces moto's LambdaFunction.invoke with the router."""
    from moto.awslambda import models as lambda_models
    from moto.core.exceptions import JsonRESTError

    class LambdaInvokeError(JsonRESTError):
        """A failed Invoke call, as Lambda answers it: the status, x-amzn-ErrorType and a JSON body."""

        def __init__(self, status: int, code: str, body: bytes):
            super().__init__(code, json.loads(body).get("message", ""))
            self.code = status
            self.description = body.decode()

    def invoke(self, body, request_headers, response_headers):  # replaces LambdaFunction.invoke
        if isinstance(body, str):
            payload = body.encode("utf-8")
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode("utf-8")
        # S3 notifications call invoke with no headers at all: an asynchronous invocation.
        invocation_type = (request_headers or {}).get("x-amz-invocation-type", "RequestResponse" if request_headers else "Event")
        if invocation_type == "Event":
            router.invoke_event(self.function_name, payload)
            return b""
        outcome = router.attempt(self.function_name, payload, "RequestResponse")
        if outcome.kind == "service_error":
            raise LambdaInvokeError(outcome.status, outcome.code, outcome.body)
        if outcome.kind == "function_error":
            response_headers["x-amz-function-error"] = "Unhandled"
        return outcome.body

    lambda_models.LambdaFunction.invoke = invoke


def use_eventbridge_lambda_targets(router: LambdaRouter) -> None:
    """EventBridge rules deliver to Lambda function targets through the router, asynchronously (docstring)."""
    from datetime import datetime, timezone

    from moto.events import models as events_models
    from moto.events.utils import EventTemplateParser
    from moto.utilities.arns import parse_arn

    original = events_models.Rule.send_to_targets

    def is_function(target: dict) -> bool:
        try:
            arn = parse_arn(target["Arn"])
        except ValueError:
            return False
        return arn.service == "lambda" and arn.resource_type == "function"

    def payload(target: dict, event: dict, transform_input: bool) -> bytes:
        transformer = target.get("InputTransformer") if transform_input else None
        if transformer:
            event = EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=event,
            )
        else:
            event = {k: v for k, v in event.items() if k != "ingestion-time"}
            if isinstance(event.get("time"), (int, float)):
                event["time"] = datetime.fromtimestamp(event["time"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(event).encode()

    class OtherTargets:
        """The rule as moto's own delivery sees it, with the function targets left out: a view, not a change to
        the rule, since other PutEvents calls deliver through the same rule at the same time."""

        def __init__(self, rule, targets: list):
            self._rule, self.targets = rule, targets

        def __getattr__(self, name):
            return getattr(self._rule, name)

    def send_to_targets(self, original_event, transform_input=True):  # replaces Rule.send_to_targets
        functions = [t for t in self.targets if is_function(t)]
        if functions and self.event_pattern.matches_event(original_event):
            for target in functions:
                # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
                name = target["Arn"].split(":")[6]
                try:
                    data = payload(target, original_event, transform_input)
                except ValueError as e:
                    # On AWS a target's bad input template fails that delivery, never the PutEvents call.
                    print(f"eventbridge: no delivery to {name}, the input transformer failed: {e}", file=sys.stderr, flush=True)
                    continue
                router.invoke_event(name, data)
        if len(functions) < len(self.targets):
            original(OtherTargets(self, [t for t in self.targets if not is_function(t)]), original_event, transform_input)

    events_models.Rule.send_to_targets = send_to_targets


def use_step_functions_lambda_error_names() -> None:
    """Makes moto's interpreter name Lambda failures as Step Functions does (module docstring)."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda

    def aws_name(ex: Exception) -> str | None:
        if isinstance(ex, lambda_eval_utils.LambdaFunctionErrorException):
            try:
                error_type = json.loads(ex.payload).get("errorType")
            except (ValueError, AttributeError):
                error_type = None
            return "Lambda.Unknown" if error_type is None or error_type in CRASH_ERROR_TYPES else None
        if isinstance(ex, ClientError):
            code = ex.response.get("Error", {}).get("Code") or "Unknown"
            return code if code.startswith("Lambda.") else f"Lambda.{code}"
        return None

    def renaming(original):
        def _from_error(self, env, ex):
            event = original(self, env, ex)
            name = aws_name(ex)
            if name is not None:
                event.error_name = CustomErrorName(name)
                for details in (event.event_details or {}).values():
                    if isinstance(details, dict) and "error" in details:
                        details["error"] = name
            return event

        return _from_error

    StateTaskLambda._from_error = renaming(StateTaskLambda._from_error)
    StateTaskServiceLambda._from_error = renaming(StateTaskServiceLambda._from_error)


def use_atomic_conditional_writes() -> None:
    """If-Match on CompleteMultipartUpload, and every write to a key under that key's lock (docstring)."""
    from urllib.parse import parse_qs, urlparse

    from moto.s3.exceptions import MissingKey, PreconditionFailed
    from moto.s3.responses import S3Response

    original = S3Response._key_response
    stripes = [threading.Lock() for _ in range(64)]

    def _key_response(self, request, full_url):
        if request.method not in {"PUT", "POST", "DELETE"}:
            return original(self, request, full_url)
        bucket = self.parse_bucket_name_from_url(request, full_url)
        key = self.parse_key_name()
        with stripes[hash((bucket, key)) % len(stripes)]:
            if_match = request.headers.get("If-Match")
            upload_id = parse_qs(urlparse(full_url).query, keep_blank_values=True).get("uploadId", [None])[0]
            if request.method == "POST" and upload_id and if_match:
                existing = self.backend.get_object(bucket, key)
                completed_already = existing is not None and existing.multipart and existing.multipart.id == upload_id
                if not completed_already:  # a retried Complete of this very upload stays idempotent, as in moto
                    if existing is None:
                        raise MissingKey(key=key)
                    if if_match.replace('"', "") != existing.etag.replace('"', ""):
                        raise PreconditionFailed("If-Match")
            return original(self, request, full_url)

    S3Response._key_response = _key_response


def serve(port: int, faults: RuleSet) -> None:
    """moto's server (as ThreadedMotoServer builds it) behind a WSGI layer that answers /_lambda-faults."""
    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(LAMBDA_FAULTS_PREFIX):
            return moto_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        status, doc = faults.control(environ["REQUEST_METHOD"], path[len(LAMBDA_FAULTS_PREFIX):], environ.get("QUERY_STRING", ""), body)
        data = json.dumps(doc).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    server = make_server(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=10)


def use_versioned_s3_events() -> None:
    """S3 event notifications as AWS sends them (the notification content structure in the S3 user guide).
    moto 5.2.5 leaves out two things:
    - a versioned bucket's `s3.object.versionId`, so two uploads of the same bytes under one key looked like one
      object version (same ETag) and became one batch locally where AWS makes two;
    - `userIdentity`, `requestParameters` and `responseElements`, which every record of AWS has and which
      aws_lambda_events (the submit function's event type) requires."""
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def _get_s3_event(event_name, bucket, key, notification_id):
        event = original(event_name, bucket, key, notification_id)
        version = getattr(key, "_version_id", None)
        for record in event["Records"]:
            record.setdefault("userIdentity", {"principalId": "AWS:LOCALSTACKUSER"})
            record.setdefault("requestParameters", {"sourceIPAddress": HOST})
            record.setdefault("responseElements", {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"})
            if version and getattr(bucket, "is_versioned", False):
                record["s3"]["object"]["versionId"] = version
        return event

    notifications._get_s3_event = _get_s3_event


def main() -> None:
    port, functions, state_dir = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    # The Step Functions interpreter calls back into the server at localhost:$MOTO_PORT, whatever address the server listens on.
    os.environ["MOTO_PORT"] = str(port)
    faults = RuleSet(LAMBDA_ACTIONS, LAMBDA_FILTERS, compile_lambda_rule, seed=int(os.environ.get("BATCHDROP_FAULT_SEED", "0")))
    router = LambdaRouter(functions, state_dir, faults)
    use_lambda_router(router)
    use_eventbridge_lambda_targets(router)
    use_step_functions_lambda_error_names()
    use_atomic_conditional_writes()
    use_versioned_s3_events()
    serve(port, faults)


if __name__ == "__main__":
    main()
