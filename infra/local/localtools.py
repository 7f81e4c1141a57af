"""Helpers shared by the demo and the end-to-end tests: find a batch, wait for its event, script faults (on the
wire, in the Lambda router, and on Bedrock's job events)."""

import contextlib
import json
import time
import urllib.error
import urllib.request

import stack


def find_batch(c, key: str, put: dict | None, timeout: float) -> str:
    """The batch id of an uploaded object version (from its PutObject reply), once submit has written its
    batch.json. Submit names the version by version id, or ETag when the event carries none."""
    versions = {v for v in [(put or {}).get("VersionId"), (put or {}).get("ETag", "").strip('"')] if v}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pages = c["s3"].get_paginator("list_objects_v2").paginate(Bucket=stack.OUTPUT_BUCKET, Prefix="results/")
        for page in pages:
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/batch.json"):
                    continue
                doc = json.loads(c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=obj["Key"])["Body"].read())
                meta = doc.get("metadata", {})
                if meta.get("source_key") == key and (not versions or meta.get("source_version") in versions):
                    return doc["id"]
        time.sleep(0.5)
    raise TimeoutError(f"no batch for {key} after {timeout:.0f} s (see .local-stack/logs)")


def execution_history(c, batch_id: str) -> list[dict]:
    """Every history event of the batch's first execution, oldest first."""
    arn = f"arn:aws:states:{stack.REGION}:{stack.ACCOUNT}:execution:{stack.STATE_MACHINE}:{batch_id}"
    events, token = [], None
    while True:
        page = c["sfn"].get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


_seen: dict[str, dict] = {}


def wait_for_event(c, batch_id: str, timeout: float) -> dict:
    """The EventBridge event of a batch, read from the SQS queue the local rule sends to. Events of other
    batches read on the way are kept for their own callers."""
    queue = c["sqs"].get_queue_url(QueueName=stack.EVENTS_QUEUE)["QueueUrl"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if batch_id in _seen:
            return _seen.pop(batch_id)
        reply = c["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in reply.get("Messages", []):
            event = json.loads(m["Body"])
            _seen.setdefault(event.get("detail", {}).get("batch_id", "?"), event)
            c["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    raise TimeoutError(f"no event for batch {batch_id} after {timeout:.0f} s (see .local-stack/logs)")


def control_call(method: str, url: str, body=None):
    """One JSON call to a local control API (the fault layers', the emulator's); an HTTP error is a ValueError
    with the server's answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as e:
        raise ValueError(f"{method} {url}: {e.code} {e.read().decode('utf-8', 'replace')}") from None


class Faults:
    """Client of a fault control API: the wire proxy's (/_faults, faultproxy.py) or the Lambda router's
    (/_lambda-faults, moto_server.py). Rules are JSON objects as those modules describe them."""

    def __init__(self, base_url: str, prefix: str = "/_faults"):
        self.url = base_url.rstrip("/") + prefix

    def _call(self, method: str, path: str, body=None):
        return control_call(method, self.url + path, body)

    def set(self, rules, append: bool = False) -> list:
        """Replaces the rules (or adds to them); returns the ids of the rules now installed."""
        return self._call("POST", "/rules" + ("?append=1" if append else ""), rules)["rules"]

    def clear(self) -> None:
        self._call("DELETE", "/rules")

    def rules(self) -> list:
        return self._call("GET", "/rules")["rules"]

    def stats(self) -> dict:
        """{"rules": [{"id", "action", "matched", "injected"}], "totals": {"requests", "injected"}, "seen"}."""
        return self._call("GET", "/stats")

    def rule_stats(self, rule_id: str) -> dict:
        return next(r for r in self.stats()["rules"] if r["id"] == rule_id)

    def log(self) -> list:
        return self._call("GET", "/log")["log"]

    def seed(self, seed: int) -> None:
        self._call("POST", "/seed", {"seed": seed})

    def reset(self) -> None:
        """No rules, counters and log emptied, RNG back to its start-up seed."""
        self._call("POST", "/reset", {})

    @contextlib.contextmanager
    def scoped(self, rules):
        """The rules for the duration of a `with` block, then none."""
        self.set(rules)
        try:
            yield self
        finally:
            self.clear()


def wire_faults(which: str = "aws") -> Faults:
    """The fault proxy in front of moto ("aws": S3, Step Functions, EventBridge, SQS) or of the Bedrock emulator
    ("bedrock"), as the Lambda functions reach them."""
    return Faults(stack.PROXY_URLS[which], "/_faults")


def lambda_faults() -> Faults:
    """The Lambda router's faults (kill, timeout, duplicate, error), on moto's port."""
    return Faults(stack.MOTO_URL, "/_lambda-faults")


class EventFaults:
    """Client of the Bedrock emulator's event switch (/_emulator/events, infra/local/emulator/README.md): the
    job events it sends EventBridge, dropped or duplicated at seeded rates."""

    def __init__(self, base_url: str = stack.EMULATOR_URL):
        self.url = base_url.rstrip("/") + "/_emulator/events"

    def _call(self, method: str, path: str = "", body=None) -> dict:
        return control_call(method, self.url + path, body)

    def set(self, drop: float | None = None, duplicate: float | None = None, seed: int | None = None) -> dict:
        """Sets the given rates (0..1) and restarts the RNG from the seed (the given one, else the current one);
        returns stats()."""
        body = {k: v for k, v in {"drop": drop, "duplicate": duplicate, "seed": seed}.items() if v is not None}
        return self._call("POST", "", body)

    def stats(self) -> dict:
        """{"enabled", "url", "drop", "duplicate", "seed", "delivered" (copies EventBridge took), "dropped"
        (events never sent), "duplicated" (events sent twice), "failed" (copies whose send failed)}."""
        return self._call("GET")

    def reset(self) -> dict:
        """No drops or duplicates, the RNG back to its default seed, the counters zeroed."""
        return self._call("POST", "/reset", {})

    @contextlib.contextmanager
    def scoped(self, drop: float | None = None, duplicate: float | None = None, seed: int | None = None):
        """The rates for the duration of a `with` block, then none (the counters are kept for the caller)."""
        self.set(drop, duplicate, seed)
        try:
            yield self
        finally:
            self.set(drop=0.0, duplicate=0.0)
