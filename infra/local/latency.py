"""How soon results follow Bedrock (docs/wake.md): batches on the local stack with the production poll
settings, with Bedrock's job events delivered, all dropped, and all duplicated.

    python infra/local/latency.py [--batches N] [--modes delivered,dropped,duplicated] [--check]

It starts the local stack itself, with the functions polling on the SAM template's defaults (PollInitialSeconds,
PollFactor, PollMaxSeconds) instead of the local stack's fast polls, and stops it at the end; a stack that is
already running has other settings, so it refuses to start then. For each mode it sets the emulator's event
switch, runs N batches at once to their completion event, checks every batch's promises (helpers.check_batch),
and prints, per mode:

- the job events the emulator delivered to EventBridge, dropped and duplicated;
- the latency: from the last job's terminal status (Bedrock's endTime) to output.jsonl and the final batch.json
  being written (S3's LastModified, whole seconds), median and maximum;
- the state transitions each execution used (its history's *StateEntered events), median and maximum;
- how the parked waits ended: woken by a wake-up, or timed out (the polling backstop);
- the bound the poll schedule alone gives: the time from the job's end to the next poll with every event lost,
  for today's schedule and for the schedule before events woke the loop (PollMaxSeconds 1800).

Targets: with events delivered, a median under 60 s; with every event dropped, no later than the poll schedule
before wake-ups (both are printed, never asserted: figures, not a timed test). With --check (`make test`'s short
seed) it exits 1 if a batch breaks a promise or a mode's parks did not end as that mode implies: with events
delivered or duplicated, each batch's last park is woken; with every event dropped, none is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

import stack  # noqa: E402
from helpers import check_batch, lines, upload  # noqa: E402
from localtools import EventFaults, execution_history, find_batch, wait_for_event  # noqa: E402

MODES = {"delivered": (0.0, 0.0), "dropped": (1.0, 0.0), "duplicated": (0.0, 1.0)}
PARK = "Wait For Jobs"
# The poll schedule before Bedrock's events woke the loop: the cap the backstop's longer one replaced.
OLD_POLL_MAX_SECONDS = 1800


def production_polls() -> dict[str, str]:
    """The poll settings a deployment gets: the template's defaults."""
    parameters = stack.template()["Parameters"]
    return {
        "POLL_INITIAL_SECONDS": str(parameters["PollInitialSeconds"]["Default"]),
        "POLL_FACTOR": str(parameters["PollFactor"]["Default"]),
        "POLL_MAX_SECONDS": str(parameters["PollMaxSeconds"]["Default"]),
    }


def poll_times(polls: dict[str, str], cap: float, horizon: float) -> list[float]:
    """Seconds after the first check at which the loop checks again when no event wakes it."""
    initial, factor = float(polls["POLL_INITIAL_SECONDS"]), float(polls["POLL_FACTOR"])
    times, t, n = [], 0.0, 0
    while t <= horizon:
        t += max(1.0, round(min(initial * factor**n, cap)))
        times.append(t)
        n += 1
    return times


def backstop_wait(polls: dict[str, str], cap: float, ended_after: float) -> float:
    """From a job's end (seconds after the first check) to the next poll of the schedule."""
    return next(t for t in poll_times(polls, cap, ended_after + cap) if t >= ended_after) - ended_after


def parks(events: list[dict]) -> list[str]:
    """How each parked wait ended, in order: "woken", "timed out" or "failed"."""
    ended, parked = [], False
    for e in events:
        kind = e["type"]
        if kind == "TaskStateEntered":
            parked = e.get("stateEnteredEventDetails", {}).get("name") == PARK
        elif parked and kind in ("TaskSucceeded", "TaskTimedOut", "TaskFailed"):
            ended.append({"TaskSucceeded": "woken", "TaskTimedOut": "timed out"}.get(kind, "failed"))
            parked = False
    return ended


def measure(c, batch_id: str, input_lines: list[str], event: dict, polls: dict[str, str]) -> dict:
    doc = check_batch(c, batch_id, input_lines, event, quiet=0.5)["doc"]
    ends = [
        c["bedrock"].get_model_invocation_job(jobIdentifier=j["job_arn"])["endTime"].timestamp()
        for j in doc["bedrock"]["jobs"]
        if j.get("job_arn")
    ]
    written = max(
        c["s3"].head_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/{name}")["LastModified"].timestamp()
        for name in ("output.jsonl", "batch.json")
    )
    arn = f"arn:aws:states:{stack.REGION}:{stack.ACCOUNT}:execution:{stack.STATE_MACHINE}:{batch_id}"
    events = execution_history(c, batch_id)
    started = c["sfn"].describe_execution(executionArn=arn)["startDate"].timestamp()
    last_end = max(ends)
    return {
        "latency": max(0.0, written - last_end),
        "transitions": sum(1 for e in events if e["type"].endswith("StateEntered")),
        "parks": parks(events),
        "ended_after": last_end - started,
    }


def run_mode(c, mode: str, batches: int, polls: dict[str, str], out=print) -> dict:
    drop, duplicate = MODES[mode]
    switch = EventFaults()
    switch.reset()
    switch.set(drop=drop, duplicate=duplicate, seed=7)
    files = [(f"latency-{mode}-{i}-{int(time.time())}", lines(100 + i, f"{mode}{i}-")) for i in range(batches)]
    results: dict[str, dict] = {}
    failures: list[str] = []
    timeout = 3 * 60 + 2 * float(polls["POLL_INITIAL_SECONDS"])

    def one(name: str, input_lines: list[str]) -> None:
        try:
            key, put = upload(c, name, input_lines)
            batch_id = find_batch(c, key, put, timeout=120)
            event = wait_for_event(c, batch_id, timeout=timeout)
            results[name] = measure(c, batch_id, input_lines, event, polls)
        except (AssertionError, TimeoutError) as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=f) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = switch.stats()
    switch.reset()
    figures = list(results.values())
    latencies = [r["latency"] for r in figures]
    transitions = [r["transitions"] for r in figures]
    all_parks = [p for r in figures for p in r["parks"]]
    line = {
        "mode": mode,
        "batches": len(figures),
        "events": {k: counts.get(k, 0) for k in ("delivered", "dropped", "duplicated", "failed")},
        "latency_s": {"median": statistics.median(latencies), "max": max(latencies)} if latencies else None,
        "transitions": {"median": statistics.median(transitions), "max": max(transitions)} if transitions else None,
        "parks": {k: all_parks.count(k) for k in ("woken", "timed out", "failed")},
        "backstop_s": {
            "now": max((backstop_wait(polls, float(polls["POLL_MAX_SECONDS"]), r["ended_after"]) for r in figures), default=None),
            "before_wake_ups": max((backstop_wait(polls, OLD_POLL_MAX_SECONDS, r["ended_after"]) for r in figures), default=None),
        },
    }
    out(
        f"latency {mode:>10}: {line['batches']} batches; events {line['events']['delivered']} delivered, "
        f"{line['events']['dropped']} dropped, {line['events']['duplicated']} duplicated; "
        + (
            f"last job's end to results {line['latency_s']['median']:.0f} s median, {line['latency_s']['max']:.0f} s max; "
            f"{line['transitions']['median']:.0f} transitions median, {line['transitions']['max']} max; "
            if figures
            else ""
        )
        + f"parks {line['parks']['woken']} woken, {line['parks']['timed out']} timed out, {line['parks']['failed']} failed; "
        f"poll backstop {seconds(line['backstop_s']['now'])} (before wake-ups {seconds(line['backstop_s']['before_wake_ups'])})"
    )
    line["failures"] = failures
    line["last_parks"] = [r["parks"][-1] if r["parks"] else None for r in figures]
    return line


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def broken(line: dict) -> list[str]:
    """What --check refuses in one mode's figures."""
    problems = list(line["failures"])
    if line["mode"] in ("delivered", "duplicated"):
        problems += [f"{line['mode']}: a batch's last park was {p}, not woken" for p in line["last_parks"] if p != "woken"]
    else:
        if line["parks"]["woken"]:
            problems.append(f"dropped: {line['parks']['woken']} parks woken with every event dropped")
    if line["mode"] == "duplicated" and not line["events"]["duplicated"]:
        problems.append("duplicated: the emulator duplicated no event")
    if line["mode"] == "dropped" and line["events"]["delivered"]:
        problems.append("dropped: the emulator delivered events")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--check", action="store_true", help="exit 1 if a batch breaks a promise or a mode's parks disagree with it")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"latency: unknown modes {unknown}; choose from {list(MODES)}")
    if stack.running("moto"):
        raise SystemExit("latency: a local stack is running with its own poll settings; stop it first (make stack-down)")
    polls = production_polls()
    print(f"latency: production poll settings {polls}; {args.batches} batches per mode", flush=True)
    os.environ["BATCHDROP_FUNCTION_ENV"] = json.dumps(polls)
    stack.start()
    problems = []
    try:
        c = stack.clients()
        for mode in modes:
            line = run_mode(c, mode, args.batches, polls, out=lambda s: print(s, flush=True))
            problems += broken(line)
    finally:
        stack.stop()
    for p in problems:
        print(f"latency: {p}", file=sys.stderr)
    if args.check and problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
