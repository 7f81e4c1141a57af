"""Crashes, timeouts and races, injected on the wire (docs/reliability.md): one test per way the pipeline
used to lose a batch, bill an unwatched job or get stuck, each named after its scenario. The faults come from
the local stack's fault layer, never from flags in the product: the proxy in front of moto and the Bedrock
emulator that the functions talk through (faultproxy.py), and the Lambda router in moto_server.py that kills,
times out or duplicates invocations. `helpers.check_batch` then checks every promise: each line in exactly one
place, every Bedrock job of the batch known and terminal, none created twice, batch.json terminal, one event
whose detail-type matches the status.
"""

import json
import time

import pytest
import stack
from helpers import check_batch, emulator, get_json, lines, run_batch, s3_event, upload
from localtools import find_batch, lambda_faults, wait_for_event, wire_faults


@pytest.fixture
def faults(local_stack):
    """The three fault layers, empty before and after each test."""
    layers = {"aws": wire_faults("aws"), "bedrock": wire_faults("bedrock"), "lambda": lambda_faults()}
    for layer in layers.values():
        layer.reset()
    yield layers
    for layer in layers.values():
        layer.clear()


def injected(layer, rule_id):
    return layer.rule_stats(rule_id)["injected"]


# 1. submit used to create jobs before batch.json and the execution existed.
def test_submit_killed_mid_way_is_finished_by_the_retried_event_with_no_orphaned_job(local_stack, faults):
    faults["lambda"].set([{"id": "kill-submit", "function": "submit", "action": "kill", "times": 1, "after_ms": 400}])
    r = run_batch(local_stack, "submit-killed", lines(100, "k"))
    assert injected(faults["lambda"], "kill-submit") == 1
    assert r["doc"]["status"] == "completed"
    assert len(r["output"]) == 100


def test_start_execution_failing_leaves_no_job_behind_and_the_retry_starts_it(local_stack, faults):
    faults["aws"].set([{"id": "no-start", "service": "states", "operation": "StartExecution", "action": "error",
                        "status": 500, "code": "InternalFailure", "times": 4}])
    c = local_stack
    key, put = upload(c, "start-fails", lines(100, "s"))
    batch_id = find_batch(c, key, put, timeout=120)
    event = wait_for_event(c, batch_id, timeout=240)
    assert injected(faults["aws"], "no-start") == 4
    r = check_batch(c, batch_id, lines(100, "s"), event)
    assert r["doc"]["status"] == "completed"


# 2. A create whose response was lost left a queued entry while the real job ran unobserved.
def test_lost_create_response_is_settled_by_finding_the_job(local_stack, faults):
    faults["bedrock"].set([{"id": "lost-create", "service": "bedrock", "operation": "CreateModelInvocationJob",
                            "action": "drop_response", "times": 3}])
    r = run_batch(local_stack, "lost-create", lines(100, "l"))
    assert injected(faults["bedrock"], "lost-create") == 3
    assert r["doc"]["status"] == "completed"
    assert len(r["jobs"]) == 1 and len(r["output"]) == 100


def test_cancel_while_a_create_answer_is_lost_stops_the_real_job(local_stack, faults):
    c = local_stack
    faults["bedrock"].set([{"id": "lost-create", "service": "bedrock", "operation": "CreateModelInvocationJob",
                            "action": "drop_response", "times": 3}])
    emulator("config", {"step_ms": 3000})
    try:
        def cancel(batch_id):
            deadline = time.monotonic() + 60
            while injected(faults["bedrock"], "lost-create") < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=f"cancel/{batch_id}", Body=b"")

        r = run_batch(c, "lost-then-cancelled", lines(100, "q"), during=cancel)
    finally:
        emulator("config", {"step_ms": 200})
    assert r["doc"]["status"] == "cancelled"
    assert [j["status"] for j in r["jobs"]] == ["Stopped"]


# 3. A check-jobs crash or timeout, or a short brownout, sent a long batch to the Catch.
def test_check_jobs_killed_and_timed_out_is_retried_and_the_batch_goes_on(local_stack, faults):
    # The first turn times out, the next two are killed (the first rule that injects wins), then it runs.
    faults["lambda"].set([
        {"id": "slow-check", "function": "check-jobs", "action": "timeout", "times": 1, "after_ms": 300},
        {"id": "kill-check", "function": "check-jobs", "action": "kill", "times": 2, "after_ms": 200},
    ])
    r = run_batch(local_stack, "check-killed", lines(100, "c"))
    assert injected(faults["lambda"], "kill-check") == 2
    assert injected(faults["lambda"], "slow-check") == 1
    assert r["doc"]["status"] == "completed"


def test_s3_and_bedrock_brownout_is_ridden_out(local_stack, faults):
    faults["aws"].set([{"id": "slowdown", "service": "s3", "key": r"^results/brownout-", "action": "error",
                        "status": 503, "code": "SlowDown", "skip": 2, "times": 12}])
    faults["bedrock"].set([{"id": "throttled", "service": "bedrock", "operation": "GetModelInvocationJob",
                            "action": "error", "status": 429, "code": "ThrottlingException", "times": 8}])
    r = run_batch(local_stack, "brownout", lines(100, "b"))
    assert injected(faults["aws"], "slowdown") == 12
    assert injected(faults["bedrock"], "throttled") == 8
    assert r["doc"]["status"] == "completed"


# 4. Racing writers, a failed read taken for "no batch", a terminal batch moved back.
def test_s3_event_delivered_twice_at_the_same_moment_makes_one_batch(local_stack, faults):
    faults["lambda"].set([{"id": "twice", "function": "submit", "invocation": "Event", "action": "duplicate", "times": 1}])
    c = local_stack
    r = run_batch(c, "twice-at-once", lines(100, "t"))
    assert injected(faults["lambda"], "twice") == 1
    executions = c["sfn"].list_executions(stateMachineArn=stack.FUNCTION_ENV["STATE_MACHINE_ARN"])["executions"]
    assert [e["name"] for e in executions if e["name"].startswith(r["batch_id"])] == [r["batch_id"]]
    assert r["doc"]["status"] == "completed", r["doc"]
    assert len(r["jobs"]) == 1, r["doc"]


def test_a_failed_read_of_batch_json_is_not_taken_for_no_batch(local_stack, faults):
    # submit's first read of batch.json fails with a 500: the event is retried, never staged twice over a
    # running batch; a late duplicate of the event then finds the batch and does nothing.
    c = local_stack
    faults["aws"].set([{"id": "read-fails", "service": "s3", "method": "GET", "key": r"^results/read-fails-.*/batch\.json$",
                        "action": "error", "status": 500, "code": "InternalError", "times": 4}])
    r = run_batch(c, "read-fails", lines(100, "r"))
    assert injected(faults["aws"], "read-fails") == 4
    event = s3_event("inbox/read-fails.jsonl", r["doc"]["metadata"]["source_version"])
    reply = c["lambda"].invoke(FunctionName="submit", Payload=json.dumps(event).encode())
    assert json.loads(reply["Payload"].read()) == [{"outcome": "duplicate", "batch_id": r["batch_id"]}]
    assert get_json(c, f"results/{r['batch_id']}/batch.json") == r["doc"], "a finished batch never moves back"


def test_lost_batch_json_write_responses_do_not_lose_state(local_stack, faults):
    # Writes of batch.json are carried out but their answers dropped: the writer retries with a stale ETag,
    # reads again, and re-applies its change; nothing is lost and nothing goes back.
    faults["aws"].set([{"id": "lost-write", "service": "s3", "method": "PUT", "key": r"^results/lost-write-.*/batch\.json$",
                        "action": "drop_response", "rate": 0.3, "times": 6}])
    r = run_batch(local_stack, "lost-write", lines(100, "w"))
    assert injected(faults["aws"], "lost-write") >= 1
    assert r["doc"]["status"] == "completed"


# 5. finalize saved batch.json only at its end; an unfinalized path left it non-terminal.
def test_finalize_killed_mid_way_runs_again_with_the_same_results(local_stack, faults):
    faults["lambda"].set([{"id": "kill-finalize", "function": "finalize", "action": "kill", "times": 1, "after_ms": 300}])
    r = run_batch(local_stack, "finalize-killed", lines(100, "f"))
    assert injected(faults["lambda"], "kill-finalize") == 1
    assert r["doc"]["status"] == "completed" and r["doc"]["finalizing_at"] is not None
    assert len(r["output"]) == 100


def test_finalize_that_cannot_run_still_leaves_a_terminal_batch(local_stack, faults):
    # The record map cannot be read at all: finalize fails every retry, in normal and in failure mode.
    faults["aws"].set([{"id": "no-map", "service": "s3", "method": "GET", "key": r"^staging/no-map-.*/record-map\.jsonl$",
                        "action": "error", "status": 403, "code": "AccessDenied"}])
    c = local_stack
    key, put = upload(c, "no-map", lines(100, "m"))
    batch_id = find_batch(c, key, put, timeout=120)
    event = wait_for_event(c, batch_id, timeout=400)
    assert event["detail-type"] == "Batch Failed"
    assert "finalize_error" in event["detail"]
    doc = get_json(c, f"results/{batch_id}/batch.json")
    assert doc["status"] == "failed"
    assert {e["code"] for e in doc["errors"]["data"]} >= {"batch_failed", "finalize_failed"}


# 6. Nothing bounded the loop: a job refused for quota forever stayed queued forever.
def test_a_job_refused_for_quota_forever_expires_after_the_queue_window(local_stack, faults):
    c = local_stack
    faults["bedrock"].set([{"id": "quota-full", "service": "bedrock", "operation": "CreateModelInvocationJob",
                            "action": "error", "status": 400, "code": "ServiceQuotaExceededException"}])

    def age(batch_id):
        # Once the loop has tried to create the job, move the batch's start back past the queue window
        # (QueueTimeoutHours, 24 h): a conditional write, like every writer of batch.json.
        deadline = time.monotonic() + 60
        while injected(faults["bedrock"], "quota-full") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(20):
            got = c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/batch.json")
            doc = json.loads(got["Body"].read())
            doc["created_at"] -= 25 * 3600
            try:
                c["s3"].put_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/batch.json",
                                   Body=json.dumps(doc).encode(), IfMatch=got["ETag"])
                return
            except c["s3"].exceptions.ClientError:
                time.sleep(0.1)
        raise AssertionError("could not age the batch")

    r = run_batch(c, "quota-forever", lines(100, "z"), during=age)
    assert injected(faults["bedrock"], "quota-full") >= 1
    assert r["jobs"] == [], "the job was never created"
    assert r["doc"]["status"] == "expired"
    assert {e["error"]["code"] for e in r["errors"]} == {"batch_expired"}
    assert "QUEUE_TIMEOUT_HOURS" in r["doc"]["bedrock"]["jobs"][0]["message"]


# 7. A cancel waited for the next poll; a failed stop was only logged.
def test_cancel_stops_jobs_at_once_and_a_failed_stop_is_retried(local_stack, faults):
    c = local_stack
    faults["bedrock"].set([{"id": "stop-fails", "service": "bedrock", "operation": "StopModelInvocationJob",
                            "action": "error", "status": 500, "code": "InternalServerException", "times": 4}])
    emulator("config", {"step_ms": 3000})
    try:
        def cancel(batch_id):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                doc = get_json(c, f"results/{batch_id}/batch.json")
                if any(j.get("job_arn") for j in doc["bedrock"]["jobs"]):
                    break
                time.sleep(0.2)
            c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=f"cancel/{batch_id}", Body=b"")

        r = run_batch(c, "cancel-stop-fails", lines(100, "x"), during=cancel)
    finally:
        emulator("config", {"step_ms": 200})
    assert injected(faults["bedrock"], "stop-fails") == 4
    assert r["doc"]["status"] == "cancelled"
    assert {e["error"]["code"] for e in r["errors"]} <= {"batch_cancelled"}


# 8. A batch whose every job failed was announced as Batch Completed.
def test_a_batch_whose_jobs_all_failed_is_announced_as_batch_failed(local_stack, faults):
    emulator("faults", {"match": "all-failed", "fault": "fail"})
    r = run_batch(local_stack, "all-failed", lines(100, "a"))
    assert r["doc"]["status"] == "failed"
    assert r["event"]["detail-type"] == "Batch Failed"


# The soak of `make chaos`, a short seed of it: a few batches under random faults at the soak's rates.
def test_chaos_short_seed_loses_nothing(local_stack, faults):
    import chaos

    figures = chaos.soak(seed=7, batches=4, timeout=420)
    assert figures["faults"] > 0, "the soak injected nothing"
    assert chaos.broken(figures) == 0, dict(figures)
