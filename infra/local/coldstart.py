"""Cold start of each function: the time from starting its process to its first handled event.

    python infra/local/coldstart.py [--rounds N]        # make bench-cold-start

Each function runs under `cargo lambda watch --release` (the Lambda Runtime API emulator), which starts the
function's process on the first invocation. S3 is a moto server of this script's own on 127.0.0.1, so the SDK
calls the functions make have a real peer. For each function and round: start watch, invoke once (the cold
invocation: process start, the function's init, the handling), invoke five more times (warm), stop watch. The
invocations are cheap ones whose answer needs at most one S3 read (S3's test event for submit, a batch id that
does not exist for check-jobs and finalize, another stack's job event for wake): an error answer counts as
handled, as it does for Lambda.

What it prints per function (medians over the rounds, milliseconds):
- first: the cold invocation's round trip;
- warm: a warm invocation's round trip;
- cargo: cargo's own check that the release binary is up to date, which watch runs before starting it;
- init: first - warm - cargo, the estimate of Lambda's Init Duration for this function on this machine.

The binaries are built first, so no compile is timed. Figures are for this machine's CPU, not Lambda's arm64:
they are there to show regressions (a slow client set-up, a config file read at start), compare them run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import stack  # infra/local/stack.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # stack.port_open checks this address
MOTO_PORT = int(os.environ.get("BATCHDROP_COLDSTART_MOTO_PORT", "5155"))
WATCH_PORT = int(os.environ.get("BATCHDROP_COLDSTART_WATCH_PORT", "9155"))
INPUT_BUCKET = "coldstart-input"
OUTPUT_BUCKET = "coldstart-output"
WARM_INVOCATIONS = 5
INVOKE_TIMEOUT = 60  # seconds; the binaries are built before, so an answer takes well under one
ACCOUNT = stack.ACCOUNT

# One cheap invocation per function (module docstring).
EVENTS = {
    "submit": {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00.000Z",
               "Bucket": INPUT_BUCKET, "RequestId": "COLDSTART", "HostId": "COLDSTART"},
    "check-jobs": {"batch_id": "coldstart-0000000000000000"},
    "finalize": {"batch_id": "coldstart-0000000000000000"},
    "wake": {"version": "0", "source": "aws.bedrock", "detail-type": "Batch Inference Job State Change",
             "account": ACCOUNT, "region": "us-east-1", "time": "2026-01-01T00:00:00Z",
             "detail": {"batchJobName": "other-stack-0000000000000000-job0", "status": "Completed",
                        "batchJobArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/abc"}},
}


def wait_for_port(what: str, port: int, timeout: float) -> None:
    stack.wait_until(f"{what} on {HOST}:{port}", lambda: stack.port_open(port), timeout)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    full_env = dict(os.environ)
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env)
    # Its own session, so that stop() ends it and every child (cargo, the function) by its group id.
    return subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    stack.end_group(proc.pid, lambda: proc.poll() is None)
    proc.wait(timeout=10)


def invoke(name: str, log: Path) -> float:
    """One invocation's round trip in milliseconds; any answer, error or not, is a handled event.

    cargo lambda watch answers nothing when the function's process exits (an init error, a panic): after
    INVOKE_TIMEOUT seconds the benchmark stops and shows the end of watch's log, which says why."""
    request = urllib.request.Request(
        f"http://{HOST}:{WATCH_PORT}/2015-03-31/functions/{name}/invocations",
        data=json.dumps(EVENTS[name]).encode(), method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT) as reply:
            reply.read()
    except urllib.error.HTTPError as e:
        e.read()
        if e.code != 500:  # watch answers a function error with 500; anything else is the emulator's trouble
            raise SystemExit(f"coldstart: invoking {name} answered HTTP {e.code}\n{tail(log)}")
    except OSError as e:  # a timeout or a refused connection
        raise SystemExit(f"coldstart: invoking {name} got no answer ({e}); the end of {log.name}:\n{tail(log)}")
    return (time.perf_counter() - started) * 1000


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(f"  | {line}" for line in log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"  (cannot read {log}: {e})"


def manifest(name: str) -> str:
    return str(ROOT / "functions" / name / "Cargo.toml")


def cargo_check_ms(name: str) -> float:
    """cargo's up-to-date check of the release binary, as watch runs it before starting the function."""
    started = time.perf_counter()
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--manifest-path", manifest(name),
                    "--bin", name], cwd=ROOT, check=True)
    return (time.perf_counter() - started) * 1000


def make_buckets() -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://{HOST}:{MOTO_PORT}", region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold starts per function (default 3)")
    args = parser.parse_args()
    functions = list(EVENTS)
    print(f"building the four functions in release mode (not timed) ...", flush=True)
    for name in functions:
        subprocess.run(["cargo", "build", "--release", "--locked", "--manifest-path", manifest(name), "--bin", name],
                       cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(prefix="batchdrop-coldstart-") as work:
        work_dir = Path(work)
        moto_url = f"http://{HOST}:{MOTO_PORT}"
        env_file = work_dir / "functions.env"
        # The local stack's function settings (every variable a function requires at init), pointed at this
        # script's moto and buckets.
        env = dict(stack.FUNCTION_ENV, INPUT_BUCKET=INPUT_BUCKET, OUTPUT_BUCKET=OUTPUT_BUCKET,
                   AWS_ENDPOINT_URL=moto_url, AWS_ENDPOINT_URL_BEDROCK=moto_url, WORK_DIR=str(work_dir),
                   RUST_LOG="warn")
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        moto = start([str(VENV_BIN / "moto_server"), "-H", HOST, "-p", str(MOTO_PORT)], {}, work_dir / "moto.log")
        try:
            wait_for_port("moto", MOTO_PORT, 60)
            make_buckets()
            rows = []
            for name in functions:
                firsts, warms, cargos = [], [], []
                for _ in range(args.rounds):
                    cargos.append(cargo_check_ms(name))
                    log = work_dir / f"watch-{name}.log"
                    watch = start(["cargo", "lambda", "watch", "--release", "--ignore-changes", "--manifest-path",
                                   manifest(name), "-A", HOST, "-P", str(WATCH_PORT), "--env-file", str(env_file)],
                                  {}, log)
                    try:
                        wait_for_port(f"cargo lambda watch ({name})", WATCH_PORT, 120)
                        firsts.append(invoke(name, log))
                        warms.append(statistics.median(invoke(name, log) for _ in range(WARM_INVOCATIONS)))
                    finally:
                        stop(watch)
                    while stack.port_open(WATCH_PORT):
                        time.sleep(0.05)
                first, warm, cargo = (statistics.median(v) for v in (firsts, warms, cargos))
                rows.append((name, first, warm, cargo, max(first - warm - cargo, 0.0)))
        finally:
            stop(moto)
    print(f"\ncold start, medians of {args.rounds} rounds (ms; module docstring says what each column is)")
    print(f"  {'function':12} {'first':>8} {'warm':>8} {'cargo':>8} {'init':>8}")
    for name, first, warm, cargo, init in rows:
        print(f"  {name:12} {first:8.1f} {warm:8.1f} {cargo:8.1f} {init:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
