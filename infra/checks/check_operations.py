"""What an operator relies on, asserted on both deployable templates (SAM after the transform, CDK synth), each
with the defaults and with a KMS key and an alarm topic.

Usage: check_operations.py [SAM_TEMPLATE.json CDK_OUT_DIR]

- The triggers: the input bucket notifies SubmitFunction of s3:ObjectCreated:* under inbox/ ending .jsonl (an
  upload), and of s3:ObjectCreated:* under cancel/, any suffix (a cancel marker, handled within a minute); a
  Lambda permission lets s3.amazonaws.com of this account invoke it.
- The dead-letter path: S3 invokes submit asynchronously, so an EventInvokeConfig on its $LATEST sends an event
  that failed its (at most 2) retries to SubmitFailureQueue (DestinationConfig.OnFailure), whose messages live
  14 days, and the function's role may send to that queue.
- The wake-up path: the rule of Bedrock's job events (BedrockJobEventsRule) targets WakeFunction, and a Lambda
  permission lets events.amazonaws.com invoke it for that rule alone (SourceArn). check_parity.py checks the
  rule's pattern, bus and retries.
- Alarms: on ExecutionsFailed of the state machine, on Errors of each function, on the failure queue's depth
  (ApproximateNumberOfMessagesVisible), and on JobStopFailures (Bedrock jobs that could not be stopped); each on
  the stack's own resource, and each notifying the alarm topic when one is given, and nothing when none is.
- JobStopFailures: a metric filter on the log group of each function that stops jobs (all but wake) counts the
  log events that contain "could not stop job" (STOP_FAILURE_TEXT) into JobStopFailures, in the namespace
  batchdrop/<stack name> (a metric filter cannot add a constant dimension, so the namespace keeps two stacks
  apart).

Exits 1 and prints every missing piece.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

FUNCTIONS = ["SubmitFunction", "CheckJobsFunction", "FinalizeFunction", "WakeFunction"]
# The log groups of the functions that stop Bedrock jobs (wake stops none), each with a JobStopFailures filter.
LOG_GROUPS = {"SubmitFunction": "SubmitLogGroup", "CheckJobsFunction": "CheckJobsLogGroup", "FinalizeFunction": "FinalizeLogGroup"}
QUEUE = "SubmitFailureQueue"
JOB_EVENTS_RULE = "BedrockJobEventsRule"
# What the functions log (src/pipeline) when StopModelInvocationJob fails, and the metric that counts it.
STOP_FAILURE_TEXT = "could not stop job"
STOP_FAILURE_NAMESPACE = "batchdrop/{StackName}"
STOP_FAILURE_METRIC = "JobStopFailures"
# (what, filter rules sorted by name) of each trigger of SubmitFunction on the input bucket.
TRIGGERS = [
    ("s3:ObjectCreated:* on inbox/**.jsonl", [{"Name": "prefix", "Value": "inbox/"}, {"Name": "suffix", "Value": ".jsonl"}]),
    ("s3:ObjectCreated:* on cancel/**", [{"Name": "prefix", "Value": "cancel/"}]),
]


def alarms_on(rendered: dict, namespace: str, metric: str, dimension: str | None, value: str | None) -> list[dict]:
    """The alarms on this metric with exactly this one dimension (or, dimension None, with none)."""
    want = {dimension: value} if dimension else {}
    found = []
    for alarm in cfn.of_type(rendered, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        if p.get("Namespace") == namespace and p.get("MetricName") == metric and dims == want:
            found.append(p)
    return found


def check_trigger(rendered: dict) -> list[str]:
    problems = []
    bucket = rendered["Resources"].get("InputBucket", {}).get("Properties", {})
    configs = bucket.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
    for what, want_rules in TRIGGERS:
        if not any(
            c.get("Function") == "{GetAtt:SubmitFunction.Arn}"
            and c.get("Event") == "s3:ObjectCreated:*"
            and sorted(c.get("Filter", {}).get("S3Key", {}).get("Rules", []), key=lambda r: r["Name"]) == want_rules
            for c in configs
        ):
            problems.append(f"InputBucket does not notify SubmitFunction of {what}")
    if not any(
        p["Properties"].get("FunctionName") in ("{Ref:SubmitFunction}", "{GetAtt:SubmitFunction.Arn}")
        and p["Properties"].get("Principal") == "s3.amazonaws.com"
        and p["Properties"].get("Action") == "lambda:InvokeFunction"
        and p["Properties"].get("SourceAccount") == cfn.ACCOUNT
        for p in cfn.of_type(rendered, "AWS::Lambda::Permission").values()
    ):
        problems.append("no Lambda permission lets s3.amazonaws.com of this account invoke SubmitFunction")
    return problems


def check_wake_trigger(rendered: dict) -> list[str]:
    problems = []
    rule = rendered["Resources"].get(JOB_EVENTS_RULE, {}).get("Properties", {})
    if "{GetAtt:WakeFunction.Arn}" not in [t.get("Arn") for t in rule.get("Targets", [])]:
        problems.append(f"{JOB_EVENTS_RULE} does not target WakeFunction")
    if not any(
        p["Properties"].get("FunctionName") in ("{Ref:WakeFunction}", "{GetAtt:WakeFunction.Arn}")
        and p["Properties"].get("Principal") == "events.amazonaws.com"
        and p["Properties"].get("Action") == "lambda:InvokeFunction"
        and p["Properties"].get("SourceArn") == "{GetAtt:" + JOB_EVENTS_RULE + ".Arn}"
        for p in cfn.of_type(rendered, "AWS::Lambda::Permission").values()
    ):
        problems.append(f"no Lambda permission lets events.amazonaws.com invoke WakeFunction for {JOB_EVENTS_RULE}")
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


def check_stop_failure_filters(rendered: dict) -> list[str]:
    """Each function's log group counts its "could not stop job" events into JobStopFailures."""
    problems = []
    filters = [f["Properties"] for f in cfn.of_type(rendered, "AWS::Logs::MetricFilter").values()]
    for function, group in LOG_GROUPS.items():
        counted = False
        for f in filters:
            if f.get("LogGroupName") != "{Ref:" + group + "}":
                continue
            pattern = f.get("FilterPattern", "")
            if pattern.strip() != f'"{STOP_FAILURE_TEXT}"':
                continue
            for t in f.get("MetricTransformations", []):
                if (
                    t.get("MetricNamespace") == STOP_FAILURE_NAMESPACE
                    and t.get("MetricName") == STOP_FAILURE_METRIC
                    and str(t.get("MetricValue")) == "1"
                ):
                    counted = True
        if not counted:
            problems.append(
                f"no metric filter on {group} ({function}) counts '\"{STOP_FAILURE_TEXT}\"' into "
                f"{STOP_FAILURE_NAMESPACE} {STOP_FAILURE_METRIC} (value 1)"
            )
    return problems


def check_alarms(rendered: dict, topic: str | None) -> list[str]:
    problems = []
    wanted = [("AWS/States", "ExecutionsFailed", "StateMachineArn", "{Ref:BatchStateMachine}")]
    wanted += [("AWS/Lambda", "Errors", "FunctionName", "{Ref:" + f + "}") for f in FUNCTIONS]
    wanted += [("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "{GetAtt:" + QUEUE + ".QueueName}")]
    wanted += [(STOP_FAILURE_NAMESPACE, STOP_FAILURE_METRIC, None, None)]
    for namespace, metric, dimension, value in wanted:
        found = alarms_on(rendered, namespace, metric, dimension, value)
        of = f" of {value}" if value else ""
        if not found:
            problems.append(f"no alarm on {namespace} {metric}{of}")
        for p in found:
            if float(p.get("Threshold", 0)) > 1 or p.get("ComparisonOperator") != "GreaterThanOrEqualToThreshold":
                problems.append(f"the alarm on {metric}{of} does not fire on the first occurrence")
            if int(p.get("Period", 0)) != 300 or int(p.get("EvaluationPeriods", 0)) != 1:
                problems.append(f"the alarm on {metric}{of} does not look at one period of 5 minutes")
            if p.get("TreatMissingData") != "notBreaching":
                problems.append(f"the alarm on {metric}{of} treats missing data as {p.get('TreatMissingData')}, not notBreaching")
    for name, alarm in sorted(cfn.of_type(rendered, "AWS::CloudWatch::Alarm").items()):
        actions = alarm["Properties"].get("AlarmActions", [])
        if actions != ([topic] if topic else []):
            problems.append(f"{name}: AlarmActions {actions}, not {[topic] if topic else []}")
    return problems


def check(sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> list[str]:
    problems = []
    for label, rendered in cfn.all_rendered(sam_path, cdk_out):
        topic = cfn.ALARM_TOPIC if label.endswith("kms") else None
        found = (
            check_trigger(rendered)
            + check_wake_trigger(rendered)
            + check_dead_letters(rendered)
            + check_alarms(rendered, topic)
            + check_stop_failure_filters(rendered)
        )
        problems += [f"{label}: {p}" for p in found]
    return problems


def main(argv):
    return cfn.run("check_operations", argv, check, __doc__.strip().splitlines()[3], lambda: "triggers, wake-up path, dead-letter path, alarms and the job stop failure metric are in place in SAM and CDK templates")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
