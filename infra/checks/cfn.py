"""Reads the deployable CloudFormation templates (the SAM template after the SAM transform, the CDK synth) into
one comparable form, for check_parity.py, check_security.py and check_operations.py.

The two sources say the same things differently. `render` evaluates what can be known before a deploy:

- Parameters take their values (the defaults, or those given), Conditions are evaluated and Fn::If is chosen,
  AWS::NoValue disappears, resources whose Condition is false are dropped.
- Pseudo parameters become the fixed values of the checks' environment (ACCOUNT, REGION, partition aws), so a
  CDK stack synthesized for that explicit account and Region (literal "123456789012") reads like SAM's
  ${AWS::AccountId}. AWS::StackName stays symbolic: `{StackName}`.
- Fn::Sub and Fn::Join become strings; a reference to a resource becomes `{Ref:Id}` or `{GetAtt:Id.Attr}`, so
  "${OutputBucket.Arn}/results/*" and {"Fn::Join": ["", [{"Fn::GetAtt": [...]}, "/results/*"]]} are equal.
- Logical ids become the names the SAM template uses. A CDK resource is named after its construct path below
  the BatchdropPipeline construct, without "Resource": Batchdrop/InputBucket/Policy/Resource -> InputBucketPolicy.

IAM statements are compared as sets of (effect, action, resource, condition) facts, one per action and resource,
whatever Sid, order, grouping or policy resource carries them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "{StackName}",
}
# The values of the second variant of both templates: infra/cdk/test/checks-app.ts (BatchdropKms) uses the same.
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b5e2f4c-1d3a-4e5f-8a9b-0c1d2e3f4a5b"
ALARM_TOPIC = "arn:aws:sns:us-east-1:123456789012:batchdrop-alarms"

SAM_TEMPLATE = ROOT / "target" / "sam" / "template.json"
CDK_OUT = ROOT / "target" / "cdk" / "cdk.out"
# (name, SAM parameter values, CDK stack of infra/cdk/test/checks-app.ts)
VARIANTS = [
    ("defaults", {}, "BatchdropDefaults"),
    ("kms", {"OutputKmsKeyId": KMS_KEY, "AlarmTopicArn": ALARM_TOPIC}, "BatchdropKms"),
]
# The construct id of BatchdropPipeline in the example stack (BatchdropStack, infra/cdk/lib/batchdrop-stack.ts).
CDK_CONSTRUCT = "Batchdrop"

NOVALUE = object()


class Unresolvable(Exception):
    pass


def load(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def canonical_ids(template: dict) -> dict[str, str]:
    """Logical id -> the name the SAM template uses (a CDK resource: its path below the pipeline construct)."""
    names = {}
    for logical_id, resource in template.get("Resources", {}).items():
        path = (resource.get("Metadata") or {}).get("aws:cdk:path")
        if not path:
            names[logical_id] = logical_id
            continue
        parts = path.split("/")
        if CDK_CONSTRUCT in parts[1:]:
            parts = parts[parts.index(CDK_CONSTRUCT, 1) + 1 :]
        else:
            parts = parts[1:]
        if parts and parts[-1] == "Resource":
            parts = parts[:-1]
        names[logical_id] = "".join(parts)
    if len(set(names.values())) != len(names):
        raise ValueError("two resources have the same canonical name")
    return names


class Renderer:
    def __init__(self, template: dict, parameters: dict | None = None):
        self.template = template
        self.names = canonical_ids(template)
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            if parameters and name in parameters:
                self.params[name] = str(parameters[name])
            elif "Default" in spec:
                self.params[name] = str(spec["Default"])
        unknown = set(parameters or {}) - set(template.get("Parameters", {}))
        if unknown:
            raise ValueError(f"no such parameters: {sorted(unknown)}")
        self.conditions = {}
        for name, expr in template.get("Conditions", {}).items():
            self.conditions[name] = self.condition(expr)

    def condition(self, expr) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            (key, arg), = expr.items()
            if key == "Condition":
                if arg not in self.conditions:
                    self.conditions[arg] = self.condition(self.template["Conditions"][arg])
                return self.conditions[arg]
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.condition(arg[0])
            if key == "Fn::And":
                return all(self.condition(a) for a in arg)
            if key == "Fn::Or":
                return any(self.condition(a) for a in arg)
        raise Unresolvable(f"condition {expr!r}")

    def ref(self, name: str) -> str:
        if name in self.params:
            return self.params[name]
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.names:
            return "{Ref:" + self.names[name] + "}"
        raise Unresolvable(f"Ref {name}")

    def getatt(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.names:
            raise Unresolvable(f"GetAtt {logical_id}")
        return "{GetAtt:" + self.names[logical_id] + "." + attribute + "}"

    def sub(self, text: str, variables: dict) -> str:
        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self.string(variables[name])
            if "." in name and name.split(".", 1)[0] in self.names:
                return self.getatt(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def string(self, value) -> str:
        v = self.value(value)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if not isinstance(v, str):
            raise Unresolvable(f"not a string: {value!r}")
        return v

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NOVALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical_id, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.sub(text, variables)
            if key == "Fn::Join":
                return arg[0].join(self.string(v) for v in self.value(arg[1]))
            if key == "Fn::If":
                return self.value(arg[1] if self.condition({"Condition": arg[0]}) else arg[2])
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return self.string(arg[1]).split(arg[0])
            if key in ("Fn::GetAZs", "Fn::ImportValue", "Fn::FindInMap", "Fn::Base64", "Fn::Cidr"):
                raise Unresolvable(key)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NOVALUE}


def render(template: dict, parameters: dict | None = None) -> dict:
    """The template as deployed with these parameter values, in the comparable form described above."""
    r = Renderer(template, parameters)
    resources = {}
    for logical_id, resource in template.get("Resources", {}).items():
        condition = resource.get("Condition")
        if condition and not r.conditions[condition]:
            continue
        name = r.names[logical_id]
        depends = resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        resources[name] = {
            "Type": resource["Type"],
            "Properties": r.value(resource.get("Properties", {})),
            "DependsOn": sorted(r.names[d] for d in depends),
            # CloudFormation's default for everything here is Delete.
            "DeletionPolicy": resource.get("DeletionPolicy", "Delete"),
            "UpdateReplacePolicy": resource.get("UpdateReplacePolicy", "Delete"),
            "LogicalId": logical_id,
        }
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        condition = output.get("Condition")
        if condition and not r.conditions[condition]:
            continue
        outputs[name] = {"Description": output.get("Description"), "Value": r.value(output.get("Value"))}
    return {"Resources": resources, "Outputs": outputs}


def all_rendered(sam_path=SAM_TEMPLATE, cdk_out=CDK_OUT) -> list[tuple[str, dict]]:
    """(label, rendered template) for SAM and CDK, each with the defaults and with a KMS key and alarm topic."""
    out = []
    for variant, params, stack in VARIANTS:
        out.append((f"SAM {variant}", render(load(sam_path), params)))
        out.append((f"CDK {variant}", render(load(Path(cdk_out) / f"{stack}.template.json"))))
    return out


# ---------------------------------------------------------------- IAM


def as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def principal_facts(principal) -> list[str]:
    if principal == "*":
        return ["*"]
    facts = []
    for kind, values in sorted((principal or {}).items()):
        for v in as_list(values):
            facts.append("*" if (kind == "AWS" and v == "*") else f"{kind}:{v}")
    return sorted(facts)


def statement_facts(statement: dict) -> set[tuple]:
    """One (effect, principal, action, resource, condition) fact per action, resource and principal."""
    effect = statement.get("Effect", "Allow")
    condition = json.dumps(statement.get("Condition") or {}, sort_keys=True)
    principals = principal_facts(statement["Principal"]) if "Principal" in statement else [""]
    facts = set()
    for action in as_list(statement.get("Action")):
        for resource in as_list(statement.get("Resource")) or [""]:
            for principal in principals:
                facts.add((effect, principal, action, resource, condition))
    return facts


def document_facts(document: dict) -> set[tuple]:
    facts = set()
    for statement in as_list((document or {}).get("Statement")):
        facts |= statement_facts(statement)
    return facts


def role_policies(rendered: dict) -> dict[str, set[tuple]]:
    """Every role's identity-based permissions: inline policies, AWS::IAM::Policy resources attached to it,
    and managed policies (as ("Managed", arn) facts)."""
    resources = rendered["Resources"]
    roles = {name: set() for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    for name in roles:
        props = resources[name]["Properties"]
        for policy in props.get("Policies", []):
            roles[name] |= document_facts(policy.get("PolicyDocument"))
        for arn in props.get("ManagedPolicyArns", []):
            roles[name].add(("Managed", "", arn, "", ""))
    for name, r in resources.items():
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role_ref in r["Properties"].get("Roles", []):
                role = role_ref.removeprefix("{Ref:").removesuffix("}")
                roles.setdefault(role, set()).update(document_facts(r["Properties"].get("PolicyDocument")))
    return roles


def allows(facts: set[tuple]) -> list[tuple]:
    return sorted(f for f in facts if f[0] == "Allow")


def state_machine_definitions(rendered: dict) -> dict[str, dict]:
    """Each state machine's definition, parsed, with its DefinitionSubstitutions put in."""
    out = {}
    for name, r in rendered["Resources"].items():
        if r["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        props = r["Properties"]
        text = props.get("DefinitionString")
        if text is None:
            text = json.dumps(props["Definition"])
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", str(value))
        out[name] = json.loads(text)
    return out


def of_type(rendered: dict, type_name: str) -> dict[str, dict]:
    return {n: r for n, r in rendered["Resources"].items() if r["Type"] == type_name}


def run(name: str, argv: list[str], check, usage: str, ok) -> int:
    """The command line every check shares: no arguments, or the SAM template and the CDK output folder.
    Problems go to stderr and exit 1; `ok()` is the one-line summary printed when there are none."""
    if len(argv) not in (1, 3):
        print(usage, file=sys.stderr)
        return 2
    problems = check(*argv[1:])
    for p in problems:
        print(f"{name}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{name}: {ok()}")
    return 0
