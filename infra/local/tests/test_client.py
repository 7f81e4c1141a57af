"""The batchdrop CLI as the client of the local stack, as a user runs it (docs/cli.md): submit --wait, status,
list, fetch and cancel, the stack found by name through CloudFormation, the errors that say what to do, and
the progress as a person sees it, in a pseudo-terminal and in a log.

The CLI is the debug binary the workspace build makes (`make e2e` builds it first); BATCHDROP_CLI names
another. Every batch it submits is checked with `helpers.check_batch`, like the uploads of test_e2e.py.
"""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

import stack
from helpers import CLAUDE, chat, check_batch, emulator, get_json, lines
from localtools import wait_for_event

ROOT = Path(__file__).resolve().parents[3]
CLI = Path(
    os.environ.get("BATCHDROP_CLI")
    or Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug" / "batchdrop"
)
LOCAL = ["--local"]
# The local stack's S3 (moto) as the CLI reaches it; no AWS settings of the machine leak in.
ENV = {
    "PATH": os.environ.get("PATH", ""),
    "HOME": os.environ.get("HOME", "/tmp"),
    "BATCHDROP_LOCAL_ENDPOINT": stack.MOTO_URL,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# AWS as the standard chain finds it, pointed at moto: for --stack and the buckets named on the command line.
MOTO = {"AWS_ENDPOINT_URL": stack.MOTO_URL, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": stack.REGION}


@pytest.fixture(scope="module")
def cli():
    if not CLI.is_file():
        pytest.fail(f"{CLI} is not built: run `cargo build --workspace --bin batchdrop` (make e2e does)")
    return CLI


def run(cli, *args, env=None, stdin=None, timeout=300):
    return subprocess.run(
        [str(cli), *args],
        env={**ENV, **(env or {})},
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def write(tmp_path, name, input_lines):
    path = tmp_path / name
    path.write_text("\n".join(input_lines) + "\n")
    return path


def test_submit_wait_then_status_list_and_fetch(local_stack, cli, tmp_path):
    c = local_stack
    input_lines = lines(110, "cli", max_tokens=40)
    file = write(tmp_path, "client-happy.jsonl", input_lines)
    r = run(cli, "submit", str(file), "--model", CLAUDE, "--wait", "--every", "0.5", "--json", *LOCAL)
    assert r.returncode == 0, r.stderr.decode()
    submitted = json.loads(r.stdout)
    batch_id = submitted["batch_id"]
    assert submitted["key"] == f"inbox/{CLAUDE}/client-happy.jsonl"
    assert submitted["bytes"] == file.stat().st_size
    assert submitted["batch"]["status"] == "completed"
    # The id the CLI computed is the one the stack gave the upload.
    assert submitted["batch"]["id"] == batch_id
    assert submitted["batch"]["metadata"]["source_key"] == submitted["key"]
    check_batch(c, batch_id, input_lines, wait_for_event(c, batch_id, timeout=120))

    # Progress went to standard error as plain lines: no terminal here, so no control characters.
    progress = r.stderr.decode()
    assert "\x1b" not in progress and "\r" not in progress, progress
    assert f"uploading to s3://{stack.INPUT_BUCKET}/{submitted['key']}: 100% of" in progress
    assert re.search(rf"batch {batch_id}: completed, took \d+", progress), progress

    status = run(cli, "status", batch_id, "--json", *LOCAL)
    assert status.returncode == 0, status.stderr.decode()
    assert json.loads(status.stdout) == get_json(c, f"results/{batch_id}/batch.json")
    text = run(cli, "status", batch_id, *LOCAL).stdout.decode()
    assert f"batch {batch_id}: completed" in text
    assert "110 of 110 lines: 110 answered, 0 failed" in text
    assert f"batchdrop fetch {batch_id} --local" in text

    listed = run(cli, "list", "--limit", "0", "--json", *LOCAL)
    assert listed.returncode == 0, listed.stderr.decode()
    batches = json.loads(listed.stdout)["batches"]
    assert batch_id in [b["id"] for b in batches]
    created = [b["created_at"] for b in batches]
    assert created == sorted(created, reverse=True), "newest first"
    assert batch_id in run(cli, "list", *LOCAL).stdout.decode()

    out = tmp_path / "fetched"
    fetched = run(cli, "fetch", batch_id, "--out", str(out), "--json", *LOCAL)
    assert fetched.returncode == 0, fetched.stderr.decode()
    report = json.loads(fetched.stdout)
    assert (report["output_lines"], report["error_lines"]) == (110, 0)
    stored = c["s3"].get_object(Bucket=stack.OUTPUT_BUCKET, Key=f"results/{batch_id}/output.jsonl")["Body"].read()
    assert (out / "output.jsonl").read_bytes() == stored
    assert (out / "errors.jsonl").read_bytes() == b""
    assert json.loads((out / "batch.json").read_text())["id"] == batch_id


def test_submit_from_standard_input_and_the_exit_code_of_a_batch_with_errors(local_stack, cli):
    c = local_stack
    input_lines = lines(100, "stdin") + [chat("too-hot", temperature=1.7), "not json"]
    r = run(
        cli, "submit", "-", "--name", "client-stdin.jsonl", "--wait", "--every", "0.5", *LOCAL,
        stdin=("\n".join(input_lines) + "\n").encode(),
    )
    assert r.returncode == 1, r.stderr.decode()
    out = r.stdout.decode()
    batch_id = re.search(r"batch id: (\S+)", out).group(1)
    assert f"s3://{stack.INPUT_BUCKET}/inbox/client-stdin.jsonl" in out
    assert "102 of 102 lines: 100 answered, 2 failed (2 of them rejected before Bedrock)" in out
    check_batch(c, batch_id, input_lines, wait_for_event(c, batch_id, timeout=120))


def test_cancel_wait_stops_a_running_batch(local_stack, cli, tmp_path):
    c = local_stack
    input_lines = lines(100, "stop")
    file = write(tmp_path, "client-cancel.jsonl", input_lines)
    # Slow jobs, so that the cancel arrives while the job runs.
    emulator("config", {"step_ms": 3000})
    try:
        r = run(cli, "submit", str(file), "--json", *LOCAL)
        assert r.returncode == 0, r.stderr.decode()
        batch_id = json.loads(r.stdout)["batch_id"]
        # The batch exists once submit has claimed it; cancel says so when it does not (yet).
        deadline = time.monotonic() + 120
        while True:
            cancel = run(cli, "cancel", batch_id, "--wait", "--every", "0.5", "--json", *LOCAL)
            if cancel.returncode == 0 or time.monotonic() > deadline:
                break
            assert f"no batch {batch_id}" in cancel.stderr.decode(), cancel.stderr.decode()
            time.sleep(0.5)
    finally:
        emulator("config", {"step_ms": 200})
    assert cancel.returncode == 0, cancel.stderr.decode()
    answer = json.loads(cancel.stdout)
    assert (answer["outcome"], answer["status"]) == ("requested", "cancelled")
    r = check_batch(c, batch_id, input_lines, wait_for_event(c, batch_id, timeout=120))
    assert {e["error"]["code"] for e in r["errors"]} <= {"batch_cancelled"}
    again = run(cli, "cancel", batch_id, *LOCAL)
    assert again.returncode == 0
    assert "has ended already (cancelled): nothing to cancel" in again.stdout.decode()
    # A batch that did not complete is exit 1 for status --watch.
    assert run(cli, "status", batch_id, "--watch", *LOCAL).returncode == 1


def test_progress_in_a_terminal(local_stack, cli, tmp_path):
    """What a person sees: the upload's bar redrawn in place while the parts go up (a file of two parts),
    then the batch's frame, the last one left on screen."""
    c = local_stack
    pad = "x" * 60_000
    input_lines = [chat(f"big{i}", messages=[{"role": "user", "content": f"{i} {pad}"}]) for i in range(150)]
    file = write(tmp_path, "client-terminal.jsonl", input_lines)
    assert file.stat().st_size > 8 * 1024 * 1024, "more than one part"
    controller, terminal = pty.openpty()
    # An 80-column terminal: a frame's lines must fit, or a wrapped line would leave old frames on screen.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [str(cli), "submit", str(file), "--wait", "--every", "0.5", *LOCAL],
        env={**ENV, "TERM": "xterm"}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    out, _ = proc.communicate(timeout=60)
    out = out.decode()
    assert proc.returncode == 0, seen.decode(errors="replace")
    screen = seen.decode()
    for row in re.split(r"\r|\n", re.sub(r"\x1b\[\d*[AJ]", "", screen)):
        assert len(row) < 80, f"a line wider than the terminal: {row!r}"
    # The job line is longer than that: cut, with an ellipsis, to 79 columns.
    assert "\n  job 0 us.anthropic.claude-3-5-haiku-20241022-v1:0 Completed, 150 of 150 reco…\r\n" in screen
    batch_id = re.search(r"batch id: (\S+)", out).group(1)
    # The upload bar was drawn, then redrawn in place (carriage return, clear to the end of the screen).
    bars = re.findall(r"uploading \[[#-]{30}\] +(\d+)% ", screen)
    assert len(bars) >= 2 and bars[-1] == "100" and int(bars[0]) < 100, screen[:2000]
    assert "\r\x1b[J" in screen
    # The batch's frame of two lines or more is redrawn by moving up first.
    assert re.search(r"\r\x1b\[\d+A\x1b\[J", screen), screen[-2000:]
    assert "[##############################] 100% 150 lines: 150 answered, 0 failed" in screen
    assert screen.endswith("\n")
    check_batch(c, batch_id, input_lines, wait_for_event(c, batch_id, timeout=120))


def test_the_stack_found_by_name_through_cloudformation(local_stack, cli):
    """--stack reads the buckets from the stack's outputs, as on AWS (moto's CloudFormation holds a stack with
    the two outputs); a stack that is missing, or has no such outputs, is an error that says what to do."""
    import boto3

    cfn = boto3.client("cloudformation", endpoint_url=stack.MOTO_URL, region_name=stack.REGION)
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "batchdrop-client-marker"}}},
        "Outputs": {
            "InputBucketName": {"Value": stack.INPUT_BUCKET},
            "OutputBucketName": {"Value": stack.OUTPUT_BUCKET},
        },
    }
    names = {"batchdrop-client-test": template, "not-batchdrop": {"Resources": template["Resources"]}}
    for name, body in names.items():
        try:
            cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
        except cfn.exceptions.AlreadyExistsException:
            pass
    aws = MOTO
    found = run(cli, "list", "--limit", "3", "--json", "--stack", "batchdrop-client-test", env=aws)
    assert found.returncode == 0, found.stderr.decode()
    # The same batches as --local lists (by id: a batch of another test may still change meanwhile).
    ids = lambda r: [b["id"] for b in json.loads(r.stdout)["batches"]]  # noqa: E731
    assert ids(found) == ids(run(cli, "list", "--limit", "3", "--json", *LOCAL))

    missing = run(cli, "list", "--stack", "no-such-stack", env=aws)
    assert missing.returncode == 2
    assert "no CloudFormation stack named no-such-stack in us-east-1" in missing.stderr.decode()
    other = run(cli, "list", "--stack", "not-batchdrop", env=aws)
    assert other.returncode == 2
    assert "stack not-batchdrop has no output InputBucketName" in other.stderr.decode()
    assert "--input-bucket and --output-bucket" in other.stderr.decode()


def test_errors_say_what_to_do(local_stack, cli):
    no_credentials = run(cli, "list", "--region", "us-east-1")
    assert no_credentials.returncode == 2
    assert "no AWS credentials" in no_credentials.stderr.decode()
    assert "aws sso login" in no_credentials.stderr.decode()

    for watch in [[], ["--watch"]]:
        unknown = run(cli, "status", "no-such-batch-0000000000000000", *watch, *LOCAL, timeout=30)
        assert unknown.returncode == 2
        assert f"no batch no-such-batch-0000000000000000 in s3://{stack.OUTPUT_BUCKET}/results/" in unknown.stderr.decode()

    buckets = ["--input-bucket", "no-such-bucket-in", "--output-bucket", "no-such-bucket-out"]
    missing = run(cli, "list", *buckets, env=MOTO)
    assert missing.returncode == 2
    assert "the bucket does not exist" in missing.stderr.decode()

    nowhere = run(cli, "list", *LOCAL, env={"BATCHDROP_LOCAL_ENDPOINT": "http://127.0.0.1:9"})
    assert nowhere.returncode == 2
    assert "is the local stack running (make stack-up)?" in nowhere.stderr.decode()

    not_jsonl = run(cli, "submit", str(ROOT / "README.md"), *LOCAL)
    assert not_jsonl.returncode == 2
    assert "README.md: the stack picks up objects named *.jsonl only" in not_jsonl.stderr.decode()
    bad_model = run(cli, "submit", "-", "--model", "gpt-4o", *LOCAL, stdin=b"")
    assert bad_model.returncode == 2
    assert "--model: 'gpt-4o' is not a Bedrock model id" in bad_model.stderr.decode()
