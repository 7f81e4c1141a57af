"""The security promises of docs/security.md (least privilege), asserted on both deployable templates:
the SAM template after the SAM transform and the CDK synth, each with the defaults and with a KMS key.

Usage: check_security.py [SAM_TEMPLATE.json CDK_OUT_DIR]

- No Allow statement names a "*" action, or any action with a wildcard.
- Each role holds exactly the actions of ROLE_ACTIONS, none more and none fewer (the KMS actions, which follow
  the key, are checked below): submit creates no Bedrock job and passes no role, only check-jobs does; wake has
  no Bedrock right at all.
- Every resource a role may act on is the stack's own: its two buckets (or a key prefix in them), functions,
  state machine (StartExecution, SendTaskSuccess) and its executions (DescribeExecution, SendTaskSuccess),
  failure queue, log groups, the Bedrock service role, the event bus, the KMS key given; or the Bedrock job,
  model and inference-profile ARNs of this account and partition, each only for the Bedrock actions that take it
  (BEDROCK_RESOURCES). Where ROLE_RESOURCES names a role's action, the role holds it on exactly those resources:
  wake reads and writes only results/ of the output bucket (and lists it), and the state machine invokes only
  the functions its definition names.
  "*" only for the actions that take no resource-level permissions, and only for the roles STAR_ALLOWED names,
  each with the reason.
- states:SendTaskSuccess (completing a parked wait's task token) only on the batch state machine and its
  executions, never on "*" or any other pattern, in any role, whatever action names it.
- iam:PassRole only on the Bedrock service role, only with iam:PassedToService = bedrock.amazonaws.com; no other
  iam: action. No managed policy on any role (AWSLambdaBasicExecutionRole's logs permissions reach every log
  group of the account).
- The Bedrock service role trusts bedrock.amazonaws.com only, with aws:SourceAccount and aws:SourceArn conditions.
- Every bucket blocks public access (all four settings), enforces bucket-owner ownership, and has a policy that
  denies every s3 action on the bucket and its objects without TLS. Bucket and queue policies only deny.
- Encryption: with the defaults both buckets use SSE-S3 and no role has KMS permissions; with a key both use
  SSE-KMS with that key, OUTPUT_KMS_KEY_ID of every function is that key (check-jobs passes it to Bedrock's
  outputDataConfig), and the Bedrock role and every function role may use it, and nothing else may.
  The failure queue is encrypted.
- The job queue's table (docs/queue.md) is the only table: on-demand, encrypted, with point-in-time recovery;
  check-jobs alone may use it, with Query, PutItem, UpdateItem and DeleteItem, and nothing else.
- Log retention: every log group has one; every function logs to a log group of the stack, the state machine too.

Exits 1 and prints every broken promise.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

FUNCTIONS = ["SubmitFunction", "CheckJobsFunction", "FinalizeFunction", "WakeFunction"]
FUNCTION_ROLES = {f"{f}Role" for f in FUNCTIONS}
WAKE_ROLE = "WakeFunctionRole"
SERVICE_ROLE = "BedrockServiceRole"
STATE_MACHINE_ROLE = "BatchStateMachineRole"
# Actions of CloudWatch Logs' vended log delivery, which Step Functions needs to log to a log group. They take
# no resource-level permissions: AWS documents them on "*" (Step Functions developer guide, "IAM policies for
# logging to CloudWatch Logs").
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# The actions a role may hold on "*", which roles, and why: each takes no resource-level permissions.
STAR_ALLOWED = {
    **{
        action: (
            {STATE_MACHINE_ROLE},
            "log delivery takes no resource-level permissions (Step Functions developer guide, "
            "\"IAM policies for logging to CloudWatch Logs\")",
        )
        for action in LOG_DELIVERY
    },
    "bedrock:ListModelInvocationJobs": (
        FUNCTION_ROLES - {WAKE_ROLE},
        "ListModelInvocationJobs has no resource type (Service Authorization Reference, Amazon Bedrock): it lists "
        "this account's job summaries in the Region; each function but wake uses it to find a batch's jobs by name "
        "(a create with an unknown outcome, a cancel, the failure path)",
    ),
}
P, A, R = cfn.PARTITION, cfn.ACCOUNT, cfn.REGION
BUCKET_PREFIXES = ("inbox", "staging", "cancel", "results", "bedrock")
BEDROCK_JOBS = f"arn:{P}:bedrock:{R}:{A}:model-invocation-job/*"
BEDROCK_MODELS = {
    f"arn:{P}:bedrock:*::foundation-model/*",
    f"arn:{P}:bedrock:*:{A}:inference-profile/*",
    f"arn:{P}:bedrock:{R}:{A}:application-inference-profile/*",
}
# Which Bedrock ARNs each Bedrock action may name (ListModelInvocationJobs: none, only "*", above).
BEDROCK_RESOURCES = {
    "bedrock:CreateModelInvocationJob": {BEDROCK_JOBS} | BEDROCK_MODELS,
    "bedrock:GetModelInvocationJob": {BEDROCK_JOBS},
    "bedrock:StopModelInvocationJob": {BEDROCK_JOBS},
    "bedrock:TagResource": {BEDROCK_JOBS},
    "bedrock:InvokeModel": BEDROCK_MODELS,
}
STATE_MACHINE = "{Ref:BatchStateMachine}"
# The executions of the batch state machine (DescribeExecution names an execution, not the state machine).
EXECUTIONS = f"arn:{P}:states:{R}:{A}:execution:{{GetAtt:BatchStateMachine.Name}}:*"
# What completing a task token may name: the batch state machine and its executions, whose waits the tokens are of.
TASK_TOKEN_ACTION = "states:SendTaskSuccess"
TASK_TOKEN_RESOURCES = {STATE_MACHINE, EXECUTIONS}
LOG_WRITE = {"logs:CreateLogStream", "logs:PutLogEvents"}
KMS = {"kms:Decrypt", "kms:GenerateDataKey"}
# The job queue's table (docs/queue.md): what check-jobs' queries and transactions need, and nothing else.
JOB_QUEUE_TABLE = "{GetAtt:JobQueueTable.Arn}"
JOB_QUEUE_ACTIONS = {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# Every action each role holds (KMS apart: check_kms). Submit creates no job: check-jobs is the one place jobs
# are created (CreateModelInvocationJob, TagResource, iam:PassRole); submit (cancel markers), check-jobs and
# finalize find a batch's jobs by name and stop them. Submit (a cancel marker) and wake (a Bedrock job event)
# complete the parked poll loop's task token; wake only reads and conditionally writes batch.json for it.
ROLE_ACTIONS = {
    "SubmitFunctionRole": LOG_WRITE | {
        "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket",
        "bedrock:ListModelInvocationJobs", "bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob",
        "states:StartExecution", "states:DescribeExecution", TASK_TOKEN_ACTION,
        "sqs:SendMessage",
    },
    "CheckJobsFunctionRole": LOG_WRITE | JOB_QUEUE_ACTIONS | {
        "s3:GetObject", "s3:PutObject", "s3:ListBucket",
        "bedrock:ListModelInvocationJobs", "bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob",
        "bedrock:CreateModelInvocationJob", "bedrock:TagResource",
        "iam:PassRole",
        # The job queue (docs/queue.md): wakes the batch next in line, asks whether a slot's owner still runs.
        TASK_TOKEN_ACTION, "states:DescribeExecution",
    },
    "FinalizeFunctionRole": LOG_WRITE | {
        "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket",
        "bedrock:ListModelInvocationJobs", "bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob",
    },
    WAKE_ROLE: LOG_WRITE | {"s3:GetObject", "s3:PutObject", "s3:ListBucket", TASK_TOKEN_ACTION},
    SERVICE_ROLE: {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "bedrock:InvokeModel"},
    STATE_MACHINE_ROLE: LOG_DELIVERY | {"lambda:InvokeFunction", "events:PutEvents"},
}
# The exact resources of some roles' actions (KMS apart), beyond "a resource of the stack" (resource_allowed).
# Wake may read and write batch.json, and list the output bucket (GetObject of a missing batch.json answers 404
# only with it); the state machine invokes only the functions its definition names, as a function or a version.
OUTPUT_BUCKET = "{GetAtt:OutputBucket.Arn}"
ROLE_RESOURCES = {
    WAKE_ROLE: {
        **{action: {"{GetAtt:WakeLogGroup.Arn}"} for action in LOG_WRITE},
        "s3:GetObject": {f"{OUTPUT_BUCKET}/results/*"},
        "s3:PutObject": {f"{OUTPUT_BUCKET}/results/*"},
        "s3:ListBucket": {OUTPUT_BUCKET},
        TASK_TOKEN_ACTION: TASK_TOKEN_RESOURCES,
    },
    "SubmitFunctionRole": {TASK_TOKEN_ACTION: TASK_TOKEN_RESOURCES},
    "CheckJobsFunctionRole": {
        TASK_TOKEN_ACTION: TASK_TOKEN_RESOURCES,
        "states:DescribeExecution": {EXECUTIONS},
        **{action: {JOB_QUEUE_TABLE} for action in JOB_QUEUE_ACTIONS},
    },
    STATE_MACHINE_ROLE: {
        "lambda:InvokeFunction": {
            arn for f in ("CheckJobsFunction", "FinalizeFunction", "WakeFunction")
            for arn in ("{GetAtt:" + f + ".Arn}", "{GetAtt:" + f + ".Arn}:*")
        },
    },
}


def bucket_arns(rendered: dict) -> set[str]:
    """The ARNs a policy may use for the stack's buckets: by reference, or built from the bucket's name."""
    arns = set()
    for name, r in cfn.of_type(rendered, "AWS::S3::Bucket").items():
        arns.add("{GetAtt:" + name + ".Arn}")
        bucket_name = r["Properties"].get("BucketName")
        if bucket_name:
            arns.add(f"arn:{P}:s3:::{bucket_name}")
    return arns


def resource_allowed(rendered: dict, action: str, resource: str, kms_key: str | None) -> bool:
    """Whether a role may hold `action` on `resource` (see the module's docstring)."""
    service = action.split(":", 1)[0]
    if service == "s3":
        for arn in bucket_arns(rendered):
            if resource == arn or any(resource == f"{arn}/{p}/*" for p in BUCKET_PREFIXES):
                return True
        return False
    if service == "bedrock":
        return resource in BEDROCK_RESOURCES.get(action, set())
    if service == "lambda":
        return any(resource in ("{GetAtt:" + f + ".Arn}", "{GetAtt:" + f + ".Arn}:*") for f in FUNCTIONS)
    if service == "states":
        if action == "states:DescribeExecution":
            return resource == EXECUTIONS
        if action == TASK_TOKEN_ACTION:
            return resource in TASK_TOKEN_RESOURCES
        return action == "states:StartExecution" and resource == STATE_MACHINE
    if service == "sqs":
        return resource == "{GetAtt:SubmitFailureQueue.Arn}"
    if service == "dynamodb":
        return action in JOB_QUEUE_ACTIONS and resource == JOB_QUEUE_TABLE
    if service == "events":
        bus = state_machine_bus(rendered)
        return resource == f"arn:{P}:events:{R}:{A}:event-bus/{bus}"
    if service == "kms":
        return kms_key is not None and resource == kms_key and action in ("kms:Decrypt", "kms:GenerateDataKey")
    if service == "iam":
        return action == "iam:PassRole" and resource == "{GetAtt:" + SERVICE_ROLE + ".Arn}"
    if service == "logs":
        groups = cfn.of_type(rendered, "AWS::Logs::LogGroup")
        return action in ("logs:CreateLogStream", "logs:PutLogEvents") and resource in {
            "{GetAtt:" + g + ".Arn}" for g in groups
        }
    return False


def state_machine_bus(rendered: dict) -> str | None:
    machine = rendered["Resources"].get("BatchStateMachine", {})
    return (machine.get("Properties", {}).get("DefinitionSubstitutions") or {}).get("EventBusName")


def check_iam(rendered: dict, kms_key: str | None) -> list[str]:
    problems = []
    for role, facts in sorted(cfn.role_policies(rendered).items()):
        if role not in ROLE_ACTIONS:
            problems.append(f"{role}: a role check_security.py does not know (add it to ROLE_ACTIONS, with what it needs)")
        else:
            held = {f[2] for f in facts if f[0] == "Allow"} - KMS
            for action in sorted(held - ROLE_ACTIONS[role]):
                if "*" not in action and "?" not in action:
                    problems.append(f"{role}: {action} is not one of the actions it needs (ROLE_ACTIONS)")
            for action in sorted(ROLE_ACTIONS[role] - held):
                problems.append(f"{role}: lacks {action}, which it needs (ROLE_ACTIONS)")
        for effect, _principal, action, resource, condition in sorted(facts):
            if effect == "Managed":
                problems.append(f"{role}: managed policy {action}: write the permissions the role needs instead")
                continue
            if effect != "Allow":
                continue
            if "*" in action or "?" in action:
                problems.append(f"{role}: wildcard action {action}")
                continue
            if resource == "*":
                if role not in STAR_ALLOWED.get(action, (set(), ""))[0]:
                    problems.append(f"{role}: {action} on \"*\"")
                continue
            if action in STAR_ALLOWED:
                problems.append(f"{role}: {action} on {resource}: it takes no resource-level permissions, only \"*\"")
                continue
            if not resource_allowed(rendered, action, resource, kms_key):
                problems.append(f"{role}: {action} on {resource}, which is not a resource of the stack it may use")
            if action.startswith("iam:"):
                cond = json.loads(condition)
                if cond != {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}:
                    problems.append(f"{role}: {action} without the condition iam:PassedToService = bedrock.amazonaws.com")
    return problems


def check_role_resources(rendered: dict) -> list[str]:
    """Each action of ROLE_RESOURCES on exactly its resources."""
    problems = []
    roles = cfn.role_policies(rendered)
    for role, pinned in sorted(ROLE_RESOURCES.items()):
        facts = roles.get(role, set())
        for action, want in sorted(pinned.items()):
            held = {f[3] for f in facts if f[0] == "Allow" and f[2] == action}
            if held != want:
                problems.append(f"{role}: {action} on {sorted(held)}, not exactly {sorted(want)} (ROLE_RESOURCES)")
    return problems


def check_task_tokens(rendered: dict) -> list[str]:
    """SendTaskSuccess, under any action that covers it, only on the batch state machine and its executions."""
    problems = []
    for role, facts in sorted(cfn.role_policies(rendered).items()):
        for effect, _principal, action, resource, _condition in sorted(facts):
            # IAM matches actions without regard to case, and "*" and "?" as wildcards.
            named = fnmatch.fnmatchcase(TASK_TOKEN_ACTION.lower(), action.lower())
            if effect == "Allow" and named and resource not in TASK_TOKEN_RESOURCES:
                problems.append(
                    f"{role}: {TASK_TOKEN_ACTION} ({action}) on {json.dumps(resource)}: only the batch state machine "
                    "and its executions"
                )
    return problems


def check_service_role(rendered: dict) -> list[str]:
    role = rendered["Resources"].get(SERVICE_ROLE)
    if role is None:
        return [f"no {SERVICE_ROLE}"]
    problems = []
    for statement in cfn.as_list(role["Properties"]["AssumeRolePolicyDocument"].get("Statement")):
        if cfn.principal_facts(statement.get("Principal")) != ["Service:bedrock.amazonaws.com"]:
            problems.append(f"{SERVICE_ROLE} trusts {statement.get('Principal')}, not bedrock.amazonaws.com alone")
        cond = statement.get("Condition") or {}
        if cond.get("StringEquals", {}).get("aws:SourceAccount") != cfn.ACCOUNT:
            problems.append(f"{SERVICE_ROLE}: trust without aws:SourceAccount = the stack's account")
        source_arn = cond.get("ArnLike", {}).get("aws:SourceArn") or cond.get("ArnEquals", {}).get("aws:SourceArn")
        if source_arn != BEDROCK_JOBS:
            problems.append(f"{SERVICE_ROLE}: trust without aws:SourceArn = this account's model invocation jobs")
    return problems


def check_resource_policies(rendered: dict) -> list[str]:
    """The buckets' and the queue's policies only deny: access comes from the roles, checked above."""
    problems = []
    for kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
        for name, policy in sorted(cfn.of_type(rendered, kind).items()):
            for statement in cfn.as_list(policy["Properties"]["PolicyDocument"].get("Statement")):
                if statement.get("Effect") != "Deny":
                    problems.append(f"{name}: grants {statement.get('Action')} to {statement.get('Principal')}")
    return problems


def check_buckets(rendered: dict, kms_key: str | None) -> list[str]:
    problems = []
    policies = cfn.of_type(rendered, "AWS::S3::BucketPolicy")
    for name, bucket in sorted(cfn.of_type(rendered, "AWS::S3::Bucket").items()):
        props = bucket["Properties"]
        block = props.get("PublicAccessBlockConfiguration", {})
        for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if block.get(setting) not in (True, "true"):
                problems.append(f"{name}: PublicAccessBlockConfiguration.{setting} is not true")
        owners = [r.get("ObjectOwnership") for r in props.get("OwnershipControls", {}).get("Rules", [])]
        if owners != ["BucketOwnerEnforced"]:
            problems.append(f"{name}: ObjectOwnership is not BucketOwnerEnforced (ACLs stay enabled)")

        arn = "{GetAtt:" + name + ".Arn}"
        tls_denied = set()
        for policy in policies.values():
            if policy["Properties"].get("Bucket") != "{Ref:" + name + "}":
                continue
            for statement in cfn.as_list(policy["Properties"]["PolicyDocument"].get("Statement")):
                if (
                    statement.get("Effect") == "Deny"
                    and cfn.principal_facts(statement.get("Principal")) == ["*"]
                    and "s3:*" in cfn.as_list(statement.get("Action"))
                    and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                ):
                    tls_denied |= set(cfn.as_list(statement.get("Resource")))
        if not {arn, f"{arn}/*"} <= tls_denied:
            problems.append(f"{name}: no bucket policy denies s3:* on the bucket and its objects without TLS")

        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        defaults = [r.get("ServerSideEncryptionByDefault", {}) for r in rules]
        want = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key} if kms_key else {"SSEAlgorithm": "AES256"}
        if defaults != [want]:
            problems.append(f"{name}: default encryption is {defaults}, not {want}")
    return problems


def check_job_queue_table(rendered: dict) -> list[str]:
    """The job queue's table: the only table, on-demand, encrypted, with point-in-time recovery."""
    tables = cfn.of_type(rendered, "AWS::DynamoDB::Table")
    if set(tables) != {"JobQueueTable"}:
        return [f"the tables are {sorted(tables)}, not JobQueueTable alone"]
    props = tables["JobQueueTable"]["Properties"]
    problems = []
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append("JobQueueTable: not on-demand (BillingMode PAY_PER_REQUEST)")
    if (props.get("SSESpecification") or {}).get("SSEEnabled") is not True:
        problems.append("JobQueueTable: SSESpecification.SSEEnabled is not true")
    pitr = props.get("PointInTimeRecoverySpecification") or {}
    if pitr.get("PointInTimeRecoveryEnabled") is not True:
        problems.append("JobQueueTable: point-in-time recovery is off")
    return problems


def check_kms(rendered: dict, kms_key: str | None) -> list[str]:
    problems = []
    roles = cfn.role_policies(rendered)
    functions = cfn.of_type(rendered, "AWS::Lambda::Function")
    for name in FUNCTIONS:
        env = functions.get(name, {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        if env.get("OUTPUT_KMS_KEY_ID") != (kms_key or ""):
            problems.append(f"{name}: OUTPUT_KMS_KEY_ID is {env.get('OUTPUT_KMS_KEY_ID')!r}, not {kms_key or ''!r}")
    needs_key = [SERVICE_ROLE] + [f"{f}Role" for f in FUNCTIONS]
    for role, facts in sorted(roles.items()):
        kms = {(f[2], f[3]) for f in facts if f[0] == "Allow" and f[2].startswith("kms:")}
        if kms_key and role in needs_key:
            want = {("kms:Decrypt", kms_key), ("kms:GenerateDataKey", kms_key)}
            if kms != want:
                problems.append(f"{role}: KMS permissions {sorted(kms)}, not {sorted(want)}")
        elif kms:
            problems.append(f"{role}: KMS permissions {sorted(kms)} it does not need")
    for name, queue in cfn.of_type(rendered, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        if props.get("SqsManagedSseEnabled") not in (True, "true") and not props.get("KmsMasterKeyId"):
            problems.append(f"{name}: not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
    return problems


def check_logs(rendered: dict) -> list[str]:
    problems = []
    groups = cfn.of_type(rendered, "AWS::Logs::LogGroup")
    for name, group in sorted(groups.items()):
        if not group["Properties"].get("RetentionInDays"):
            problems.append(f"{name}: no RetentionInDays (logs kept forever)")
    refs = {"{Ref:" + g + "}" for g in groups}
    arns = {"{GetAtt:" + g + ".Arn}" for g in groups}
    for name, fn in sorted(cfn.of_type(rendered, "AWS::Lambda::Function").items()):
        if fn["Properties"].get("LoggingConfig", {}).get("LogGroup") not in refs:
            problems.append(f"{name}: does not log to a log group of the stack (with retention)")
    for name, machine in sorted(cfn.of_type(rendered, "AWS::StepFunctions::StateMachine").items()):
        destinations = machine["Properties"].get("LoggingConfiguration", {}).get("Destinations", [])
        targets = [d.get("CloudWatchLogsLogGroup", {}).get("LogGroupArn") for d in destinations]
        if not targets or not all(t in arns for t in targets):
            problems.append(f"{name}: does not log to a log group of the stack (with retention)")
    return problems


def check_template(rendered: dict, kms_key: str | None) -> list[str]:
    return (
        check_iam(rendered, kms_key)
        + check_role_resources(rendered)
        + check_task_tokens(rendered)
        + check_resource_policies(rendered)
        + check_service_role(rendered)
        + check_buckets(rendered, kms_key)
        + check_kms(rendered, kms_key)
        + check_job_queue_table(rendered)
        + check_logs(rendered)
    )


def check(sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> list[str]:
    problems = []
    for label, rendered in cfn.all_rendered(sam_path, cdk_out):
        kms_key = cfn.KMS_KEY if label.endswith("kms") else None
        problems += [f"{label}: {p}" for p in check_template(rendered, kms_key)]
    return problems


def main(argv):
    return cfn.run("check_security", argv, check, __doc__.strip().splitlines()[3], lambda: "SAM and CDK templates, with and without a KMS key, keep every security promise")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
