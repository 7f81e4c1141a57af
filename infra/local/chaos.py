"""A seeded soak of the whole pipeline under random faults (docs/reliability.md), on the local stack.

    python infra/local/chaos.py [--seed N] [--batches B] [--timeout SECONDS]

It drops B files (varied sizes and models; some uploaded twice under one key, which makes two batches; some
at the same moment) while the fault layers fail AWS calls at fixed rates: at least 5% of the functions' calls
to S3, Step Functions, Bedrock and DynamoDB (the job queue) fail transiently (503 SlowDown, 500, throttling), 1% are carried out with
their response dropped, 1% of function invocations are killed mid-way, and a fifth of the upload events are
delivered twice at the same moment. It runs every batch to its end and checks each one: every input line in
exactly one of output.jsonl and errors.jsonl, every Bedrock job of the batch recorded and terminal, no job
created twice, batch.json terminal, the completion event sent. Its last line is

    chaos: B batches, L lines, F faults injected, 0 lines lost, 0 lines duplicated, 0 duplicate jobs, 0 orphaned jobs, 0 unfinished batches

with the figures it found; it exits 1 unless the last five are zero. `make chaos` runs it with the stack
started and stopped around it; `make test` runs a short seed (test_reliability.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

import stack  # noqa: E402
from helpers import BEDROCK_TERMINAL, TERMINAL, bedrock_jobs, chat, get_json, get_jsonl, sent_lines  # noqa: E402
from localtools import find_batch, lambda_faults, wait_for_event, wire_faults  # noqa: E402

MODELS = [None, "us.amazon.nova-lite-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0"]


def fault_rules(seed: int) -> dict[str, list[dict]]:
    """The fixed-rate faults of a soak, per layer."""
    transient = [
        {"id": "s3-slowdown", "service": "s3", "action": "error", "status": 503, "code": "SlowDown", "rate": 0.03},
        {"id": "s3-500", "service": "s3", "action": "error", "status": 500, "code": "InternalError", "rate": 0.02},
        {"id": "aws-dropped", "action": "drop_response", "rate": 0.01},
        {"id": "states-500", "service": "states", "action": "error", "status": 500, "code": "InternalFailure", "rate": 0.05},
        # The job queue's table (docs/queue.md).
        {"id": "dynamodb-500", "service": "dynamodb", "action": "error", "status": 500, "code": "InternalServerError", "rate": 0.02},
        {"id": "dynamodb-throttle", "service": "dynamodb", "action": "error", "status": 400, "code": "ThrottlingException", "rate": 0.03},
    ]
    bedrock = [
        {"id": "bedrock-throttle", "action": "error", "status": 429, "code": "ThrottlingException", "rate": 0.03},
        {"id": "bedrock-500", "action": "error", "status": 500, "code": "InternalServerException", "rate": 0.02},
        {"id": "bedrock-dropped", "action": "drop_response", "rate": 0.01},
    ]
    functions = [
        {"id": "events-twice", "function": "submit", "invocation": "Event", "action": "duplicate", "rate": 0.2},
        {"id": "killed", "action": "kill", "rate": 0.01},
    ]
    return {"aws": transient, "bedrock": bedrock, "lambda": functions}


def make_files(rng: random.Random, batches: int) -> list[dict]:
    """The uploads: name, folder, lines, and whether a second upload of the same key follows."""
    files = []
    i = 0
    while len(files) < batches:
        size = rng.choice([100, 120, 150, 240, 400])
        model = rng.choice(MODELS)
        name = f"chaos-{i}"
        body = []
        for n in range(size):
            extra = {"max_tokens": rng.choice([16, 64])}
            if model is None and rng.random() < 0.3:
                extra["model"] = MODELS[1]
            body.append(chat(f"{name}-{n}", **extra))
        if rng.random() < 0.05:
            body.insert(rng.randrange(len(body)), '{"custom_id": "cut", "method": "POST"')
        files.append({"name": name, "folder": model, "lines": body})
        if len(files) < batches and rng.random() < 0.2:
            files.append({"name": name, "folder": model, "lines": body})
        i += 1
    return files


def upload(c, f: dict) -> tuple[str, dict]:
    key = f"inbox/{f['folder'] + '/' if f['folder'] else ''}{f['name']}.jsonl"
    put = c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=key, Body=("\n".join(f["lines"]) + "\n").encode())
    return key, put


def check_one(c, batch_id: str, input_lines: list[str], got_event: bool) -> Counter:
    """What went wrong with one batch, counted."""
    bad = Counter()
    try:
        doc = get_json(c, f"results/{batch_id}/batch.json")
    except c["s3"].exceptions.NoSuchKey:
        bad["unfinished"] += 1
        return bad
    if doc["status"] not in TERMINAL or not got_event:
        bad["unfinished"] += 1
        return bad
    output = get_jsonl(c, f"results/{batch_id}/output.jsonl")
    errors = get_jsonl(c, f"results/{batch_id}/errors.jsonl")
    sent = sent_lines(input_lines)
    got = Counter(l["custom_id"] for l in output + errors)
    for cid, n in sent.items():
        if cid is None:
            continue
        bad["lost"] += max(0, n - got[cid])
        bad["duplicated"] += max(0, got[cid] - n)
    unnamed = sent.get(None, 0) - got.get(None, 0)
    bad["lost" if unnamed > 0 else "duplicated"] += abs(unnamed)
    found = bedrock_jobs(c, batch_id)
    names = Counter(j["jobName"] for j in found)
    bad["duplicate_jobs"] += sum(n - 1 for n in names.values())
    recorded = {j["job_arn"] for j in doc["bedrock"]["jobs"] if j.get("job_arn")}
    bad["orphaned"] += sum(1 for j in found if j["jobArn"] not in recorded or j["status"] not in BEDROCK_TERMINAL)
    return bad


def soak(seed: int, batches: int, timeout: float, out=print) -> Counter:
    """Runs one soak on a running stack; returns the figures of its last line."""
    c = stack.clients()
    rng = random.Random(seed)
    layers = {"aws": wire_faults("aws"), "bedrock": wire_faults("bedrock"), "lambda": lambda_faults()}
    for name, layer in layers.items():
        layer.reset()
        layer.seed(seed)
        layer.set(fault_rules(seed)[name])
    files = make_files(rng, batches)
    uploads: list[tuple[dict, str, dict]] = []
    lock = threading.Lock()

    def put(f):
        key, reply = upload(c, f)
        with lock:
            uploads.append((f, key, reply))

    try:
        # Some files go up at the same moment, the rest one after another.
        at_once = [f for f in files if rng.random() < 0.3]
        threads = [threading.Thread(target=put, args=(f,)) for f in at_once]
        for t in threads:
            t.start()
        for f in files:
            if f not in at_once:
                put(f)
        for t in threads:
            t.join()
        deadline = time.monotonic() + timeout
        figures = Counter()
        checked: set[str] = set()
        for f, key, reply in uploads:
            left = max(5.0, deadline - time.monotonic())
            try:
                batch_id = find_batch(c, key, reply, timeout=min(left, 180))
            except TimeoutError:
                out(f"chaos: {key} ({reply.get('VersionId')}): no batch.json")
                figures["unfinished"] += 1
                continue
            if batch_id in checked:
                # Two object versions, one batch: the second upload never ran as a batch of its own.
                out(f"chaos: {key} ({reply.get('VersionId')}) was taken for the upload of {batch_id}")
                figures["unfinished"] += 1
                continue
            checked.add(batch_id)
            try:
                wait_for_event(c, batch_id, timeout=max(5.0, deadline - time.monotonic()))
                got_event = True
            except TimeoutError:
                got_event = False
            bad = check_one(c, batch_id, f["lines"], got_event)
            if sum(bad.values()):
                out(f"chaos: {batch_id}: {dict(bad)}")
            figures += bad
            figures["lines"] += sum(sent_lines(f["lines"]).values())
        totals = {name: layer.stats()["totals"] for name, layer in layers.items()}
        stats = {name: t["injected"] for name, t in totals.items()}
    finally:
        for layer in layers.values():
            layer.clear()
    figures["batches"] = len(uploads)
    figures["faults"] = sum(stats.values())
    rates = {name: f"{t['injected']} of {t['requests']}" for name, t in totals.items()}
    out(f"chaos: faults injected per layer (of the calls it saw): {json.dumps(rates)}")
    out(
        f"chaos: {figures['batches']} batches, {figures['lines']} lines, {figures['faults']} faults injected, "
        f"{figures['lost']} lines lost, {figures['duplicated']} lines duplicated, {figures['duplicate_jobs']} duplicate jobs, "
        f"{figures['orphaned']} orphaned jobs, {figures['unfinished']} unfinished batches"
    )
    return figures


def broken(figures: Counter) -> int:
    return sum(figures[k] for k in ("lost", "duplicated", "duplicate_jobs", "orphaned", "unfinished"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args()
    started_here = not stack.running("moto")
    stack.start()
    try:
        figures = soak(args.seed, args.batches, args.timeout)
    finally:
        if started_here:
            stack.stop()
    sys.exit(1 if broken(figures) else 0)


if __name__ == "__main__":
    main()
