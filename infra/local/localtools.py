"""Helpers shared by the demo and the end-to-end tests: find a batch, wait for its event."""

import json
import time

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
