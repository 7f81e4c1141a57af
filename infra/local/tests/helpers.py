"""What every end-to-end test on the local stack shares: request lines, the emulator's admin API, and
`run_batch`, which uploads a file, waits for its completion event and checks the promises every batch keeps
(docs/reliability.md): each non-blank input line in exactly one of output.jsonl and errors.jsonl; every
Bedrock job of the batch known to batch.json and terminal, none made twice; batch.json terminal; exactly one
completion event, whose detail-type matches the status.
"""

import json
import time
from collections import Counter

import stack
from localtools import execution_history, find_batch, wait_for_event

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def chat(custom_id, **body):
    body.setdefault("messages", [{"role": "user", "content": f"Say something about {custom_id}."}])
    body.setdefault("model", "gpt-4o-mini")
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def lines(n, prefix, **body):
    return [chat(f"{prefix}{i}", **body) for i in range(n)]


def emulator(path, payload):
    import urllib.request

    req = urllib.request.Request(
        f"{stack.EMULATOR_URL}/_emulator/{path}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def quota_stats(model):
    """What the emulator's concurrency quota saw for `model` since its last reset (`/_emulator/quota`): the most
    jobs in flight at once and the creates it refused."""
    import urllib.request

    with urllib.request.urlopen(f"{stack.EMULATOR_URL}/_emulator/quota", timeout=10) as r:
        return json.loads(r.read()).get(model, {"peak_active": 0, "refused": 0})


def s3_event(key, etag, bucket=None):
    """An S3 event notification for one created object, with every field of AWS's record structure that
    aws_lambda_events requires (submit's event type): a redelivery of an upload's event, as S3 may send."""
    from urllib.parse import quote_plus

    bucket = bucket or stack.INPUT_BUCKET
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:TEST"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "TEST", "x-amz-id-2": "TEST"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "redelivery",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key), "size": 1, "eTag": etag}},
    }]}


def get_json(c, key):
    return json.loads(c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=key)["Body"].read())


def get_jsonl(c, key):
    body = c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def bedrock_jobs(c, batch_id):
    """Every Bedrock job the emulator has for the batch (the name carries the batch id)."""
    jobs, token = [], None
    while True:
        kwargs = {"nameContains": batch_id, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = c["bedrock"].list_model_invocation_jobs(**kwargs)
        jobs += [j for j in page["invocationJobSummaries"] if j["jobName"].startswith(f"{batch_id}-job")]
        token = page.get("nextToken")
        if not token:
            return jobs


def check_jobs_accounted_for(c, batch_id, doc):
    """No Bedrock job bills unseen: each one of the batch is in batch.json and terminal, and no job index
    (one name, one clientRequestToken) was created twice."""
    found = bedrock_jobs(c, batch_id)
    names = Counter(j["jobName"] for j in found)
    assert all(n == 1 for n in names.values()), f"a job was created twice: {names}"
    recorded = {j["job_arn"] for j in doc["bedrock"]["jobs"] if j.get("job_arn")}
    for job in found:
        assert job["jobArn"] in recorded, f"{job['jobName']} ({job['jobArn']}) is not in batch.json"
        assert job["status"] in BEDROCK_TERMINAL, f"{job['jobName']} is still {job['status']}"
    return found


BEDROCK_TERMINAL = {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}


def sent_lines(input_lines):
    """custom_id → how many non-blank lines carry it (None: lines without a usable custom_id)."""
    sent = Counter()
    for line in input_lines:
        if not line.strip():
            continue
        try:
            cid = json.loads(line).get("custom_id")
        except (json.JSONDecodeError, AttributeError):
            cid = None
        sent[cid if isinstance(cid, str) and cid else None] += 1
    return sent


def check_batch(c, batch_id, input_lines, event, quiet=2.0):
    """The promises of one finished batch; returns what was read."""
    doc = get_json(c, f"results/{batch_id}/batch.json")
    output = get_jsonl(c, f"results/{batch_id}/output.jsonl")
    errors = get_jsonl(c, f"results/{batch_id}/errors.jsonl")

    # Every non-blank input line ends in exactly one place.
    sent = sent_lines(input_lines)
    got = Counter(l["custom_id"] for l in output + errors)
    assert len(output) + len(errors) == sum(sent.values())
    for cid, n in sent.items():
        if cid is not None:
            assert got[cid] == n, f"{cid}: {got[cid]} lines, expected {n}"
    once = {cid for cid, n in sent.items() if cid is not None and n == 1}
    assert {l["custom_id"] for l in output} & {l["custom_id"] for l in errors} & once == set()

    # batch.json is final and agrees with the files and the event.
    assert doc["status"] in TERMINAL
    assert doc["request_counts"] == {"total": sum(sent.values()), "completed": len(output), "failed": len(errors)}
    assert event["source"] == "batchdrop"
    assert event["detail-type"] == ("Batch Failed" if doc["status"] == "failed" else "Batch Completed")
    detail = event["detail"]
    assert detail["batch_id"] == batch_id
    assert detail["status"] == doc["status"]
    assert detail["request_counts"] == doc["request_counts"]
    assert detail["output_file"] == f"s3://{stack.OUTPUT_BUCKET}/results/{batch_id}/output.jsonl"
    assert detail["error_file"] == f"s3://{stack.OUTPUT_BUCKET}/results/{batch_id}/errors.jsonl"
    assert detail["batch_file"] == f"s3://{stack.OUTPUT_BUCKET}/results/{batch_id}/batch.json"

    jobs = check_jobs_accounted_for(c, batch_id, doc)
    # Exactly one completion event.
    try:
        extra = wait_for_event(c, batch_id, timeout=quiet)
    except TimeoutError:
        extra = None
    assert extra is None, f"a second completion event: {extra}"
    return {"batch_id": batch_id, "doc": doc, "output": output, "errors": errors, "event": event, "jobs": jobs}


def upload(c, name, input_lines, folder=None):
    key = f"inbox/{folder + '/' if folder else ''}{name}.jsonl"
    put = c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=key, Body=("\n".join(input_lines) + "\n").encode())
    return key, put


def upload_at_once(c, files):
    """Uploads every file of `files` (name → lines) at the same moment, each from its own thread, as a team that
    drops many files together; returns name → (key, PutObject reply)."""
    import threading

    uploads = {}

    def one(name):
        uploads[name] = upload(c, name, files[name])

    threads = [threading.Thread(target=one, args=(name,)) for name in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return uploads


def run_batch(c, name, input_lines, folder=None, during=None, timeout=240):
    """Uploads a file, waits for its completion event, and checks the promises every batch keeps."""
    key, put = upload(c, name, input_lines, folder)
    batch_id = find_batch(c, key, put, timeout=timeout)
    if during:
        during(batch_id)
    try:
        event = wait_for_event(c, batch_id, timeout=timeout)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; {where_it_stands(c, batch_id)}") from None
    r = check_batch(c, batch_id, input_lines, event)
    execution = c["sfn"].describe_execution(
        executionArn=f"arn:aws:states:{stack.REGION}:{stack.ACCOUNT}:execution:{stack.STATE_MACHINE}:{batch_id}"
    )
    assert execution["status"] == ("FAILED" if r["doc"]["status"] == "failed" else "SUCCEEDED")
    return r


def where_it_stands(c, batch_id: str) -> str:
    """What a batch without its event is doing: its status in batch.json and its execution's last steps, so that
    a timeout in CI says where the batch stopped without the local stack's logs."""
    try:
        doc = json.loads(
            c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/batch.json")["Body"].read()
        )
        status = f"batch.json status {doc.get('status')!r}, jobs {[j.get('status') for j in doc.get('bedrock', {}).get('jobs', [])]}"
    except Exception as e:  # noqa: BLE001 - a diagnostic: whatever it is, say it
        status = f"batch.json unreadable ({e})"
    try:
        history = execution_history(c, batch_id)
        steps = [
            e["type"] + (f" {e['stateEnteredEventDetails']['name']}" if "stateEnteredEventDetails" in e else "")
            for e in history[-12:]
        ]
        last = history[-1]["timestamp"].isoformat() if history else "-"
        execution = f"{len(history)} history events, the last at {last}: {steps}"
    except Exception as e:  # noqa: BLE001
        execution = f"no execution history ({e})"
    return f"{status}; {execution}"


def ids(lines_):
    return [l["custom_id"] for l in lines_]


