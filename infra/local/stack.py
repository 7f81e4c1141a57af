"""The local stack: moto (S3, Step Functions, EventBridge, SQS), the Bedrock emulator and the real Lambda
functions under `cargo lambda watch`, all on 127.0.0.1, each tracked by its PID.

The functions reach moto and the emulator through the fault proxy (faultproxy.py, one port in front of each),
so that tests can script faults on the wire; the tests' own clients (`clients()`) and the emulator's S3 traffic
go to moto and the emulator directly, never faulted. Lambda faults live in moto_server.py's router.

Bedrock's job events: the emulator sends every job status change to EventBridge on moto's default bus, as
Bedrock does, through the fault proxy's AWS port, so wire faults can hit them too (service "events", operation
"PutEvents"; the emulator's calls alone by `"header": {"User-Agent": "^bedrock-emulator"}`), and its own event
switch drops or duplicates them (localtools.EventFaults). The rule of infra/events/bedrock-job-events.pattern.json
sends the matching ones to the wake function, which moto_server.py invokes asynchronously, as EventBridge does.

    python infra/local/stack.py start     # start (or find running) and provision; prints the endpoints
    python infra/local/stack.py stop      # stop every process this stack started, by PID
    python infra/local/stack.py status

The state machine is the real statemachine/batch.asl.json, with the substitutions read from
infra/template.yaml (DefinitionSubstitutions), resolved to the local resources.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("BATCHDROP_LOCAL_STATE", ROOT / ".local-stack"))
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
ACCOUNT = "123456789012"

MOTO_PORT = int(os.environ.get("BATCHDROP_MOTO_PORT", "5055"))
EMULATOR_PORT = int(os.environ.get("BATCHDROP_EMULATOR_PORT", "5056"))
LAMBDA_PORT = int(os.environ.get("BATCHDROP_LAMBDA_PORT", "9055"))
# The fault proxy's ports: in front of moto (every AWS service but Bedrock) and of the Bedrock emulator.
PROXY_AWS_PORT = int(os.environ.get("BATCHDROP_PROXY_AWS_PORT", "5057"))
PROXY_BEDROCK_PORT = int(os.environ.get("BATCHDROP_PROXY_BEDROCK_PORT", "5058"))
# Instances per function under cargo lambda watch. 2 would let a duplicated S3 event really run twice at once,
# but cargo lambda watch 1.9.2 then now and again force-stops an instance ("command killed code=ForceStop")
# and never starts it again, so the invocation routed to it hangs: one instance, the default, is reliable.
LAMBDA_CONCURRENCY = int(os.environ.get("BATCHDROP_LAMBDA_CONCURRENCY", "1"))
FAULT_SEED = int(os.environ.get("BATCHDROP_FAULT_SEED", "0"))

INPUT_BUCKET = "batchdrop-input"
OUTPUT_BUCKET = "batchdrop-output"
EVENTS_QUEUE = "batchdrop-events"
STATE_MACHINE = "batchdrop"
FUNCTIONS = ["submit", "check-jobs", "finalize", "wake"]
# The rule that wakes a batch's poll loop on Bedrock's job events (infra/template.yaml's BedrockJobEventsRule).
BEDROCK_EVENTS_RULE = "batchdrop-bedrock-job-events"
BEDROCK_EVENTS_PATTERN = ROOT / "infra/events/bedrock-job-events.pattern.json"
DEFAULT_MODEL = os.environ.get("BATCHDROP_DEFAULT_MODEL", "us.anthropic.claude-3-5-haiku-20241022-v1:0")

MOTO_URL = f"http://127.0.0.1:{MOTO_PORT}"
EMULATOR_URL = f"http://127.0.0.1:{EMULATOR_PORT}"
PROXY_AWS_URL = f"http://127.0.0.1:{PROXY_AWS_PORT}"
PROXY_BEDROCK_URL = f"http://127.0.0.1:{PROXY_BEDROCK_PORT}"
PROXY_URLS = {"aws": PROXY_AWS_URL, "bedrock": PROXY_BEDROCK_URL}
# One `cargo lambda watch` per function crate: watch runs `cargo run --bin <name>` in the crate it is
# given, and the workspace root is itself a package (the library), so one instance cannot serve them all.
LAMBDA_PORTS = {name: LAMBDA_PORT + i for i, name in enumerate(FUNCTIONS)}
LAMBDA_URLS = {name: f"http://127.0.0.1:{port}" for name, port in LAMBDA_PORTS.items()}

MODEL_CATALOGUE_KEY = "config/models.json"
JOB_QUEUE_TABLE = "batchdrop-job-queue"
# Models of the job queue's tests (tests/test_queue.py), used by no other test, with the quota the functions
# keep to for each (MODEL_JOB_QUOTAS); the tests set the emulator's to the same.
QUEUE_MODELS = {"fair": "us.amazon.nova-micro-v1:0", "reclaim": "us.amazon.nova-pro-v1:0"}
QUEUE_MODELS_QUOTA = {"fair": 5, "reclaim": 1}
MODEL_CATALOGUE_FILE = ROOT / "infra/local/models.json"

# Settings of the functions on the local stack: fast polls, so a batch takes seconds.
FUNCTION_ENV = {
    "INPUT_BUCKET": INPUT_BUCKET,
    "OUTPUT_BUCKET": OUTPUT_BUCKET,
    "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE}",
    "BEDROCK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/batchdrop-bedrock",
    "DEFAULT_MODEL": DEFAULT_MODEL,
    "POLL_INITIAL_SECONDS": "1",
    "POLL_FACTOR": "1.5",
    "POLL_MAX_SECONDS": "2",
    # Through the fault proxy (faultproxy.py); with no rules set it forwards every byte unchanged.
    "AWS_ENDPOINT_URL": PROXY_AWS_URL,
    "AWS_ENDPOINT_URL_BEDROCK": PROXY_BEDROCK_URL,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "RUST_LOG": "info",
    # The reliability settings at their shortest, so the failure path's waits take seconds: check-jobs
    # spends at most 10 s a turn, and the stop loop outwaits an abandoned invocation after 12 s (locally
    # nothing kills a function at its timeout, so this is the local stand-in for Lambda's 300 s).
    "CHECK_JOBS_TIMEOUT_SECONDS": "12",
    "CHECK_BUDGET_SECONDS": "10",
    "OUTAGE_BUDGET_HOURS": "1",
    "STOP_WAIT_MINUTES": "5",
    "STAGING_RETENTION_DAYS": "30",
    "SUBMIT_RETRY_SECONDS": "60",
    # A deployment's own model catalogue (docs/models.md, "In a deployed stack"), uploaded by provision(): every
    # function reads it as it starts, as in a stack with ModelCatalogueKey set.
    "MODEL_CATALOGUE_KEY": MODEL_CATALOGUE_KEY,
    # The account-wide job queue (docs/queue.md) on moto's DynamoDB, created by provision(). A waiting batch asks
    # after another batch's slot when it has not been found alive for 5 s (300 s in a stack).
    "JOB_QUEUE_TABLE": JOB_QUEUE_TABLE,
    "MODEL_JOB_QUOTAS": ",".join(f"{QUEUE_MODELS[k]}={n}" for k, n in QUEUE_MODELS_QUOTA.items()),
    "QUEUE_RECLAIM_SECONDS": "5",
}

CLIENT_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}


def clients():
    """boto3 clients for the local stack, straight to moto and the emulator (never through the fault proxy)."""
    import boto3

    for k, v in CLIENT_ENV.items():
        os.environ.setdefault(k, v)
    make = lambda service, url=MOTO_URL: boto3.client(service, endpoint_url=url, region_name=REGION)  # noqa: E731
    return {
        "s3": make("s3"),
        "sfn": make("stepfunctions"),
        "events": make("events"),
        "sqs": make("sqs"),
        "lambda": make("lambda"),
        "iam": make("iam"),
        "dynamodb": make("dynamodb"),
        "bedrock": make("bedrock", EMULATOR_URL),
    }


def pid_file(name: str) -> Path:
    return STATE / "pids" / f"{name}.pid"


def running(name: str) -> int | None:
    try:
        pid = int(pid_file(name).read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    if running(name):
        return
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    (STATE / "pids").mkdir(parents=True, exist_ok=True)
    log = open(STATE / "logs" / f"{name}.log", "ab")
    full_env = dict(os.environ)
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    # Its own session: stop() ends the process and its children (cargo's builds) together.
    proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pid_file(name).write_text(str(proc.pid))


def wait_until(what: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise SystemExit(f"local stack: {what} did not come up within {timeout:.0f} s; see {STATE / 'logs'}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def cargo_target() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def start() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "work").mkdir(exist_ok=True)
    # Build before serving, so that the first invocation does not wait for a compile.
    # Each function is built as `cargo lambda watch` will build it (its own manifest), or watch rebuilds
    # with different feature unification on the first invocation.
    for name in FUNCTIONS:
        manifest = str(ROOT / "functions" / name / "Cargo.toml")
        subprocess.run(["cargo", "build", "--locked", "--manifest-path", manifest, "--bin", name], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--locked", "-p", "bedrock-emulator"], cwd=ROOT, check=True)
    env_file = STATE / "functions.env"
    # BATCHDROP_FUNCTION_ENV (a JSON object) overrides settings, e.g. latency.py's production poll settings.
    env = dict(FUNCTION_ENV, WORK_DIR=str(STATE / "work"), **json.loads(os.environ.get("BATCHDROP_FUNCTION_ENV") or "{}"))
    # Quoted (cargo lambda's dotenv parser refuses a bare value with "=" in it, as MODEL_JOB_QUOTAS has).
    env_file.write_text("".join(f"{k}={json.dumps(str(v))}\n" for k, v in env.items()))

    spawn("moto", [sys.executable, str(ROOT / "infra/local/moto_server.py"), str(MOTO_PORT), json.dumps(LAMBDA_URLS), str(STATE)])
    wait_until("moto", lambda: http_ok(f"{MOTO_URL}/moto-api/"), 60)
    spawn(
        "emulator",
        [str(cargo_target() / "debug" / "bedrock-emulator")],
        {
            "BEDROCK_EMULATOR_HOST": "127.0.0.1",
            "BEDROCK_EMULATOR_PORT": str(EMULATOR_PORT),
            "BEDROCK_EMULATOR_STEP_MS": os.environ.get("BEDROCK_EMULATOR_STEP_MS", "200"),
            # The job events go to moto through the fault proxy (module docstring); it starts below, before any
            # job exists.
            "BEDROCK_EMULATOR_EVENTS_URL": PROXY_AWS_URL,
            "AWS_ENDPOINT_URL": MOTO_URL,
            **CLIENT_ENV,
        },
    )
    wait_until("the Bedrock emulator", lambda: http_ok(f"{EMULATOR_URL}/_emulator/health"), 60)
    spawn(
        "faultproxy",
        [
            sys.executable,
            str(ROOT / "infra/local/faultproxy.py"),
            f"{PROXY_AWS_PORT}={MOTO_URL}",
            f"{PROXY_BEDROCK_PORT}={EMULATOR_URL}",
            "--seed",
            str(FAULT_SEED),
        ],
    )
    for url in PROXY_URLS.values():
        wait_until("the fault proxy", lambda url=url: http_ok(f"{url}/_faults/stats"), 30)
    for name, port in LAMBDA_PORTS.items():
        manifest = str(ROOT / "functions" / name / "Cargo.toml")
        watch = ["cargo", "lambda", "watch", "--ignore-changes", "--concurrency", str(LAMBDA_CONCURRENCY), "--manifest-path", manifest]
        spawn(f"lambda-{name}", watch + ["-A", "127.0.0.1", "-P", str(port), "--env-file", str(env_file)])
    for name, port in LAMBDA_PORTS.items():
        wait_until(f"cargo lambda watch ({name})", lambda port=port: port_open(port), 120)
    provision()
    print(
        f"local stack up: S3/Step Functions/EventBridge {MOTO_URL}, Bedrock {EMULATOR_URL}, Lambda {LAMBDA_URLS}; "
        f"the functions go through the fault proxy {PROXY_AWS_URL} (AWS) and {PROXY_BEDROCK_URL} (Bedrock)"
    )


def end_group(pid: int, alive) -> None:
    """Ends the process group of a process started in its own session: SIGTERM, then SIGKILL if `alive()` still
    says so after 10 s."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        pass
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def stop() -> None:
    for name in [f"lambda-{f}" for f in FUNCTIONS] + ["faultproxy", "emulator", "moto"]:
        pid = running(name)
        if pid:
            end_group(pid, lambda: running(name) is not None)
        pid_file(name).unlink(missing_ok=True)
    print("local stack stopped")


def status() -> None:
    for name in ["moto", "emulator", "faultproxy"] + [f"lambda-{f}" for f in FUNCTIONS]:
        pid = running(name)
        print(f"{name:10} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"AWS (S3, Step Functions, EventBridge, SQS): {MOTO_URL}; Bedrock: {EMULATOR_URL}; Region {REGION}")
    print(f"input bucket {INPUT_BUCKET} (uploads into inbox/), output bucket {OUTPUT_BUCKET} (results/<batch-id>/)")


def template() -> dict:
    """infra/template.yaml, read as `make validate` reads it (CloudFormation's short-form tags included)."""
    import yaml

    sys.path.insert(0, str(ROOT / "infra" / "checks"))
    from check_asl import CfnLoader

    return yaml.load((ROOT / "infra/template.yaml").read_text(), Loader=CfnLoader)


def template_substitutions() -> dict[str, str]:
    """DefinitionSubstitutions of the state machine in infra/template.yaml, resolved to local resources."""
    doc = template()
    parameters = doc.get("Parameters", {})
    machines = [r for r in doc["Resources"].values() if r.get("Type") == "AWS::Serverless::StateMachine"]
    if len(machines) != 1:
        raise SystemExit("infra/template.yaml must define exactly one AWS::Serverless::StateMachine")
    resolved = {}
    for name, value in machines[0]["Properties"].get("DefinitionSubstitutions", {}).items():
        resolved[name] = resolve(value, parameters)
    return resolved


def resolve(value, parameters) -> str:
    """!GetAtt <Stem>Function.Arn → the local function's ARN; !Ref <Parameter> → its default."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        logical = value["Fn::GetAtt"][0]
        stem = "".join("-" + c.lower() if c.isupper() else c for c in logical.removesuffix("Function")).lstrip("-")
        if stem not in FUNCTIONS:
            raise SystemExit(f"template: no local function for {logical}")
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stem}"
    if "Ref" in value:
        name = value["Ref"]
        if name in parameters and "Default" in parameters[name]:
            return str(parameters[name]["Default"])
        raise SystemExit(f"template: cannot resolve !Ref {name} locally")
    if isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"]
        for p, spec in parameters.items():
            text = text.replace("${" + p + "}", str(spec.get("Default", "")))
        return text.replace("${AWS::Region}", REGION).replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Partition}", "aws")
    raise SystemExit(f"template: cannot resolve {value} locally")


def provision() -> None:
    """Creates the local resources; safe to run again."""
    c = clients()
    req = urllib.request.Request(
        f"{MOTO_URL}/moto-api/config",
        # Lambda keeps its full backend: moto_server.py routes its invocations to cargo lambda watch (the
        # "simple" backend that use_docker=false selects would echo canned replies instead).
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()

    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for role in ["batchdrop-local", "batchdrop-bedrock"]:
        try:
            c["iam"].create_role(RoleName=role, AssumeRolePolicyDocument=trust)
        except c["iam"].exceptions.EntityAlreadyExistsException:
            pass
    code = BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "served by cargo lambda watch")
    for name in FUNCTIONS:
        try:
            c["lambda"].create_function(
                FunctionName=name,
                Runtime="provided.al2023",
                Role=f"arn:aws:iam::{ACCOUNT}:role/batchdrop-local",
                Handler="bootstrap",
                Code={"ZipFile": code.getvalue()},
            )
        except c["lambda"].exceptions.ResourceConflictException:
            pass

    for bucket in [INPUT_BUCKET, OUTPUT_BUCKET]:
        try:
            c["s3"].create_bucket(Bucket=bucket)
        except (c["s3"].exceptions.BucketAlreadyOwnedByYou, c["s3"].exceptions.BucketAlreadyExists):
            pass
    c["s3"].put_bucket_versioning(Bucket=INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    c["s3"].put_object(Bucket=INPUT_BUCKET, Key=MODEL_CATALOGUE_KEY, Body=MODEL_CATALOGUE_FILE.read_bytes())
    c["s3"].put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:submit",
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inbox/"}, {"Name": "suffix", "Value": ".jsonl"}]}},
                },
                # Cancel markers reach submit too, which stops the batch's jobs at once (as in the template).
                {
                    "LambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:submit",
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "cancel/"}]}},
                },
            ]
        },
    )

    # The job queue's table, keyed as the template's JobQueueTable.
    try:
        c["dynamodb"].create_table(
            TableName=JOB_QUEUE_TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except c["dynamodb"].exceptions.ResourceInUseException:
        pass

    # Bedrock's job events are on the default bus whatever bus batchdrop's own events use (as in the template).
    c["events"].put_rule(Name=BEDROCK_EVENTS_RULE, EventPattern=json.dumps(json.loads(BEDROCK_EVENTS_PATTERN.read_text())))
    c["events"].put_targets(
        Rule=BEDROCK_EVENTS_RULE, Targets=[{"Id": "wake", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:wake"}]
    )

    queue_url = c["sqs"].create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
    queue_arn = c["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c["events"].put_rule(Name="batchdrop-events", EventPattern=json.dumps({"source": ["batchdrop"]}))
    c["events"].put_targets(Rule="batchdrop-events", Targets=[{"Id": "queue", "Arn": queue_arn}])

    definition = (ROOT / "statemachine/batch.asl.json").read_text()
    for name, value in template_substitutions().items():
        definition = definition.replace("${" + name + "}", value)
    if "${" in definition:
        raise SystemExit("statemachine/batch.asl.json has a placeholder the template does not substitute")
    arn = FUNCTION_ENV["STATE_MACHINE_ARN"]
    try:
        c["sfn"].describe_state_machine(stateMachineArn=arn)
        c["sfn"].update_state_machine(stateMachineArn=arn, definition=definition)
    except c["sfn"].exceptions.StateMachineDoesNotExist:
        c["sfn"].create_state_machine(
            name=STATE_MACHINE, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/batchdrop-local", type="STANDARD"
        )


if __name__ == "__main__":
    commands = {"start": start, "stop": stop, "status": status, "provision": provision}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(commands)}")
    commands[sys.argv[1]]()
