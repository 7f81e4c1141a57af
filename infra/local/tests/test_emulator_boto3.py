"""boto3 against the Bedrock batch-inference emulator (infra/local/emulator), with moto as S3.

A second client family on the same wire: what botocore parses must parse here too.

Needs MOTO_SERVER = path of the moto_server executable (PyPI moto[server]==5.2.5); the module is skipped
without it. The emulator binary is BEDROCK_EMULATOR_BIN, or is built with cargo. Every process started here is
stopped by PID.
"""

import json
import os
import select
import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402  (after the importorskip on purpose)
from botocore.exceptions import ClientError  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/BedrockBatchRole"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc):
    """Stops one child by PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def moto_endpoint():
    path = os.environ.get("MOTO_SERVER")
    if not path:
        pytest.skip("MOTO_SERVER is not set: point it at the moto_server executable of moto[server]==5.2.5")
    port = _free_port()
    proc = subprocess.Popen(
        [path, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "moto_server exited during start-up"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def emulator_binary():
    path = os.environ.get("BEDROCK_EMULATOR_BIN")
    if path:
        return path
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("set BEDROCK_EMULATOR_BIN, or put cargo on PATH to build the emulator")
    built = subprocess.run(
        [cargo, "build", "--quiet", "--locked", "-p", "bedrock-emulator", "--message-format=json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in built.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "bedrock-emulator":
            if msg.get("executable"):
                return msg["executable"]
    pytest.fail("cargo build did not report the bedrock-emulator executable")


@pytest.fixture(scope="module")
def emulator(moto_endpoint, emulator_binary):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEDROCK_EMULATOR_") and k != "AWS_PROFILE"}
    env.update(
        BEDROCK_EMULATOR_PORT="0",
        # Jobs stay Submitted until a test speeds the clock up through the admin API.
        BEDROCK_EMULATOR_STEP_MS="600000",
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION=REGION,
        RUST_LOG="warn",
    )
    proc = subprocess.Popen(
        [emulator_binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        prefix = "bedrock-emulator listening on "
        assert line.startswith(prefix), f"the emulator did not start: {line!r}"
        yield line[len(prefix):].strip()
    finally:
        _stop(proc)


def admin(endpoint, path, body):
    req = urllib.request.Request(
        endpoint + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        return json.load(resp)


@pytest.fixture(scope="module")
def bedrock(emulator):
    config = Config(retries={"mode": "standard", "max_attempts": 1})
    return boto3.client("bedrock", endpoint_url=emulator, region_name=REGION, config=config, **CREDENTIALS)


@pytest.fixture(scope="module")
def bucket(moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION, **CREDENTIALS)
    name = "boto3-emulator-test"
    s3.create_bucket(Bucket=name)
    return name


def _create(bedrock, bucket, name, **extra):
    return bedrock.create_model_invocation_job(
        jobName=name,
        roleArn=ROLE,
        modelId=MODEL,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/input.jsonl", "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
        **extra,
    )


def test_create_get_list_stop_round_trip(bedrock, bucket, emulator):
    arn = _create(bedrock, bucket, "boto3-job1", timeoutDurationInHours=48)["jobArn"]
    job_id = arn.rsplit("/", 1)[1]
    assert arn == f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{job_id}"
    assert len(job_id) == 12

    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")
    assert job["jobName"] == "boto3-job1"
    assert job["status"] == "Submitted"
    assert job["jobExpirationTime"] - job["submitTime"] == timedelta(hours=48)
    assert job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == f"s3://{bucket}/in/input.jsonl"
    assert bedrock.get_model_invocation_job(jobIdentifier=job_id)["jobArn"] == arn

    summaries = bedrock.list_model_invocation_jobs(nameContains="boto3")["invocationJobSummaries"]
    assert [s["jobArn"] for s in summaries] == [arn]
    pages = bedrock.get_paginator("list_model_invocation_jobs").paginate(PaginationConfig={"PageSize": 1})
    assert [s["jobArn"] for page in pages for s in page["invocationJobSummaries"]] == [arn]

    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopping"
    admin(emulator, "/_emulator/config", {"step_ms": 10})
    deadline = time.monotonic() + 10
    while (job := bedrock.get_model_invocation_job(jobIdentifier=arn))["status"] != "Stopped":
        assert time.monotonic() < deadline, job["status"]
        time.sleep(0.02)
    assert job["endTime"] >= job["submitTime"]
    with pytest.raises(ClientError) as err:
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert err.value.response["Error"]["Code"] == "ConflictException"


def test_validation_error(bedrock, bucket):
    with pytest.raises(ClientError) as err:
        _create(bedrock, bucket, "bad_name")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "jobName" in err.value.response["Error"]["Message"]
