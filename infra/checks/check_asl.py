"""The project's own rules for the state machine, which asl-validator, cfn-lint and `sam validate` do not know.

Usage: check_asl.py STATEMACHINE.asl.json TEMPLATE.yaml

- Every ${Placeholder} in the ASL has a DefinitionSubstitutions entry in the template's state machine that
  loads this file, and every entry is used (a missing one deploys a literal "${...}"; neither tool notices).
- Every Task state has Retry, Catch and TimeoutSeconds. Its Catch handles States.ALL and keeps the state's
  input (ResultPath "$.<field>"), so the failure path still has $.batch_id. The one exception to Retry is a
  `.waitForTaskToken` park whose States.ALL catcher leads to a Wait state: the fallback waits just as the
  park would have, so a retry would add history events and nothing else.
- Lambda tasks retry, in one retrier, Lambda's own service errors (Lambda.Unknown too: the function died or ran
  out of time), Sandbox.Timedout, BatchdropTransientError and States.Timeout, never BatchdropFatalError or
  States.ALL. A Lambda task's TimeoutSeconds is strictly below the Timeout of the function its substitution
  names, so that States.Timeout means the task's own limit: the state gives up (and retries) before Lambda
  ends the invocation.
- State names are Title Case; Choice states, and only they, end in "?".

Exits 1 and prints every broken rule.
"""

import json
import os
import re
import sys

import yaml

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
}
LAMBDA_RETRIED = LAMBDA_SERVICE_ERRORS | {"Sandbox.Timedout", "BatchdropTransientError", "States.Timeout"}
NEVER_RETRIED = {"BatchdropFatalError", "States.ALL"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")
TITLE_WORD = re.compile(r"^[A-Z0-9][A-Za-z0-9]*$")


def falls_back_to_a_wait(state: dict, states: dict) -> bool:
    """A `.waitForTaskToken` task whose States.ALL catcher leads to a Wait state (module docstring)."""
    if not str(state.get("Resource", "")).endswith(".waitForTaskToken"):
        return False
    return any(
        "States.ALL" in c.get("ErrorEquals", []) and states.get(c.get("Next"), {}).get("Type") == "Wait"
        for c in state.get("Catch") or []
    )


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref X becomes {"Ref": "X"}, !GetAtt A.B {"Fn::GetAtt": [A, B]})."""


def _cfn_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def walk_states(states, prefix=""):
    """Every state, including those inside Parallel branches and Map iterators, with a readable path."""
    for name, state in states.items():
        yield prefix + name, name, state
        for branch in state.get("Branches", []):
            yield from walk_states(branch.get("States", {}), f"{prefix}{name} / ")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from walk_states(state[key].get("States", {}), f"{prefix}{name} / ")


def state_machine_for(template, template_path, asl_path):
    """The template's AWS::Serverless::StateMachine whose DefinitionUri is this ASL file."""
    base = os.path.dirname(os.path.abspath(template_path))
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        uri = resource.get("Properties", {}).get("DefinitionUri")
        if isinstance(uri, str) and os.path.abspath(os.path.join(base, uri)) == os.path.abspath(asl_path):
            return logical_id, resource["Properties"]
    return None, None


def function_timeout(template, substitution):
    """The Timeout of the function a substitution's !GetAtt F.Arn names, or None."""
    if not isinstance(substitution, dict) or "Fn::GetAtt" not in substitution:
        return None
    logical_id = substitution["Fn::GetAtt"][0]
    resource = template.get("Resources", {}).get(logical_id, {})
    if resource.get("Type") != "AWS::Serverless::Function":
        return None
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return resource.get("Properties", {}).get("Timeout", default)


def check(asl_path, template_path):
    problems = []
    with open(asl_path, encoding="utf-8") as f:
        asl_text = f.read()
    asl = json.loads(asl_text)
    with open(template_path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)

    logical_id, props = state_machine_for(template, template_path, asl_path)
    if props is None:
        problems.append(f"{template_path}: no AWS::Serverless::StateMachine has DefinitionUri {asl_path}")
        substitutions = {}
    else:
        substitutions = props.get("DefinitionSubstitutions") or {}
        used = set(PLACEHOLDER.findall(asl_text))
        for name in sorted(used - set(substitutions)):
            problems.append(f"${{{name}}} is in {asl_path} but not in {logical_id}.DefinitionSubstitutions")
        for name in sorted(set(substitutions) - used):
            problems.append(f"{logical_id}.DefinitionSubstitutions.{name} is not used in {asl_path}")

    for path, name, state in walk_states(asl.get("States", {})):
        kind = state.get("Type")
        words = name[:-1].rstrip() if name.endswith("?") else name
        if not all(TITLE_WORD.match(w) for w in words.split(" ")):
            problems.append(f"state '{path}': name is not Title Case")
        if kind == "Choice" and not name.endswith("?"):
            problems.append(f"Choice state '{path}': name does not end in '?'")
        if kind != "Choice" and name.endswith("?"):
            problems.append(f"{kind} state '{path}': only Choice state names end in '?'")
        if kind != "Task":
            continue

        if "TimeoutSeconds" not in state and "TimeoutSecondsPath" not in state:
            problems.append(f"Task '{path}': no TimeoutSeconds")
        retry = state.get("Retry") or []
        catch = state.get("Catch") or []
        if not retry and not falls_back_to_a_wait(state, asl.get("States", {})):
            problems.append(f"Task '{path}': no Retry")
        for i, retrier in enumerate(retry):
            if retrier.get("MaxAttempts", 3) < 1:
                problems.append(f"Task '{path}': Retry[{i}] has MaxAttempts below 1")
            if retrier.get("BackoffRate", 2.0) <= 1.0:
                problems.append(f"Task '{path}': Retry[{i}] does not back off (BackoffRate <= 1)")
        if not catch:
            problems.append(f"Task '{path}': no Catch")
        elif not any("States.ALL" in c.get("ErrorEquals", []) for c in catch):
            problems.append(f"Task '{path}': no Catch handles States.ALL")
        for i, catcher in enumerate(catch):
            result_path = catcher.get("ResultPath", "$")
            if not (isinstance(result_path, str) and result_path.startswith("$.")):
                problems.append(
                    f"Task '{path}': Catch[{i}] ResultPath {json.dumps(result_path)} replaces the state's input "
                    "(and its batch_id); use \"$.<field>\""
                )

        match = PLACEHOLDER.fullmatch(str(state.get("Resource", "")))
        if match is None or not match.group(1).endswith("FunctionArn"):
            continue
        retried = {e for r in retry for e in r.get("ErrorEquals", [])}
        if not any(LAMBDA_RETRIED <= set(r.get("ErrorEquals", [])) for r in retry):
            for error in sorted(LAMBDA_RETRIED - retried):
                problems.append(f"Lambda task '{path}': {error} is not retried")
            if LAMBDA_RETRIED <= retried:
                problems.append(f"Lambda task '{path}': {', '.join(sorted(LAMBDA_RETRIED))} are not retried by one retrier")
        for error in sorted(NEVER_RETRIED & retried):
            problems.append(f"Lambda task '{path}': {error} must not be retried")
        timeout = function_timeout(template, substitutions.get(match.group(1)))
        task_timeout = state.get("TimeoutSeconds")
        if not isinstance(timeout, int):
            problems.append(
                f"Lambda task '{path}': ${{{match.group(1)}}} does not name an AWS::Serverless::Function of "
                f"{template_path} (!GetAtt <Function>.Arn), so its Timeout is unknown"
            )
        elif not isinstance(task_timeout, int):
            problems.append(f"Lambda task '{path}': TimeoutSeconds is not a number of seconds")
        elif task_timeout >= timeout:
            problems.append(
                f"Lambda task '{path}': TimeoutSeconds {task_timeout} is not below the function's Timeout {timeout} "
                "(States.Timeout must mean the task's own limit)"
            )
    return problems


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    problems = check(argv[1], argv[2])
    for p in problems:
        print(f"check_asl: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_asl: {argv[1]} follows the project's rules and matches {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
