"""SAM and CDK deploy the same system: the SAM template after the SAM transform (target/sam/template.json, from
sam_translate.py) against the CDK synth (target/cdk/cdk.out, from infra/cdk/test/checks-app.ts).

Usage: check_parity.py [SAM_TEMPLATE.json CDK_OUT_DIR]

Both are read by cfn.render (parameters, conditions and intrinsic functions evaluated, logical ids named as in
the SAM template), once with the defaults and once with a KMS key and an alarm topic. Then every resource and
output is compared, property by property: the buckets, their policies and the trigger (notification, Lambda
permission), the functions and their environment, the state machine's definition with its substitutions, each
role's trust policy and its permissions as (effect, action, resource, condition) facts wherever they are
attached, the queue, log groups, alarms, the event schema, and the rule of Bedrock's job events with its target
and retry policy.

Equal templates can still be equally wrong, so the rule of Bedrock's job events is also checked in each: its
EventPattern is infra/events/bedrock-job-events.pattern.json, exactly; it is on the default bus (where Bedrock
sends its events) and enabled; its one target is the wake function, which gets the event unchanged, with
JOB_EVENTS_RETRY below.

Every difference must be listed in ALLOWED below, with its reason (docs/security.md repeats them).
An ALLOWED entry that no longer matches any difference is an error too, so the list stays true.
Exits 1 and prints every unexplained difference.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

# (resource, path regex, reason). A path is Resources.<name>.<property path> or Outputs.<name>.
ALLOWED = [
    (
        "SubmitFunction|CheckJobsFunction|FinalizeFunction|WakeFunction",
        r"Properties\.Tags",
        "SAM tags the functions it creates with lambda:createdBy=SAM",
    ),
    (
        "BatchStateMachine",
        r"Properties\.Tags",
        "SAM tags the state machines it creates with stateMachine:createdBy=SAM",
    ),
    (
        "BatchStateMachineRole",
        r"Properties\.Tags",
        "SAM tags the state machine role it generates with stateMachine:createdBy=SAM",
    ),
    (
        "BatchStateMachine",
        r"DependsOn",
        "CDK's StateMachine puts the log delivery permissions in a separate policy (BatchStateMachineRoleDefaultPolicy) "
        "and waits for it; SAM writes them inline in the role, which RoleArn already waits for",
    ),
]


JOB_EVENTS_RULE = "BedrockJobEventsRule"
JOB_EVENTS_PATTERN = cfn.ROOT / "infra" / "events" / "bedrock-job-events.pattern.json"
JOB_EVENTS_TARGET = "{GetAtt:WakeFunction.Arn}"
# EventBridge's retries of a delivery Lambda refused (throttling, say): a few, within a quarter of an hour. Events
# are best effort either way; the poll timeout is the backstop.
JOB_EVENTS_RETRY = {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 900}


def facts_list(facts) -> list[str]:
    return sorted(" | ".join(f) for f in facts)


def comparable(rendered: dict) -> dict:
    """Resources and outputs with IAM documents as fact lists, definitions parsed and code locations dropped."""
    roles = cfn.role_policies(rendered)
    definitions = cfn.state_machine_definitions(rendered)
    out = {}
    for name, r in rendered["Resources"].items():
        kind = r["Type"]
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue  # merged into the roles they attach to
        props = dict(r["Properties"])
        if kind == "AWS::IAM::Role":
            props.pop("Policies", None)
            props.pop("ManagedPolicyArns", None)
            props["AssumeRolePolicyDocument"] = facts_list(cfn.document_facts(props.get("AssumeRolePolicyDocument")))
            props["Permissions"] = facts_list(roles.get(name, set()))
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            props["PolicyDocument"] = facts_list(cfn.document_facts(props.get("PolicyDocument")))
        elif kind == "AWS::StepFunctions::StateMachine":
            for key in ("DefinitionString", "DefinitionSubstitutions", "Definition"):
                props.pop(key, None)
            props["Definition"] = definitions[name]
        elif kind == "AWS::Lambda::Function":
            props.pop("Code", None)  # an S3 location: SAM's placeholder, CDK's asset
        elif kind == "AWS::EventSchemas::Schema" and isinstance(props.get("Content"), str):
            props["Content"] = json.loads(props["Content"])
        out[f"Resources.{name}"] = {
            "Type": kind,
            "Properties": props,
            "DependsOn": r["DependsOn"],
            "DeletionPolicy": r["DeletionPolicy"],
            "UpdateReplacePolicy": r["UpdateReplacePolicy"],
        }
    for name, o in rendered["Outputs"].items():
        out[f"Outputs.{name}"] = o
    return out


def diff(a, b, path: str, found: list) -> None:
    """Differences between a (SAM) and b (CDK) as (path, SAM value, CDK value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}"
            if key not in a:
                found.append((sub, "(absent)", b[key]))
            elif key not in b:
                found.append((sub, a[key], "(absent)"))
            else:
                diff(a[key], b[key], sub, found)
    elif isinstance(a, list) and isinstance(b, list) and all(isinstance(x, str) for x in a + b) and (
        path.endswith((".Permissions", ".AssumeRolePolicyDocument", ".PolicyDocument"))
    ):
        for fact in sorted(set(a) - set(b)):
            found.append((path, fact, "(absent)"))
        for fact in sorted(set(b) - set(a)):
            found.append((path, "(absent)", fact))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", found)
    elif scalar(a) != scalar(b):
        found.append((path, a, b))


def scalar(v):
    """CloudFormation passes every property value as a string: a !Ref to the Number parameter 30 is "30"."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


def differences(sam: dict, cdk: dict) -> list[tuple[str, object, object]]:
    found = []
    diff(comparable(sam), comparable(cdk), "", found)
    return [(p.lstrip("."), a, b) for p, a, b in found]


def check_job_events_rule(rendered: dict, pattern: dict) -> list[str]:
    """The rule of Bedrock's job events in one rendered template (see the module's docstring)."""
    rule = rendered["Resources"].get(JOB_EVENTS_RULE)
    if rule is None or rule["Type"] != "AWS::Events::Rule":
        return [f"no AWS::Events::Rule {JOB_EVENTS_RULE}"]
    props = rule["Properties"]
    problems = []
    found = props.get("EventPattern")
    if isinstance(found, str):
        found = json.loads(found)
    if found != pattern:
        problems.append(
            f"{JOB_EVENTS_RULE}: EventPattern {json.dumps(found, sort_keys=True)} is not "
            f"{JOB_EVENTS_PATTERN.relative_to(cfn.ROOT)} {json.dumps(pattern, sort_keys=True)}"
        )
    if props.get("EventBusName", "default") != "default":
        problems.append(f"{JOB_EVENTS_RULE}: on bus {props['EventBusName']}, not the default bus, where Bedrock sends its events")
    if props.get("State", "ENABLED") != "ENABLED":
        problems.append(f"{JOB_EVENTS_RULE}: State {props['State']}, not ENABLED")
    targets = props.get("Targets", [])
    if [t.get("Arn") for t in targets] != [JOB_EVENTS_TARGET]:
        problems.append(f"{JOB_EVENTS_RULE}: targets {[t.get('Arn') for t in targets]}, not [{JOB_EVENTS_TARGET}] alone")
    for t in targets:
        for key in ("Input", "InputPath", "InputTransformer"):
            if key in t:
                problems.append(f"{JOB_EVENTS_RULE}: target {t.get('Arn')} has {key}; the wake function reads Bedrock's event as sent")
        retry = {k: scalar(v) for k, v in (t.get("RetryPolicy") or {}).items()}
        if retry != {k: scalar(v) for k, v in JOB_EVENTS_RETRY.items()}:
            problems.append(f"{JOB_EVENTS_RULE}: target {t.get('Arn')} has RetryPolicy {t.get('RetryPolicy')}, not {JOB_EVENTS_RETRY}")
    return problems


def allowed_by(path: str) -> int | None:
    for i, (resource, pattern, _reason) in enumerate(ALLOWED):
        m = re.fullmatch(rf"(?:Resources|Outputs)\.({resource})\.(.*)", path)
        if m and re.match(pattern, m.group(2)):
            return i
    return None


def check(sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> tuple[list[str], list[str]]:
    """(problems, notes): unexplained differences and stale ALLOWED entries; the allowed ones, as notes."""
    problems, notes, used = [], [], set()
    pattern = cfn.load(JOB_EVENTS_PATTERN)
    for variant, params, stack in cfn.VARIANTS:
        sam = cfn.render(cfn.load(sam_path), params)
        cdk = cfn.render(cfn.load(Path(cdk_out) / f"{stack}.template.json"))
        for source, rendered in (("SAM", sam), ("CDK", cdk)):
            problems += [f"{variant}: {source}: {p}" for p in check_job_events_rule(rendered, pattern)]
        for path, a, b in differences(sam, cdk):
            i = allowed_by(path)
            text = f"{variant}: {path}: SAM {json.dumps(a, sort_keys=True)[:300]} / CDK {json.dumps(b, sort_keys=True)[:300]}"
            if i is None:
                problems.append(text)
            else:
                used.add(i)
                notes.append(f"{text} (allowed: {ALLOWED[i][2]})")
    for i, (resource, pattern, reason) in enumerate(ALLOWED):
        if i not in used:
            problems.append(f"ALLOWED entry {resource} {pattern} ({reason}) matches no difference: remove it")
    return problems, notes


def main(argv):
    if len(argv) not in (1, 3):
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    problems, notes = check(*argv[1:]) if len(argv) == 3 else check()
    if problems:
        for n in notes:
            print(f"check_parity: allowed: {n}")
    for p in problems:
        print(f"check_parity: {p}", file=sys.stderr)
    if problems:
        print(f"check_parity: {len(problems)} difference(s) between SAM and CDK are neither fixed nor allowed", file=sys.stderr)
        return 1
    print(f"check_parity: SAM and CDK templates match, both variants, and their rule of Bedrock's job events is "
          f"{JOB_EVENTS_PATTERN.relative_to(cfn.ROOT)}, but for {len(notes)} allowed differences:")
    for resource, pattern, reason in ALLOWED:
        print(f"  {resource} {pattern}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
