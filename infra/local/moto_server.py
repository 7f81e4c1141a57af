"""moto server for the local stack, with Lambda invocations routed to the real functions.

moto runs the state machine (the real statemachine/batch.asl.json) and delivers S3 notifications, but
without Docker its Lambda backend only echoes canned replies (OFFLINE.md, gap 1). This wrapper makes every
Lambda invocation, from a Step Functions Task or from an S3 notification, a call to `cargo lambda watch`'s
Invoke API, with Lambda's error semantics:

- RequestResponse (Step Functions): a handler error comes back from cargo lambda as HTTP 500 with
  {"errorType", "errorMessage"}; real Lambda answers 200 with `X-Amz-Function-Error: Unhandled`, which is
  what Step Functions' Retry and Catch read, so that is what this returns.
- Event (S3 notifications): asynchronous, retried twice on error as Lambda does; a failure after the retries
  is appended to `<state dir>/async-failures.jsonl`, the local stand-in for the dead-letter queue.

Usage: python moto_server.py PORT FUNCTIONS_JSON STATE_DIR, where FUNCTIONS_JSON maps each function name to
the base URL of the `cargo lambda watch` that serves it.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request


def main() -> None:
    port, functions, state_dir = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    # The Step Functions interpreter calls back into the server at localhost:$MOTO_PORT (OFFLINE.md, gap 5).
    os.environ["MOTO_PORT"] = str(port)

    from moto.awslambda import models as lambda_models
    from moto.server import ThreadedMotoServer

    def call(function: str, payload: bytes) -> tuple[int, bytes]:
        base = functions.get(function)
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

    def invoke_async(function: str, payload: bytes) -> None:
        for attempt in range(3):
            status, reply = call(function, payload)
            if status == 200:
                return
            time.sleep(attempt + 1)
        with open(os.path.join(state_dir, "async-failures.jsonl"), "a", encoding="utf-8") as f:
            record = {"function": function, "event": json.loads(payload or b"null"), "reply": reply.decode("utf-8", "replace")}
            f.write(json.dumps(record) + "\n")

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
            threading.Thread(target=invoke_async, args=(self.function_name, payload), daemon=True).start()
            return b""
        status, reply = call(self.function_name, payload)
        if status != 200:
            response_headers["x-amz-function-error"] = "Unhandled"
        return reply

    lambda_models.LambdaFunction.invoke = invoke

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
