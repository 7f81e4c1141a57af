"""`make demo`: one OpenAI batch file, end to end on the local stack, with nothing but this machine.

Starts the stack, uploads a file (infra/local/demo/demo-batch.jsonl, or `make demo FILE=my.jsonl
[MODEL=<Bedrock model id>]`) into the input bucket's inbox/ (which triggers the submit function as on AWS),
shows the batch's progress from its batch.json, then prints the summary, a few output and error lines and
the completion event, saves output.jsonl, errors.jsonl and batch.json under .local-stack/results/<batch-id>/,
and stops the stack.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import stack  # noqa: E402
from localtools import find_batch, wait_for_event  # noqa: E402

DEMO_FILE = Path(__file__).parent / "demo" / "demo-batch.jsonl"
RESULTS = Path(__file__).resolve().parents[2] / ".local-stack" / "results"


def answer(line: dict) -> str:
    """What an output line answered, cut short: a chat completion's text, or an embeddings list's size."""
    body = line["response"]["body"]
    if body.get("object") == "list":
        vectors = body.get("data", [])
        return f"{len(vectors)} embedding(s) of {len(vectors[0]['embedding']) if vectors else 0} numbers"
    return json.dumps(body["choices"][0]["message"]["content"])[:90]


def show(title: str, lines: list[dict], pick) -> None:
    print(f"\n== {title}")
    for line in lines:
        print("  " + pick(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEMO_FILE, help="the OpenAI batch file to run")
    parser.add_argument("--model", default="", help="the batch model (the stack's default model otherwise)")
    args = parser.parse_args()
    file: Path = args.file
    if not file.is_file():
        sys.exit(f"make demo: {file}: no such file")
    key = f"inbox/{args.model}/{file.name}" if args.model else f"inbox/{file.name}"
    stack.start()
    try:
        c = stack.clients()
        put = c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=key, Body=file.read_bytes())
        print(f"\nuploaded {file.name} ({sum(1 for _ in file.open('rb'))} lines) to s3://{stack.INPUT_BUCKET}/{key}")
        batch_id = find_batch(c, key, put, timeout=300)
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
            lambda l: f"{l['custom_id']}: {answer(l)}",
        )
        show(
            "error lines (results/…/errors.jsonl)",
            errors[:8],
            lambda l: (l["response"] or {}).get("body", {}).get("error", {}).get("message") or json.dumps(l["error"]),
        )
        print("\n== completion event (EventBridge → SQS)")
        print(json.dumps(event, indent=2))
        saved = RESULTS / batch_id
        saved.mkdir(parents=True, exist_ok=True)
        (saved / "output.jsonl").write_text(out)
        (saved / "errors.jsonl").write_text(err)
        (saved / "batch.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nsaved output.jsonl, errors.jsonl and batch.json in {saved}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
