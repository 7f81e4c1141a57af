"""Records real completion events into infra/events/examples/, from runs on the local stack.

    .venv-local/bin/python infra/events/record_examples.py      # after `make tools`; takes a few minutes

Each file is the whole EventBridge event, as the local stack's rule delivered it to SQS, of one way a batch
ends. infra/checks/check_event_schema.py validates them against infra/events/batch-event.schema.json, so a
change of the event that the schema does not follow fails `make validate` once the examples are recorded
again. The runs use the real functions, state machine and Bedrock emulator (infra/local), on their own ports
and state folder, so a local stack someone else is running is left alone.

- batch-completed: the demo file (some lines rejected at submit), every job Completed.
- batch-failed-jobs-failed: Bedrock fails the only job (emulator fault "fail"): finalize runs as usual and its
  status is failed, so the state machine (Batch Failed?) announces a Batch Failed with the full detail.
- batch-failed: batch.json names a job by an ARN Bedrock refuses (ValidationException, a fatal error for
  check-jobs), so the state machine runs finalize in failure mode: Batch Failed with the full detail.
- batch-failed-unfinalized: an execution for a batch without batch.json: check-jobs and finalize both fail,
  and the state machine announces what it still knows.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "examples"

# Before importing the stack, which reads these once.
os.environ.setdefault("BATCHDROP_LOCAL_STATE", str(ROOT / "target" / "events-stack"))
os.environ.setdefault("BATCHDROP_MOTO_PORT", "5155")
os.environ.setdefault("BATCHDROP_EMULATOR_PORT", "5156")
os.environ.setdefault("BATCHDROP_LAMBDA_PORT", "9155")
sys.path.insert(0, str(ROOT / "infra" / "local"))
import stack  # noqa: E402
from localtools import find_batch, wait_for_event  # noqa: E402

TIMEOUT = 300
# Not a job id Bedrock accepts (lowercase letters and digits): GetModelInvocationJob answers ValidationException.
INVALID_JOB = f"arn:aws:bedrock:{stack.REGION}:{stack.ACCOUNT}:model-invocation-job/NOT_A_JOB_ID"


def chat(custom_id: str) -> str:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say something about {custom_id}."}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def upload(c, key: str, body: bytes) -> str:
    put = c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=key, Body=body)
    return find_batch(c, key, put, timeout=TIMEOUT)


def execute(c, batch_id: str) -> None:
    c["sfn"].start_execution(
        stateMachineArn=stack.FUNCTION_ENV["STATE_MACHINE_ARN"],
        name=batch_id,
        input=json.dumps({"batch_id": batch_id, "wait_seconds": 0}),
    )


def copy_as_running(c, batch_id: str, new_id: str) -> None:
    """A copy of a finished batch under a new id, its jobs InProgress under an ARN Bedrock refuses."""
    doc = json.loads(c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/batch.json")["Body"].read())
    doc["id"] = new_id
    doc["status"] = "in_progress"
    for job in doc["bedrock"]["jobs"]:
        job["status"] = "InProgress"
        job["job_arn"] = INVALID_JOB
    body = json.dumps(doc).encode()
    c["s3"].put_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{new_id}/batch.json", Body=body)
    old = f"staging/{batch_id}/"
    for obj in c["s3"].list_objects_v2(Bucket=stack.INPUT_BUCKET, Prefix=old).get("Contents", []):
        data = c["s3"].get_object(Bucket=stack.INPUT_BUCKET, Key=obj["Key"])["Body"].read()
        data = data.replace(batch_id.encode(), new_id.encode())
        c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=f"staging/{new_id}/" + obj["Key"][len(old):], Body=data)


def save(name: str, event: dict) -> None:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(event, indent=2) + "\n")
    detail = event.get("detail", {})
    print(f"{path.relative_to(ROOT)}: {event.get('detail-type')}, status {detail.get('status')}")


def main() -> None:
    try:
        stack.start()
        c = stack.clients()
        demo = (ROOT / "infra/local/demo/demo-batch.jsonl").read_bytes()
        completed = upload(c, "inbox/example.jsonl", demo)
        save("batch-completed", wait_for_event(c, completed, timeout=TIMEOUT))

        import urllib.request

        rule = json.dumps({"match": "failing-job", "fault": "fail"}).encode()
        req = urllib.request.Request(f"{stack.EMULATOR_URL}/_emulator/faults", data=rule, method="POST")
        req.add_header("Content-Type", "application/json")
        urllib.request.urlopen(req, timeout=10).read()
        failing = upload(c, "inbox/failing-job.jsonl", ("\n".join(chat(f"f{i}") for i in range(100)) + "\n").encode())
        save("batch-failed-jobs-failed", wait_for_event(c, failing, timeout=TIMEOUT))

        broken = "example-invalid-job-" + completed.rsplit("-", 1)[1]
        copy_as_running(c, completed, broken)
        execute(c, broken)
        save("batch-failed", wait_for_event(c, broken, timeout=TIMEOUT))

        missing = "example-missing-" + completed.rsplit("-", 1)[1]
        execute(c, missing)
        save("batch-failed-unfinalized", wait_for_event(c, missing, timeout=TIMEOUT))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
