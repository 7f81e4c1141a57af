"""`make demo`: one OpenAI batch file, end to end on the local stack, with nothing but this machine.

Starts the stack, uploads infra/local/demo/demo-batch.jsonl into the input bucket's inbox/ (which triggers
the submit function as on AWS), shows the batch's progress from its batch.json, then prints the summary,
a few output and error lines and the completion event, and stops the stack.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import stack  # noqa: E402
from localtools import find_batch, wait_for_event  # noqa: E402

DEMO_FILE = Path(__file__).parent / "demo" / "demo-batch.jsonl"
KEY = "inbox/demo-batch.jsonl"


def show(title: str, lines: list[dict], pick) -> None:
    print(f"\n== {title}")
    for line in lines:
        print("  " + pick(line))


def main() -> None:
    stack.start()
    try:
        c = stack.clients()
        put = c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=KEY, Body=DEMO_FILE.read_bytes())
        print(f"\nuploaded {DEMO_FILE.name} ({sum(1 for _ in DEMO_FILE.open())} lines) to s3://{stack.INPUT_BUCKET}/{KEY}")
        batch_id = find_batch(c, KEY, put, timeout=300)
        print(f"batch {batch_id}")
        last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            doc = json.loads(c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/batch.json")["Body"].read())
            jobs = ", ".join(f"{j['model']}: {j['status']}" for j in doc["bedrock"]["jobs"]) or "no jobs"
            line = f"  {doc['status']:<11} {doc['request_counts']}  ({jobs})"
            if line != last:
                print(line)
                last = line
            if doc["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.5)
        event = wait_for_event(c, batch_id, timeout=120)
        out = c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/output.jsonl")["Body"].read().decode()
        err = c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/errors.jsonl")["Body"].read().decode()
        outputs = [json.loads(l) for l in out.splitlines() if l]
        errors = [json.loads(l) for l in err.splitlines() if l]
        print(f"\n== summary: {len(outputs)} answered, {len(errors)} errors, status {doc['status']}, usage {doc.get('usage')}")
        show(
            "first output lines (results/…/output.jsonl)",
            outputs[:3],
            lambda l: f"{l['custom_id']}: {json.dumps(l['response']['body']['choices'][0]['message']['content'])[:90]}",
        )
        show(
            "error lines (results/…/errors.jsonl)",
            errors[:8],
            lambda l: (l["response"] or {}).get("body", {}).get("error", {}).get("message") or json.dumps(l["error"]),
        )
        print("\n== completion event (EventBridge → SQS)")
        print(json.dumps(event, indent=2))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
