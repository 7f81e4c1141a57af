"""The completion event's JSON Schema (infra/events/batch-event.schema.json) says what batchdrop really sends.

Usage: check_event_schema.py [SAM_TEMPLATE.json CDK_OUT_DIR]

- The schema is valid JSON Schema draft 4 (the schema registry's JSONSchemaDraft4).
- It follows the Rust types of the detail (src/status.rs): EventDetail's fields and those of RequestCounts,
  BatchUsage, CachedTokens and ReasoningTokens are the schema's properties, all required, no others; Option
  fields may be null, Vec fields are arrays, u64 fields integers; the statuses are BatchStatus's terminal ones.
- It follows the state machine (statemachine/batch.asl.json): the source and detail-types its putEvents tasks
  send, and the detail of "Announce Unfinalized Failure", built from its Parameters with an example input.
  A putEvents task whose detail is its input ("Detail.$": "$") must be reached only from a finalize task, directly
  or through Choice states on $.status; which statuses reach it follows from those Choices ("Batch Failed?"
  sends a finalized batch whose status is failed as Batch Failed, the others as Batch Completed; finalize in
  failure mode always answers failed). The schema accepts finalize's detail with exactly those statuses under
  that detail-type, and rejects it with any other terminal status.
- It accepts every recorded event in infra/events/examples/ (real runs on the local stack, recorded by
  infra/events/record_examples.py), which cover Batch Completed, Batch Failed after finalize, and Batch Failed
  without it, each with a detail-type and status the state machine sends; and every JSON example of
  docs/events.md, the event's documentation.
- The AWS::EventSchemas::Schema of both templates carries this very schema.

Exits 1 and prints every mismatch.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

ROOT = cfn.ROOT
SCHEMA = ROOT / "infra" / "events" / "batch-event.schema.json"
EXAMPLES = ROOT / "infra" / "events" / "examples"
STATUS_RS = ROOT / "src" / "status.rs"
ASL = ROOT / "statemachine" / "batch.asl.json"
EVENTS_DOC = ROOT / "docs" / "events.md"
# The placeholders of docs/events.md, made concrete so that its examples can be validated.
DOC_PLACEHOLDERS = {
    "<input bucket>": "batchdrop-input-123456789012-us-east-1",
    "<output bucket>": "batchdrop-output-123456789012-us-east-1",
}
# Which Rust struct each object of the schema's FinalizedBatch mirrors.
RUST_TYPES = {
    "": "EventDetail",
    "request_counts": "RequestCounts",
    "usage": "BatchUsage",
    "usage.input_tokens_details": "CachedTokens",
    "usage.output_tokens_details": "ReasoningTokens",
}


def load_schema(path=SCHEMA) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validator(schema: dict) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def errors(schema: dict, event: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}" for e in validator(schema).iter_errors(event)]


def envelope(detail_type: str, detail: dict) -> dict:
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": detail_type,
        "source": "batchdrop",
        "account": cfn.ACCOUNT,
        "time": "2025-01-01T00:00:00Z",
        "region": cfn.REGION,
        "resources": [],
        "detail": detail,
    }


def rust_structs(text: str) -> dict[str, dict[str, str]]:
    """`pub struct Name { pub field: Type, … }` of a Rust file: {Name: {field: Type}}."""
    structs = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        fields = re.findall(r"^\s*pub (\w+): ([^,\n]+),", m.group(2), re.M)
        structs[m.group(1)] = dict(fields)
    return structs


def terminal_statuses(text: str) -> set[str]:
    """BatchStatus's terminal variants (is_terminal), in serde's snake_case."""
    m = re.search(r"fn is_terminal\(self\) -> bool \{(.*?)\n    \}", text, re.S)
    variants = re.findall(r"BatchStatus::(\w+)", m.group(1) if m else "")
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", v).lower() for v in variants}


def check_rust(schema: dict, status_rs=STATUS_RS) -> list[str]:
    problems = []
    text = Path(status_rs).read_text(encoding="utf-8")
    structs = rust_structs(text)
    defs = schema["definitions"]
    for where, rust in RUST_TYPES.items():
        node = defs["FinalizedBatch"]
        for part in [p for p in where.split(".") if p]:
            node = node["properties"][part]
        fields = structs.get(rust)
        if fields is None:
            problems.append(f"src/status.rs has no struct {rust}")
            continue
        props = node.get("properties", {})
        label = f"detail{'.' + where if where else ''}"
        if set(props) != set(fields):
            problems.append(f"{label}: schema properties {sorted(props)} but {rust} has {sorted(fields)}")
        if set(node.get("required", [])) != set(fields):
            problems.append(f"{label}: schema requires {sorted(node.get('required', []))}, {rust} always has {sorted(fields)}")
        if node.get("additionalProperties") is not False:
            problems.append(f"{label}: schema allows properties {rust} does not have")
        for field, rust_type in fields.items():
            spec = props.get(field)
            if spec is None:
                continue
            spec = resolve(schema, spec)
            types = set(cfn.as_list(spec.get("type")))
            if rust_type.startswith("Option<") and "null" not in types:
                problems.append(f"{label}.{field}: {rust_type} may be null, the schema does not allow it")
            if rust_type.startswith("Vec<") and "array" not in types:
                problems.append(f"{label}.{field}: {rust_type} is an array, the schema says {sorted(types)}")
            if rust_type == "u64" and types != {"integer"}:
                problems.append(f"{label}.{field}: u64 is an integer, the schema says {sorted(types)}")
            if rust_type == "String" and types != {"string"}:
                problems.append(f"{label}.{field}: String is a string, the schema says {sorted(types)}")
    statuses = set(defs["FinalizedBatch"]["properties"]["status"]["enum"])
    if statuses != terminal_statuses(text):
        problems.append(f"detail.status: schema {sorted(statuses)}, BatchStatus::is_terminal {sorted(terminal_statuses(text))}")
    return problems


def resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in spec:
        spec = schema["definitions"][spec["$ref"].rsplit("/", 1)[1]]
    return spec


def asl_detail(parameters: dict, state_input: dict) -> dict:
    """A putEvents Detail built as Step Functions would: "key.$" paths and States.Format of paths."""

    def path(p):
        value = state_input
        for part in p.removeprefix("$.").split("."):
            value = value[part]
        return value

    out = {}
    for key, value in parameters.items():
        if not key.endswith(".$"):
            out[key] = value
        elif value.startswith("States.Format("):
            fmt, *args = [a.strip() for a in value[len("States.Format(") : -1].split(",")]
            text = fmt.strip("'")
            for a in args:
                text = text.replace("{}", str(path(a)), 1)
            out[key[:-2]] = text
        else:
            out[key[:-2]] = path(value)
    return out


FINALIZE_RESOURCE = "${FinalizeFunctionArn}"


def transitions(state: dict) -> list[tuple[str, dict | None]]:
    """(next state, the Choice rule that leads there, or None) of every way out of a state."""
    out = [(state["Next"], None)] if "Next" in state else []
    for rule in state.get("Choices", []):
        out.append((rule["Next"], rule))
    if "Default" in state:
        out.append((state["Default"], {"Default": [r for r in state.get("Choices", [])]}))
    for catcher in state.get("Catch", []):
        out.append((catcher["Next"], {"Catch": catcher}))
    return out


def status_rule(rule: dict | None, statuses: set[str]) -> set[str] | None:
    """The statuses that pass a transition; None when it is one that does not keep finalize's output as the state."""
    if rule is None:
        return statuses
    if "Catch" in rule:
        return None
    if "Default" in rule:
        for r in rule["Default"]:
            taken = status_rule(r, statuses)
            if taken is None:
                return None
            statuses = statuses - taken
        return statuses
    if rule.get("Variable") != "$.status":
        return None
    if "StringEquals" in rule:
        return statuses & {rule["StringEquals"]}
    return None


def finalized_statuses(asl: dict, terminal: set[str]) -> tuple[dict[str, set[str]], list[str]]:
    """For each putEvents state whose detail is its input: the statuses of finalize's output that reach it.
    Problems: such a state reached other than from a finalize task through Choices on $.status."""
    states = asl["States"]
    announcers = {
        n for n, s in states.items()
        if s.get("Resource") == "arn:aws:states:::events:putEvents"
        and any(e.get("Detail.$") == "$" for e in s["Parameters"]["Entries"])
    }
    reaching: dict[str, set[str]] = {n: set() for n in announcers}
    problems = []
    for name, state in states.items():
        for target, rule in transitions(state):
            if target not in announcers:
                continue
            if state.get("Type") != "Choice" and state.get("Resource") != FINALIZE_RESOURCE:
                problems.append(f"ASL state '{target}' sends its input as the detail but is reached from '{name}', not from finalize")
    for name, state in states.items():
        if state.get("Resource") != FINALIZE_RESOURCE:
            continue
        # Finalize in failure mode (Parameters carry a failure) always answers failed.
        start = {"failed"} if "failure.$" in (state.get("Parameters") or {}) else set(terminal)
        todo, seen = [(state.get("Next"), start)], set()
        while todo:
            current, statuses = todo.pop()
            if current is None or not statuses or (current, frozenset(statuses)) in seen:
                continue
            seen.add((current, frozenset(statuses)))
            if current in announcers:
                reaching[current] |= statuses
                continue
            node = states[current]
            if node.get("Type") != "Choice":
                continue
            for target, rule in transitions(node):
                taken = status_rule(rule, statuses)
                if taken is None:
                    if target in announcers:
                        problems.append(f"ASL state '{current}': a rule that is not on $.status leads to '{target}'")
                    continue
                todo.append((target, taken))
    return reaching, problems


def finalized_detail(status: str) -> dict:
    """A detail finalize could return, with this status (and an error when it is failed)."""
    detail = json.loads((EXAMPLES / "batch-completed.json").read_text(encoding="utf-8"))["detail"]
    detail["status"] = status
    detail["error"] = "job 0 (us.anthropic.claude-3-5-haiku-20241022-v1:0): the job failed" if status == "failed" else None
    return detail


def sent_kinds(asl: dict, terminal: set[str]) -> set[tuple[str, str]]:
    """(detail-type, status) of every finalize detail the state machine sends."""
    reaching, _problems = finalized_statuses(asl, terminal)
    kinds = set()
    for name, statuses in reaching.items():
        for entry in asl["States"][name]["Parameters"]["Entries"]:
            if entry.get("Detail.$") == "$":
                kinds |= {(entry["DetailType"], s) for s in statuses}
    return kinds


def check_asl(schema: dict, asl_path=ASL, status_rs=STATUS_RS) -> list[str]:
    problems = []
    asl = json.loads(Path(asl_path).read_text(encoding="utf-8"))
    terminal = terminal_statuses(Path(status_rs).read_text(encoding="utf-8"))
    example_input = {
        "batch_id": "my-batch-3f2a9c1b7d4e5a6f",
        "failure": {"Error": "BatchdropFatalError", "Cause": "GetModelInvocationJob: ResourceNotFoundException"},
        "finalize_failure": {"Error": "BatchdropFatalError", "Cause": "s3://out/results/x/batch.json does not exist"},
    }
    sources, detail_types = set(), set()
    for name, state in asl["States"].items():
        if state.get("Resource") != "arn:aws:states:::events:putEvents":
            continue
        for entry in state["Parameters"]["Entries"]:
            sources.add(entry.get("Source"))
            detail_types.add(entry.get("DetailType"))
            if "Detail" in entry:
                detail = asl_detail(entry["Detail"], example_input)
                for e in errors(schema, envelope(entry["DetailType"], detail)):
                    problems.append(f"ASL state '{name}': its detail does not fit the schema: {e}")
            elif entry.get("Detail.$") != "$":
                problems.append(f"ASL state '{name}': Detail.$ is {entry.get('Detail.$')!r}; the schema expects finalize's output, $")
    if sources != set(schema["properties"]["source"]["enum"]):
        problems.append(f"ASL sends source {sorted(sources)}, the schema says {schema['properties']['source']['enum']}")
    if detail_types != set(schema["properties"]["detail-type"]["enum"]):
        problems.append(f"ASL sends {sorted(detail_types)}, the schema says {schema['properties']['detail-type']['enum']}")

    reaching, flow_problems = finalized_statuses(asl, terminal)
    problems += flow_problems
    for name, statuses in sorted(reaching.items()):
        if not statuses:
            problems.append(f"ASL state '{name}' sends finalize's output as its detail, but no finalize task reaches it")
    kinds = sent_kinds(asl, terminal)
    for detail_type in sorted(schema["properties"]["detail-type"]["enum"]):
        for status in sorted(terminal):
            accepted = not errors(schema, envelope(detail_type, finalized_detail(status)))
            sent = (detail_type, status) in kinds
            if sent and not accepted:
                problems.append(f"the state machine sends {detail_type} with a finalized batch whose status is {status}; the schema rejects it")
            if accepted and not sent:
                problems.append(f"the schema accepts {detail_type} with a finalized batch whose status is {status}; the state machine never sends it")
    return problems


def check_examples(schema: dict, examples=EXAMPLES, asl_path=ASL, status_rs=STATUS_RS) -> list[str]:
    problems = []
    files = sorted(Path(examples).glob("*.json"))
    asl = json.loads(Path(asl_path).read_text(encoding="utf-8"))
    sent = sent_kinds(asl, terminal_statuses(Path(status_rs).read_text(encoding="utf-8")))
    kinds = set()
    for f in files:
        event = json.loads(f.read_text(encoding="utf-8"))
        for e in errors(schema, event):
            problems.append(f"{f.relative_to(ROOT)}: {e}")
        detail = event.get("detail", {})
        unfinalized = "finalize_error" in detail
        kinds.add((event.get("detail-type"), unfinalized))
        if not unfinalized and (event.get("detail-type"), detail.get("status")) not in sent:
            problems.append(
                f"{f.relative_to(ROOT)}: a {event.get('detail-type')} event with status {detail.get('status')}, which the "
                "state machine no longer sends: record the examples again (infra/events/record_examples.py)"
            )
    for kind in [("Batch Completed", False), ("Batch Failed", False), ("Batch Failed", True)]:
        if kind not in kinds:
            what = f"{kind[0]}{' without finalize' if kind[1] else ''}"
            problems.append(f"{Path(examples).relative_to(ROOT)}: no recorded {what} event (infra/events/record_examples.py)")
    return problems


def check_doc(schema: dict, doc=EVENTS_DOC) -> list[str]:
    """Every JSON example of docs/events.md that is an event or an event's detail fits the schema."""
    doc = Path(doc)
    label = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
    if not doc.is_file():
        return [f"{label} does not exist: it documents the completion event"]
    text = doc.read_text(encoding="utf-8")
    problems, checked = [], 0
    for block in re.findall(r"^```json\n(.*?)^```", text, re.S | re.M):
        for placeholder, value in DOC_PLACEHOLDERS.items():
            block = block.replace(placeholder, value)
        try:
            data = json.loads(block)
        except json.JSONDecodeError as e:
            problems.append(f"{label}: a JSON example does not parse: {e}")
            continue
        if "batch_id" in data:
            detail_type = "Batch Failed" if "finalize_error" in data or data.get("status") == "failed" and data.get("error") else "Batch Completed"
            event = envelope(detail_type, data)
        elif isinstance(data.get("detail-type"), str):
            event = data
        else:
            continue  # an event pattern, not an event
        checked += 1
        for e in errors(schema, event):
            problems.append(f"{label}: an example does not fit the schema: {e}")
    if checked == 0:
        problems.append(f"{label}: no JSON example of the detail")
    return problems


def check_templates(schema: dict, sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> list[str]:
    problems = []
    for label, rendered in cfn.all_rendered(sam_path, cdk_out):
        schemas = cfn.of_type(rendered, "AWS::EventSchemas::Schema")
        if len(schemas) != 1:
            problems.append(f"{label}: {len(schemas)} AWS::EventSchemas::Schema resources, not 1")
        for name, r in schemas.items():
            p = r["Properties"]
            if p.get("Type") != "JSONSchemaDraft4" or json.loads(p.get("Content", "null")) != schema:
                problems.append(f"{label}: {name} is not infra/events/batch-event.schema.json (JSONSchemaDraft4)")
    return problems


def check(sam_path=cfn.SAM_TEMPLATE, cdk_out=cfn.CDK_OUT) -> list[str]:
    schema = load_schema()
    try:
        jsonschema.Draft4Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        return [f"{SCHEMA.relative_to(ROOT)} is not a valid draft 4 schema: {e.message}"]
    return (
        check_rust(schema)
        + check_asl(schema)
        + check_examples(schema)
        + check_doc(schema)
        + check_templates(schema, sam_path, cdk_out)
    )


def main(argv):
    return cfn.run("check_event_schema", argv, check, __doc__.strip().splitlines()[2], lambda: f"the schema matches src/status.rs, the state machine, {len(list(EXAMPLES.glob('*.json')))} recorded events, {EVENTS_DOC.relative_to(ROOT)} and both templates")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
