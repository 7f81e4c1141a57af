"""The wake-up path under its faults (docs/wake.md), on the local stack's fast polls: whatever happens to the
wake function or to Bedrock's job events, every batch still ends with every promise kept. How soon results
follow Bedrock is measured by latency.py (`make latency`, and its short seed in `make test`), with the
production poll settings, where a wake-up and a poll can be told apart.
"""

import json
import time
import uuid

import pytest
import stack
from helpers import lines, run_batch
from localtools import execution_history, lambda_faults

PARK = "Wait For Jobs"
FALLBACK = "Wait Without Wake"


@pytest.fixture
def faults(local_stack):
    layer = lambda_faults()
    layer.reset()
    yield layer
    layer.clear()


def states_entered(c, batch_id: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in execution_history(c, batch_id) if e["type"].endswith("StateEntered")]


def async_failures(function: str) -> list[dict]:
    path = stack.STATE / "async-failures.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("function") == function]


def test_a_wake_function_that_cannot_be_invoked_falls_back_to_the_plain_wait(local_stack, faults):
    faults.set([{"id": "no-park", "function": "wake", "invocation": "RequestResponse", "action": "error",
                 "status": 429, "code": "TooManyRequestsException"}])
    r = run_batch(local_stack, "park-fails", lines(100, "p"))
    assert faults.rule_stats("no-park")["injected"] >= 1
    assert r["doc"]["status"] == "completed" and len(r["output"]) == 100
    entered = states_entered(local_stack, r["batch_id"])
    assert PARK in entered and FALLBACK in entered, entered
    # Every failed park was followed by the plain wait, never straight by another check.
    for i, name in enumerate(entered[:-1]):
        if name == PARK:
            assert entered[i + 1] in (FALLBACK, "Check Jobs"), entered


def test_a_wake_function_killed_mid_park_changes_nothing_but_the_wait(local_stack, faults):
    faults.set([{"id": "park-killed", "function": "wake", "invocation": "RequestResponse", "action": "kill",
                 "times": 2, "after_ms": 0}])
    r = run_batch(local_stack, "park-killed", lines(100, "q"))
    assert faults.rule_stats("park-killed")["injected"] >= 1
    assert r["doc"]["status"] == "completed" and len(r["output"]) == 100


def test_job_events_delivered_twice_change_nothing(local_stack, faults):
    faults.set([{"id": "event-twice", "function": "wake", "invocation": "Event", "action": "duplicate"}])
    r = run_batch(local_stack, "event-twice", lines(120, "d"))
    assert faults.rule_stats("event-twice")["injected"] >= 1
    assert r["doc"]["status"] == "completed" and len(r["output"]) == 120
    assert async_failures("wake") == []


def test_events_of_jobs_that_are_not_ours_are_ignored(local_stack, faults):
    c = local_stack
    log = stack.STATE / "logs" / "lambda-wake.log"
    before = log.stat().st_size if log.exists() else 0
    arn = f"arn:aws:bedrock:{stack.REGION}:{stack.ACCOUNT}:model-invocation-job/{uuid.uuid4().hex[:12]}"
    names = [
        # Another batchdrop stack's job: its batch is not in this deployment's output bucket.
        f"other-stack-{uuid.uuid4().hex[:16]}-job0",
        # Another tool's job whose name happens to match the rule's pattern.
        "nightly-job1",
    ]
    entries = [
        {
            "Source": "aws.bedrock",
            "DetailType": "Batch Inference Job State Change",
            "Resources": [arn],
            "Detail": json.dumps({"version": "0.0", "accountId": stack.ACCOUNT, "batchJobName": name, "batchJobArn": arn,
                                  "batchModelId": f"arn:aws:bedrock:{stack.REGION}::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
                                  "status": "Completed", "failureMessage": "", "creationTime": "Aug 28, 2024, 10:47:53 PM"}),
        }
        for name in names
    ]
    assert c["events"].put_events(Entries=entries)["FailedEntryCount"] == 0
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = log.read_bytes()[before:].decode("utf-8", "replace") if log.exists() else ""
        if all(name in text for name in names):
            break
        time.sleep(0.5)
    for name in names:
        assert name in text, f"the wake function never saw {name}"
    assert "Ignored" in text
    assert async_failures("wake") == []
