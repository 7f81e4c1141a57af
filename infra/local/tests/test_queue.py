"""The account-wide job queue (docs/queue.md) on the local stack: many batches at once never put more jobs of a
model in flight than its quota, Bedrock refuses none of them, every batch completes, and a batch whose execution
is killed gives its slot back.

Each test uses a model no other test uses, with its quota set on both sides: MODEL_JOB_QUOTAS in the
functions' settings (stack.py) and the emulator's own concurrency quota, which counts what it saw."""

import json
import time

import stack
from helpers import check_batch, emulator, lines, quota_stats, upload, upload_at_once, where_it_stands
from localtools import find_batch, wait_for_event


def set_quota(model, n):
    emulator("config", {"quotas": {"models": {model: {"max_concurrent_jobs": n}}}})


def test_twenty_batches_at_once_share_a_quota_of_five_fairly(local_stack):
    c = local_stack
    model = stack.QUEUE_MODELS["fair"]
    assert stack.QUEUE_MODELS_QUOTA["fair"] == 5
    set_quota(model, 5)
    emulator("quota/reset", {})
    files = {f"queue-{i:02d}": lines(100, f"q{i:02d}-", model=model, max_tokens=10) for i in range(20)}
    uploads = upload_at_once(c, files)
    batches = {name: find_batch(c, *uploads[name], timeout=240) for name in files}
    results = {}
    for name, batch_id in batches.items():
        try:
            event = wait_for_event(c, batch_id, timeout=600)
        except TimeoutError as e:
            raise TimeoutError(f"{name}: {e}; {where_it_stands(c, batch_id)}") from None
        results[name] = check_batch(c, batch_id, files[name], event, quiet=0.2)

    for name, r in results.items():
        assert r["doc"]["status"] == "completed", (name, r["doc"]["status"])
        assert len(r["output"]) == 100 and not r["errors"], (name, r["errors"][:1])
    stats = quota_stats(model)
    # Never more than the quota in flight, and Bedrock was never asked for more.
    assert stats["refused"] == 0, stats
    assert 1 <= stats["peak_active"] <= 5, stats
    # Nothing left in the ledger: every slot given back, no one waiting.
    items = c["dynamodb"].query(
        TableName=stack.JOB_QUEUE_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"model#{model}"}},
        ConsistentRead=True,
    )["Items"]
    left = [i["sk"]["S"] for i in items if i["sk"]["S"] != "count"]
    assert left == [], left
    [count] = [i for i in items if i["sk"]["S"] == "count"]
    assert count["held"]["N"] == "0", count

    # First come, first served: the batches' jobs were created in the order the batches were created.
    created = sorted(results.values(), key=lambda r: r["doc"]["created_at"])
    submit_times = [
        c["bedrock"].get_model_invocation_job(jobIdentifier=r["jobs"][0]["jobArn"])["submitTime"] for r in created
    ]
    # Batches created in the same second share a place; across seconds, a later batch never starts first.
    by_second = {}
    for r, t in zip(created, submit_times):
        by_second.setdefault(r["doc"]["created_at"], []).append(t)
    seconds = sorted(by_second)
    for earlier, later in zip(seconds, seconds[1:]):
        assert min(by_second[earlier]) <= max(by_second[later]), (earlier, later)


def test_a_killed_batch_gives_its_slot_back(local_stack):
    c = local_stack
    model = stack.QUEUE_MODELS["reclaim"]
    assert stack.QUEUE_MODELS_QUOTA["reclaim"] == 1
    set_quota(model, 1)
    emulator("quota/reset", {})
    # Slow jobs, so that the killed batch's job still runs when the next batch finds its slot taken.
    emulator("config", {"step_ms": 3000})
    try:
        first = lines(100, "k", model=model, max_tokens=10)
        key, put = upload(c, "killed-holder", first)
        holder = find_batch(c, key, put, timeout=240)
        arn = f"arn:aws:states:{stack.REGION}:{stack.ACCOUNT}:execution:{stack.STATE_MACHINE}:{holder}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            doc = json.loads(c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{holder}/batch.json")["Body"].read())
            if any(j.get("job_arn") for j in doc["bedrock"]["jobs"]):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the first batch never created its job; {where_it_stands(c, holder)}")
        c["sfn"].stop_execution(executionArn=arn, error="Killed", cause="test: the execution is killed")

        second = lines(100, "after-kill-", model=model, max_tokens=10)
        key, put = upload(c, "after-the-kill", second)
        waiting = find_batch(c, key, put, timeout=240)
        try:
            event = wait_for_event(c, waiting, timeout=300)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; {where_it_stands(c, waiting)}") from None
    finally:
        emulator("config", {"step_ms": 200})
    r = check_batch(c, waiting, second, event, quiet=0.2)
    assert r["doc"]["status"] == "completed" and len(r["output"]) == 100
    stats = quota_stats(model)
    assert stats == {"peak_active": 1, "refused": 0}, stats
    # The killed batch's job does not run on unseen: the batch that reclaimed its slot stopped it first.
    [job] = c["bedrock"].list_model_invocation_jobs(nameContains=holder)["invocationJobSummaries"]
    assert job["status"] == "Stopped", job


def test_refusals_from_a_quota_shared_with_another_tool_only_delay_jobs(local_stack):
    """Bedrock's quota is lower than the queue's (another tool uses the rest): the refused creates wait again in
    their place and the model's quota is capped, so every batch still completes and no job fails."""
    c = local_stack
    model = stack.QUEUE_MODELS["fair"]
    set_quota(model, 2)
    emulator("quota/reset", {})
    # Jobs long enough, and files dropped together, so that more than two batches want a job at once.
    emulator("config", {"step_ms": 1000})
    try:
        files = {f"shared-quota-{i}": lines(100, f"sq{i}-", model=model, max_tokens=10) for i in range(5)}
        uploads = upload_at_once(c, files)
        for name, body in files.items():
            batch_id = find_batch(c, *uploads[name], timeout=240)
            try:
                event = wait_for_event(c, batch_id, timeout=600)
            except TimeoutError as e:
                raise TimeoutError(f"{name}: {e}; {where_it_stands(c, batch_id)}") from None
            r = check_batch(c, batch_id, body, event, quiet=0.2)
            assert r["doc"]["status"] == "completed" and len(r["output"]) == 100, (name, r["doc"]["status"])
            assert [j["status"] for j in r["doc"]["bedrock"]["jobs"]] == ["Completed"], r["doc"]["bedrock"]["jobs"]
    finally:
        set_quota(model, 5)
        emulator("config", {"step_ms": 200})
    stats = quota_stats(model)
    assert stats["refused"] >= 1 and stats["peak_active"] <= 2, stats
