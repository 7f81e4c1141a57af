"""What an operator relies on, asserted on both deployable templates (SAM after the transform, CDK synth), each
with the defaults and with a KMS key and an alarm topic.

Usage: check_operations.py [SAM_TEMPLATE.json CDK_OUT_DIR]

- The trigger: the input bucket notifies SubmitFunction of s3:ObjectCreated:* under inbox/ ending .jsonl, and
  a Lambda permission lets s3.amazonaws.com of this account invoke it.
- The dead-letter path: S3 invokes submit asynchronously, so an EventInvokeConfig on its $LATEST sends an event
  that failed its (at most 2) retries to SubmitFailureQueue (DestinationConfig.OnFailure), whose messages live
  14 days, and the function's role may send to that queue.
- Alarms: on ExecutionsFailed of the state machine, on Errors of each function, and on the failure queue's
  depth (ApproximateNumberOfMessagesVisible); each on the stack's own resource, and each notifying the alarm
  topic when one is given, and nothing when none is.

Exits 1 and prints every missing piece.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

FUNCTIONS = ["SubmitFunction", "CheckJobsFunction", "FinalizeFunction"]
QUEUE = "SubmitFailureQueue"


def alarms_on(rendered: dict, namespace: str, metric: str, dimension: str, value: str) -> list[dict]:
    found = []
    for alarm in cfn.of_type(rendered, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        if p.get("Namespace") == namespace and p.get("MetricName") == metric and dims == {dimension: value}:
            found.append(p)
    return found


def check_trigger(rendered: dict) -> list[str]:
    problems = []
    bucket = rendered["Resources"].get("InputBucket", {}).get("Properties", {})
    configs = bucket.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
    want_rules = [{"Name": "prefix", "Value": "inbox/"}, {"Name": "suffix", "Value": ".jsonl"}]
    if not any(
        c.get("Function") == "{GetAtt:SubmitFunction.Arn}"
        and c.get("Event") == "s3:ObjectCreated:*"
        and sorted(c.get("Filter", {}).get("S3Key", {}).get("Rules", []), key=lambda r: r["Name"]) == want_rules
        for c in configs
    ):
        problems.append("InputBucket does not notify SubmitFunction of s3:ObjectCreated:* on inbox/**.jsonl")
    if not any(
        p["Properties"].get("FunctionName") in ("{Ref:SubmitFunction}", "{GetAtt:SubmitFunction.Arn}")
        and p["Properties"].get("Principal") == "s3.amazonaws.com"
        and p["Properties"].get("Action") == "lambda:InvokeFunction"
        and p["Properties"].get("SourceAccount") == cfn.ACCOUNT
        for p in cfn.of_type(rendered, "AWS::Lambda::Permission").values()
    ):
        problems.append("no Lambda permission lets s3.amazonaws.com of this account invoke SubmitFunction")
    return problems


def check_dead_letters(rendered: dict) -> list[str]:
    problems = []
    queue_arn = "{GetAtt:" + QUEUE + ".Arn}"
    configs = [
        c["Properties"]
        for c in cfn.of_type(rendered, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"].get("FunctionName") == "{Ref:SubmitFunction}"
    ]
    if len(configs) != 1:
        problems.append(f"SubmitFunction has {len(configs)} EventInvokeConfig, not 1")
    for c in configs:
        if c.get("Qualifier") != "$LATEST":
            problems.append(f"SubmitFunction's EventInvokeConfig is on {c.get('Qualifier')}, not $LATEST, which S3 invokes")
        if c.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") != queue_arn:
            problems.append(f"SubmitFunction's failed events do not go to {QUEUE} (DestinationConfig.OnFailure)")
        if int(c.get("MaximumRetryAttempts", 2)) > 2:
            problems.append("SubmitFunction's EventInvokeConfig retries more than twice")
    queue = rendered["Resources"].get(QUEUE)
    if queue is None:
        problems.append(f"no {QUEUE}")
    elif int(queue["Properties"].get("MessageRetentionPeriod", 345600)) != 1209600:
        problems.append(f"{QUEUE} keeps messages {queue['Properties'].get('MessageRetentionPeriod')} s, not 14 days")
    facts = cfn.role_policies(rendered).get("SubmitFunctionRole", set())
    if not any(f[0] == "Allow" and f[2] == "sqs:SendMessage" and f[3] == queue_arn for f in facts):
        problems.append(f"SubmitFunctionRole may not send to {QUEUE}: Lambda could not deliver the failed events")
    return problems


def check_alarms(rendered: dict, topic: str | None) -> list[str]:
    problems = []
    wanted = [("AWS/States", "ExecutionsFailed", "StateMachineArn", "{Ref:BatchStateMachine}")]
    wanted += [("AWS/Lambda", "Errors", "FunctionName", "{Ref:" + f + "}") for f in FUNCTIONS]
    wanted += [("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "{GetAtt:" + QUEUE + ".QueueName}")]
    for namespace, metric, dimension, value in wanted:
        found = alarms_on(rendered, namespace, metric, dimension, value)
        if not found:
            problems.append(f"no alarm on {namespace} {metric} of {value}")
        for p in found:
            if float(p.get("Threshold", 0)) > 1 or p.get("ComparisonOperator") != "GreaterThanOrEqualToThreshold":
                problems.append(f"the alarm on {metric} of {value} does not fire on the first occurrence")
    for name, alarm in sorted(cfn.of_type(rendered, "AWS::CloudWatch::Alarm").items()):
        actions = alarm["Properties"].get("AlarmActions", [])
        if actions != ([topic] if topic else []):
            problems.append(f"{name}: AlarmActions {actions}, not {[topic] if topic else []}")
    return problems


def check(sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> list[str]:
    problems = []
    for label, rendered in cfn.all_rendered(sam_path, cdk_out):
        topic = cfn.ALARM_TOPIC if label.endswith("kms") else None
        found = check_trigger(rendered) + check_dead_letters(rendered) + check_alarms(rendered, topic)
        problems += [f"{label}: {p}" for p in found]
    return problems


def main(argv):
    return cfn.run("check_operations", argv, check, __doc__.strip().splitlines()[3], lambda: "trigger, dead-letter path and alarms are in place in SAM and CDK templates")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
