"""How the account-wide job queue (docs/queue.md) shares a model's quota: N batches dropped at once on the
local stack, with a quota of Q jobs for their model on both sides (MODEL_JOB_QUOTAS and the emulator's).

    python infra/local/queue_bench.py [--batches N] [--quota Q] [--step-ms MS] [--check]

It starts the local stack itself with that quota and four invocations of each function at a time
(BATCHDROP_LAMBDA_CONCURRENCY, if higher, wins), and stops it at the end; a stack that is already running has
its own settings, so it refuses to start then. Each batch is one job of 100 requests. It prints:

- peak jobs in flight for the model, as the emulator counted them and from the jobs' own submit and end times
  (target: at most Q);
- creates the emulator refused for its quota (target: 0);
- the makespan, from the first job's submission to the last job's end, against the ideal, the sum of the jobs'
  durations over Q (or the longest job, if longer) (target: within 10%);
- the hand-off: from a job's end to the submission of the job that takes its slot, median and maximum (what
  the makespan loses to each slot's turn-over);
- the longest wait of any batch, from its creation to its job's submission, against its fair share: a batch
  created k-th waits for the k // Q rounds of jobs before it, each as long as the mean job; the figure is the
  largest excess of a batch's wait over its share.

Figures, not a timed test: a busy machine stretches the hand-offs between jobs. With --check (`make test`'s
short seed) it exits 1 if a batch breaks a promise (helpers.check_batch), more than Q jobs were in flight, or
Bedrock refused a create.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

import stack  # noqa: E402
from helpers import check_batch, emulator, lines, quota_stats, upload_at_once  # noqa: E402
from localtools import find_batch, wait_for_event  # noqa: E402

MODEL = stack.QUEUE_MODELS["fair"]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once (an end before a start at the same instant)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    open_, peak = 0, 0
    for _, step in edges:
        open_ += step
        peak = max(peak, open_)
    return peak


def run(c, batches: int, quota: int) -> tuple[dict, list[str]]:
    emulator("config", {"quotas": {"models": {MODEL: {"max_concurrent_jobs": quota}}}})
    emulator("quota/reset", {})
    stamp = int(time.time())
    files = {f"queue-bench-{stamp}-{i:03d}": lines(100, f"qb{i:03d}-", model=MODEL, max_tokens=10) for i in range(batches)}
    uploads = upload_at_once(c, files)
    failures: list[str] = []
    jobs = []
    for name, input_lines in files.items():
        try:
            batch_id = find_batch(c, *uploads[name], timeout=240)
            event = wait_for_event(c, batch_id, timeout=1800)
            r = check_batch(c, batch_id, input_lines, event, quiet=0.1)
            if r["doc"]["status"] != "completed":
                failures.append(f"{name}: {r['doc']['status']}")
            for job in r["jobs"]:
                described = c["bedrock"].get_model_invocation_job(jobIdentifier=job["jobArn"])
                jobs.append({
                    "created": r["doc"]["created_at"],
                    "submitted": described["submitTime"].timestamp(),
                    "ended": described["endTime"].timestamp(),
                })
        except (AssertionError, TimeoutError, KeyError) as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    stats = quota_stats(MODEL)
    if not jobs:
        return {"stats": stats}, failures or ["no job ran"]
    durations = [j["ended"] - j["submitted"] for j in jobs]
    mean = statistics.mean(durations)
    makespan = max(j["ended"] for j in jobs) - min(j["submitted"] for j in jobs)
    ideal = max(sum(durations) / quota, max(durations))
    order = sorted(jobs, key=lambda j: (j["created"], j["submitted"]))
    excess = [
        (j["submitted"] - j["created"]) - (k // quota) * mean
        for k, j in enumerate(order)
    ]
    # The hand-offs: the i-th job to start once the first Q have is started by the i-th job to end.
    starts = sorted(j["submitted"] for j in jobs)[quota:]
    ends = sorted(j["ended"] for j in jobs)
    handoffs = [s - e for s, e in zip(starts, ends)]
    figures = {
        "handoff_s": (statistics.median(handoffs), max(handoffs)) if handoffs else None,
        "stats": stats,
        "peak_from_times": peak_overlap([(j["submitted"], j["ended"]) for j in jobs]),
        "jobs": len(jobs),
        "mean_job_s": mean,
        "makespan_s": makespan,
        "ideal_s": ideal,
        "longest_wait_s": max(j["submitted"] - j["created"] for j in jobs),
        "fair_share_s": ((len(order) - 1) // quota) * mean,
        "worst_excess_s": max(excess),
    }
    return figures, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--quota", type=int, default=5)
    parser.add_argument("--step-ms", type=int, default=1000, help="the emulator's time per job step (a job takes about 6 steps)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a batch breaks a promise, the quota was exceeded or a create refused")
    args = parser.parse_args()
    if args.batches < 1 or args.quota < 1:
        raise SystemExit("queue_bench: --batches and --quota must be at least 1")
    if stack.running("moto"):
        raise SystemExit("queue_bench: a local stack is running with its own settings; stop it first (make stack-down)")
    print(f"queue_bench: {args.batches} batches of one job at once, quota {args.quota} for {MODEL}", flush=True)
    os.environ["BATCHDROP_FUNCTION_ENV"] = json.dumps({"MODEL_JOB_QUOTAS": f"{MODEL}={args.quota}"})
    # Lambda runs the batches' invocations side by side; one at a time per function (the local stack's default)
    # would put every batch's turn in one line and measure that line instead of the queue's hand-offs.
    stack.LAMBDA_CONCURRENCY = max(stack.LAMBDA_CONCURRENCY, 4)
    stack.start()
    try:
        c = stack.clients()
        emulator("config", {"step_ms": args.step_ms})
        figures, failures = run(c, args.batches, args.quota)
    finally:
        stack.stop()
    stats = figures["stats"]
    problems = list(failures)
    if "makespan_s" in figures:
        peak = max(stats["peak_active"], figures["peak_from_times"])
        verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        print(f"peak jobs in flight: {stats['peak_active']} (emulator), {figures['peak_from_times']} (job times); "
              f"quota {args.quota}: {verdict(peak <= args.quota)}")
        print(f"creates refused for the quota: {stats['refused']}: {verdict(stats['refused'] == 0)}")
        over = figures["makespan_s"] / figures["ideal_s"] - 1
        print(f"makespan {figures['makespan_s']:.1f} s for {figures['jobs']} jobs of {figures['mean_job_s']:.1f} s on average; "
              f"ideal {figures['ideal_s']:.1f} s; {over:+.0%}: {verdict(over <= 0.10)} (target within 10%)")
        if figures["handoff_s"]:
            median, longest = figures["handoff_s"]
            print(f"hand-off from a job's end to the next job's submission: {median:.1f} s median, {longest:.1f} s max")
        print(f"longest wait of a batch {figures['longest_wait_s']:.1f} s; the last batch's fair share "
              f"{figures['fair_share_s']:.1f} s; largest excess of a batch's wait over its share {figures['worst_excess_s']:+.1f} s")
        if peak > args.quota:
            problems.append(f"{peak} jobs in flight, over the quota of {args.quota}")
        if stats["refused"]:
            problems.append(f"the emulator refused {stats['refused']} creates for its quota")
    for p in problems:
        print(f"queue_bench: {p}", file=sys.stderr)
    if args.check and problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
