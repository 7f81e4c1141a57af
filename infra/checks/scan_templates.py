"""The offline policy scanner's verdict: every checkov finding on the deployable templates is fixed or justified.

Usage: scan_templates.py [-v] REPORT.json [docs/security.md]

REPORT.json is checkov's JSON report (`checkov --framework cloudformation -o json -f …`, run by `make validate`
from .tools/checkov/) over the SAM template after the transform and both CDK synths. Each failed check must
be in JUSTIFIED below for that resource, with the reason docs/security.md gives; the
section must name every justified check id. A justified check that no longer fails anywhere is reported too,
so the list and docs/security.md stay true. Every scanned template must have parsed.

Exits 1 and prints every unjustified finding.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

FUNCTIONS = {"SubmitFunction", "CheckJobsFunction", "FinalizeFunction", "WakeFunction"}
LOG_GROUPS = {"SubmitLogGroup", "CheckJobsLogGroup", "FinalizeLogGroup", "WakeLogGroup", "StateMachineLogGroup"}

# check id -> (the resources it may fail on, why that is acceptable). docs/security.md says the same, at more length.
JUSTIFIED = {
    "CKV_AWS_18": (
        {"InputBucket", "OutputBucket"},
        "S3 server access logs would need a third bucket; CloudTrail data events are the audit trail to enable",
    ),
    "CKV_AWS_21": (
        {"OutputBucket"},
        "results are rewritten on every poll (batch.json) and can be made again from bedrock/; versions would pile up",
    ),
    "CKV_AWS_27": (
        {"SubmitFailureQueue"},
        "the queue is encrypted with SSE-SQS (SqsManagedSseEnabled); checkov only counts a KMS key",
    ),
    "CKV_AWS_115": (
        FUNCTIONS,
        "reserved concurrency would be taken from the account's pool (10 on new accounts) and throttle uploads",
    ),
    "CKV_AWS_116": (
        FUNCTIONS,
        "submit sends failed events to SubmitFailureQueue (an on-failure destination, which checkov does not "
        "read); Step Functions invokes check-jobs, finalize and wake synchronously, where a DLQ never applies; "
        "the Bedrock job events EventBridge sends wake are best effort, the poll timeout being the backstop",
    ),
    "CKV_AWS_117": (
        FUNCTIONS,
        "the functions call only AWS APIs over TLS and reach no private network; a VPC would add NAT or endpoints",
    ),
    "CKV_AWS_119": (
        {"JobQueueTable"},
        "the job queue holds model ids, batch ids and job numbers, no request content; it is encrypted at rest "
        "with DynamoDB's AWS managed key (SSEEnabled)",
    ),
    "CKV_AWS_158": (
        LOG_GROUPS,
        "CloudWatch Logs encrypts at rest; the logs hold ids, counts and errors, never request content",
    ),
    "CKV_AWS_173": (
        FUNCTIONS,
        "the environment holds names, ARNs and numbers, no secret; Lambda encrypts it at rest with an AWS key",
    ),
}

SCANNED = ["target/sam/template.json", "target/cdk/cdk.out/BatchdropDefaults.template.json", "target/cdk/cdk.out/BatchdropKms.template.json"]


def findings(report: list | dict) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(check id, template, canonical resource name, check name) of every failed check; and report problems."""
    reports = report if isinstance(report, list) else [report]
    found, problems, seen = [], [], set()
    names = {}
    for r in reports:
        if r.get("check_type") not in (None, "cloudformation"):
            continue
        summary = r.get("summary", {})
        if summary.get("parsing_errors"):
            problems.append(f"checkov could not parse {summary['parsing_errors']} template(s)")
        results = r.get("results", {})
        for c in results.get("passed_checks", []) + results.get("failed_checks", []):
            seen.add(c["file_path"].lstrip("/"))
        for c in results.get("failed_checks", []):
            path = c["file_path"].lstrip("/")
            if path not in names:
                names[path] = cfn.canonical_ids(cfn.load(cfn.ROOT / path))
            logical_id = c["resource"].split(".", 1)[1]
            found.append((c["check_id"], path, names[path].get(logical_id, logical_id), c["check_name"]))
    for path in SCANNED:
        if path not in seen:
            problems.append(f"checkov did not scan {path}")
    return found, problems


def security_review(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    m = re.search(r"^# Security review\n(.*)", text, re.S | re.M)
    return m.group(1) if m else ""


def check(report_path, readme=cfn.ROOT / "docs" / "security.md") -> tuple[list[str], list[str]]:
    with open(report_path, encoding="utf-8") as f:
        found, problems = findings(json.load(f))
    notes, used = [], set()
    for check_id, path, resource, name in sorted(set(found)):
        resources, reason = JUSTIFIED.get(check_id, (set(), ""))
        if resource in resources:
            used.add(check_id)
            notes.append(f"{check_id} {resource} ({path}): {name}: justified: {reason}")
        else:
            problems.append(f"{check_id} {resource} ({path}): {name}: neither fixed nor justified")
    for check_id in sorted(set(JUSTIFIED) - used):
        problems.append(f"{check_id} is justified but fails nowhere: remove it here and in docs/security.md")
    review = security_review(Path(readme))
    if not review:
        problems.append(f"{readme} has no '# Security review' title")
    for check_id in sorted(JUSTIFIED):
        if check_id not in review:
            problems.append(f"docs/security.md does not justify {check_id}")
    return problems, notes


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv[1:] if a != "-v"]
    if len(args) not in (1, 2):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    problems, notes = check(*args)
    if verbose:
        for n in notes:
            print(f"scan_templates: {n}")
    for p in problems:
        print(f"scan_templates: {p}", file=sys.stderr)
    if problems:
        return 1
    ids = sorted({n.split(" ", 1)[0] for n in notes})
    print(f"scan_templates: checkov: {len(notes)} findings on {len(SCANNED)} templates, all justified in docs/security.md "
          f"({', '.join(ids)}; -v lists them)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
