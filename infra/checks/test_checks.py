"""Each template check can fail: the real templates pass, and a template broken in one known way fails with a
message that names what broke. Run by `make validate` (after the synths these checks read):

    .venv/bin/python -m unittest discover -s infra/checks -p 'test_*.py'
"""

from __future__ import annotations

import copy
import json
import random
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import cfn
import check_asl
import check_build
import check_cdk_assets
import check_event_schema
import check_operations
import check_parity
import check_security
import scan_templates


def rendered(source: str, variant: str) -> dict:
    """One of the four rendered templates: source "SAM" or "CDK", variant "defaults" or "kms"."""
    return copy.deepcopy(dict(RENDERED)[f"{source} {variant}"])


RENDERED = cfn.all_rendered()


def statements(r: dict, role: str) -> list:
    return r["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def task_token_statements(r: dict) -> list:
    """The wake role's SendTaskSuccess, in a policy of its own (the template says why)."""
    return r["Resources"]["WakeFunctionTaskTokenPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def security(r: dict, kms_key=None) -> list[str]:
    return check_security.check_template(r, kms_key)


def granted(source: str, role: str, action: str, resource: str) -> list[str]:
    """The security problems of a default template whose `role` also allows `action` on `resource`."""
    r = rendered(source, "defaults")
    statements(r, role).append({"Effect": "Allow", "Action": action, "Resource": resource})
    return security(r)


def operations(r: dict, topic=None) -> list[str]:
    return (
        check_operations.check_trigger(r)
        + check_operations.check_wake_trigger(r)
        + check_operations.check_dead_letters(r)
        + check_operations.check_alarms(r, topic)
        + check_operations.check_stop_failure_filters(r)
    )


class SecurityChecks(unittest.TestCase):
    def test_the_templates_pass(self):
        self.assertEqual(check_security.check(), [])

    def assertFlags(self, problems, text):
        self.assertTrue(any(text in p for p in problems), f"no problem mentions {text!r}: {problems}")

    def test_a_star_action_fails(self):
        for source in ("SAM", "CDK"):
            self.assertFlags(granted(source, "FinalizeFunctionRole", "s3:*", "{GetAtt:OutputBucket.Arn}"), "wildcard action s3:*")
            self.assertFlags(granted(source, "FinalizeFunctionRole", "*", "*"), "wildcard action *")

    def test_a_resource_outside_the_stack_fails(self):
        self.assertFlags(granted("SAM", "CheckJobsFunctionRole", "s3:GetObject", "arn:aws:s3:::someone-else/*"), "s3:GetObject on arn:aws:s3:::someone-else/*")
        self.assertFlags(granted("CDK", "SubmitFunctionRole", "s3:GetObject", "*"), 's3:GetObject on "*"')
        self.assertFlags(granted("CDK", "SubmitFunctionRole", "logs:PutLogEvents", "*"), 'logs:PutLogEvents on "*"')

    def test_log_delivery_on_star_only_for_the_state_machine(self):
        self.assertFlags(granted("SAM", "SubmitFunctionRole", "logs:CreateLogDelivery", "*"), 'SubmitFunctionRole: logs:CreateLogDelivery on "*"')

    def test_pass_role_needs_the_service_role_and_the_condition(self):
        r = rendered("SAM", "defaults")
        for s in statements(r, "CheckJobsFunctionRole"):
            if s.get("Action") == "iam:PassRole":
                del s["Condition"]
        self.assertFlags(security(r), "iam:PassRole without the condition")
        r = rendered("CDK", "defaults")
        for s in statements(r, "CheckJobsFunctionRole"):
            if s.get("Action") == "iam:PassRole":
                s["Resource"] = "{GetAtt:SubmitFunctionRole.Arn}"
        self.assertFlags(security(r), "iam:PassRole on {GetAtt:SubmitFunctionRole.Arn}")

    def test_submit_creates_no_job(self):
        jobs = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/*"
        for source in ("SAM", "CDK"):
            for action in ("bedrock:CreateModelInvocationJob", "bedrock:TagResource"):
                self.assertFlags(granted(source, "SubmitFunctionRole", action, jobs), f"SubmitFunctionRole: {action} is not one of the actions it needs")
            r = rendered(source, "defaults")
            statements(r, "SubmitFunctionRole").append({
                "Effect": "Allow", "Action": "iam:PassRole", "Resource": "{GetAtt:BedrockServiceRole.Arn}",
                "Condition": {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
            })
            self.assertFlags(security(r), "SubmitFunctionRole: iam:PassRole is not one of the actions it needs")

    def test_a_missing_permission_fails(self):
        for source, role, action in [
            ("SAM", "FinalizeFunctionRole", "bedrock:ListModelInvocationJobs"),
            ("CDK", "SubmitFunctionRole", "states:DescribeExecution"),
            ("CDK", "CheckJobsFunctionRole", "bedrock:CreateModelInvocationJob"),
        ]:
            r = rendered(source, "defaults")
            for s in statements(r, role):
                if action in cfn.as_list(s.get("Action")):
                    s["Action"] = [a for a in cfn.as_list(s["Action"]) if a != action] or ["s3:GetObject"]
            self.assertFlags(security(r), f"{role}: lacks {action}")

    def test_list_jobs_on_star_only_for_the_functions(self):
        r = rendered("SAM", "defaults")
        self.assertEqual(security(r), [])
        statements(r, "BedrockServiceRole").append({"Effect": "Allow", "Action": "bedrock:ListModelInvocationJobs", "Resource": "*"})
        self.assertFlags(security(r), 'BedrockServiceRole: bedrock:ListModelInvocationJobs on "*"')
        self.assertFlags(granted("CDK", "FinalizeFunctionRole", "bedrock:GetModelInvocationJob", "*"), 'FinalizeFunctionRole: bedrock:GetModelInvocationJob on "*"')
        r = rendered("CDK", "defaults")
        statements(r, "SubmitFunctionRole").append({
            "Effect": "Allow", "Action": "bedrock:StopModelInvocationJob", "Resource": "arn:aws:bedrock:*::foundation-model/*",
        })
        self.assertFlags(security(r), "SubmitFunctionRole: bedrock:StopModelInvocationJob on arn:aws:bedrock:*::foundation-model/*")

    def test_describe_execution_only_on_the_batch_executions(self):
        for source in ("SAM", "CDK"):
            self.assertFlags(granted(source, "SubmitFunctionRole", "states:DescribeExecution", "{Ref:BatchStateMachine}"), "states:DescribeExecution on {Ref:BatchStateMachine}")
            other = "arn:aws:states:us-east-1:123456789012:execution:someone-else:*"
            self.assertFlags(granted(source, "SubmitFunctionRole", "states:DescribeExecution", other), f"states:DescribeExecution on {other}")

    def test_send_task_success_only_on_the_batch_state_machine(self):
        for source in ("SAM", "CDK"):
            for role in ("SubmitFunctionRole", "WakeFunctionRole"):
                problems = granted(source, role, "states:SendTaskSuccess", "*")
                self.assertFlags(problems, f'{role}: states:SendTaskSuccess on "*"')
                self.assertFlags(problems, f'{role}: states:SendTaskSuccess (states:SendTaskSuccess) on "*": only the batch')
            r = rendered(source, "defaults")
            task_token_statements(r)[0]["Resource"] = "*"
            problems = security(r)
            self.assertFlags(problems, 'WakeFunctionRole: states:SendTaskSuccess (states:SendTaskSuccess) on "*"')
            self.assertFlags(problems, "WakeFunctionRole: states:SendTaskSuccess on ['*'], not exactly")
            # A role that should not hold it, by a wildcard action or another case.
            self.assertFlags(granted(source, "FinalizeFunctionRole", "states:sendtask*", "*"), 'FinalizeFunctionRole: states:SendTaskSuccess (states:sendtask*) on "*"')
            other = "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else"
            self.assertFlags(granted(source, "SubmitFunctionRole", "states:SendTaskSuccess", other), f'SubmitFunctionRole: states:SendTaskSuccess (states:SendTaskSuccess) on "{other}"')
            r = rendered(source, "defaults")
            del r["Resources"]["WakeFunctionTaskTokenPolicy"]
            self.assertFlags(security(r), "WakeFunctionRole: lacks states:SendTaskSuccess")

    def test_wake_reads_and_writes_only_batch_documents(self):
        jobs = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/*"
        for source in ("SAM", "CDK"):
            # A resource of the stack, but not batch.json.
            r = rendered(source, "defaults")
            staging = "arn:aws:s3:::batchdrop-input-123456789012-us-east-1/staging/*"
            statements(r, "WakeFunctionRole").append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": staging})
            self.assertFlags(security(r), "WakeFunctionRole: s3:GetObject on [")
            self.assertFlags(granted(source, "WakeFunctionRole", "bedrock:GetModelInvocationJob", jobs), "WakeFunctionRole: bedrock:GetModelInvocationJob is not one of the actions it needs")
            self.assertFlags(granted(source, "WakeFunctionRole", "bedrock:ListModelInvocationJobs", "*"), 'WakeFunctionRole: bedrock:ListModelInvocationJobs on "*"')
            r = rendered(source, "defaults")
            for s in statements(r, "WakeFunctionRole"):
                if s.get("Resource") == "{GetAtt:WakeLogGroup.Arn}":
                    s["Resource"] = "{GetAtt:SubmitLogGroup.Arn}"
            self.assertFlags(security(r), "WakeFunctionRole: logs:PutLogEvents on ['{GetAtt:SubmitLogGroup.Arn}']")

    def test_the_state_machine_invokes_the_functions_of_its_definition(self):
        for source in ("SAM", "CDK"):
            r = rendered(source, "defaults")
            for s in statements(r, "BatchStateMachineRole"):
                if "lambda:InvokeFunction" in cfn.as_list(s.get("Action")):
                    s["Resource"] = [x for x in s["Resource"] if "WakeFunction" not in x]
            self.assertFlags(security(r), "BatchStateMachineRole: lambda:InvokeFunction on")
            r = rendered(source, "defaults")
            statements(r, "BatchStateMachineRole").append(
                {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "{GetAtt:SubmitFunction.Arn}"}
            )
            self.assertFlags(security(r), "BatchStateMachineRole: lambda:InvokeFunction on")

    def test_a_managed_policy_fails(self):
        r = rendered("SAM", "defaults")
        r["Resources"]["SubmitFunctionRole"]["Properties"]["ManagedPolicyArns"] = [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        ]
        self.assertFlags(security(r), "managed policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")

    def test_the_service_role_trust_needs_its_conditions(self):
        r = rendered("CDK", "defaults")
        statement = r["Resources"]["BedrockServiceRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        del statement["Condition"]["ArnLike"]
        self.assertFlags(security(r), "aws:SourceArn")

    def test_public_or_plain_http_buckets_fail(self):
        r = rendered("SAM", "defaults")
        r["Resources"]["OutputBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = False
        self.assertFlags(security(r), "OutputBucket: PublicAccessBlockConfiguration.RestrictPublicBuckets")
        r = rendered("CDK", "defaults")
        del r["Resources"]["InputBucketPolicy"]
        self.assertFlags(security(r), "InputBucket: no bucket policy denies s3:* on the bucket and its objects without TLS")

    def test_a_resource_policy_that_grants_fails(self):
        r = rendered("CDK", "defaults")
        r["Resources"]["OutputBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].append(
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "{GetAtt:OutputBucket.Arn}/*"}
        )
        self.assertFlags(security(r), "OutputBucketPolicy: grants s3:GetObject")

    def test_encryption_follows_the_key(self):
        r = rendered("SAM", "kms")
        self.assertEqual(security(r, cfn.KMS_KEY), [])
        self.assertFlags(security(r, None), "default encryption")
        r = rendered("CDK", "kms")
        r["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]["OUTPUT_KMS_KEY_ID"] = ""
        self.assertFlags(security(r, cfn.KMS_KEY), "SubmitFunction: OUTPUT_KMS_KEY_ID")
        r = rendered("CDK", "kms")
        statements(r, "BedrockServiceRole")[:] = [s for s in statements(r, "BedrockServiceRole") if s.get("Sid") != "UseBucketKey"]
        self.assertFlags(security(r, cfn.KMS_KEY), "BedrockServiceRole: KMS permissions")
        r = rendered("SAM", "kms")
        statements(r, "WakeFunctionRole")[:] = [s for s in statements(r, "WakeFunctionRole") if s.get("Sid") != "UseBucketKey"]
        self.assertFlags(security(r, cfn.KMS_KEY), "WakeFunctionRole: KMS permissions")
        r = rendered("SAM", "defaults")
        del r["Resources"]["SubmitFailureQueue"]["Properties"]["SqsManagedSseEnabled"]
        self.assertFlags(security(r), "SubmitFailureQueue: not encrypted")

    def test_the_job_queue_table_is_check_jobs_alone_and_kept_safe(self):
        for source in ("SAM", "CDK"):
            self.assertFlags(
                granted(source, "FinalizeFunctionRole", "dynamodb:Query", "{GetAtt:JobQueueTable.Arn}"),
                "FinalizeFunctionRole: dynamodb:Query is not one of the actions it needs",
            )
            self.assertFlags(
                granted(source, "CheckJobsFunctionRole", "dynamodb:Scan", "{GetAtt:JobQueueTable.Arn}"),
                "CheckJobsFunctionRole: dynamodb:Scan is not one of the actions it needs",
            )
            self.assertFlags(
                granted(source, "CheckJobsFunctionRole", "dynamodb:PutItem", "*"),
                "CheckJobsFunctionRole: dynamodb:PutItem on",
            )
            r = rendered(source, "defaults")
            del r["Resources"]["JobQueueTable"]["Properties"]["PointInTimeRecoverySpecification"]
            self.assertFlags(security(r), "JobQueueTable: point-in-time recovery is off")
            r = rendered(source, "defaults")
            r["Resources"]["JobQueueTable"]["Properties"]["SSESpecification"] = {"SSEEnabled": False}
            self.assertFlags(security(r), "JobQueueTable: SSESpecification.SSEEnabled is not true")

    def test_log_retention_is_required(self):
        r = rendered("CDK", "defaults")
        del r["Resources"]["FinalizeLogGroup"]["Properties"]["RetentionInDays"]
        self.assertFlags(security(r), "FinalizeLogGroup: no RetentionInDays")
        r = rendered("SAM", "defaults")
        del r["Resources"]["CheckJobsFunction"]["Properties"]["LoggingConfig"]["LogGroup"]
        self.assertFlags(security(r), "CheckJobsFunction: does not log to a log group of the stack")


class OperationsChecks(unittest.TestCase):
    def test_the_templates_pass(self):
        self.assertEqual(check_operations.check(), [])

    def test_the_dead_letter_path_is_required(self):
        for source in ("SAM", "CDK"):
            r = rendered(source, "defaults")
            del r["Resources"]["SubmitFunctionEventInvokeConfig"]
            self.assertIn("SubmitFunction has 0 EventInvokeConfig, not 1", operations(r))
            r = rendered(source, "defaults")
            r["Resources"]["SubmitFunctionEventInvokeConfig"]["Properties"]["DestinationConfig"] = {}
            self.assertTrue(any("do not go to SubmitFailureQueue" in p for p in operations(r)))
            r = rendered(source, "defaults")
            statements(r, "SubmitFunctionRole")[:] = [
                s for s in statements(r, "SubmitFunctionRole") if s.get("Action") != "sqs:SendMessage"
            ]
            self.assertTrue(any("may not send to SubmitFailureQueue" in p for p in operations(r)))

    def test_alarms_are_required(self):
        r = rendered("CDK", "defaults")
        del r["Resources"]["FinalizeErrorsAlarm"]
        self.assertIn("no alarm on AWS/Lambda Errors of {Ref:FinalizeFunction}", operations(r))
        r = rendered("SAM", "defaults")
        del r["Resources"]["SubmitFailureQueueAlarm"]
        self.assertTrue(any("ApproximateNumberOfMessagesVisible" in p for p in operations(r)))
        r = rendered("SAM", "kms")
        self.assertTrue(any("AlarmActions" in p for p in operations(r, None)))

    def test_the_wake_function_is_triggered_and_alarmed(self):
        for source in ("SAM", "CDK"):
            r = rendered(source, "defaults")
            del r["Resources"]["WakeErrorsAlarm"]
            self.assertIn("no alarm on AWS/Lambda Errors of {Ref:WakeFunction}", operations(r))
            r = rendered(source, "defaults")
            permission = r["Resources"]["WakeFunctionBedrockJobEventsPermission"]["Properties"]
            permission["SourceArn"] = "arn:aws:events:us-east-1:123456789012:rule/someone-else"
            self.assertIn("no Lambda permission lets events.amazonaws.com invoke WakeFunction for BedrockJobEventsRule", operations(r))
            r = rendered(source, "defaults")
            r["Resources"]["BedrockJobEventsRule"]["Properties"]["Targets"][0]["Arn"] = "{GetAtt:CheckJobsFunction.Arn}"
            self.assertIn("BedrockJobEventsRule does not target WakeFunction", operations(r))
        r = rendered("CDK", "kms")
        r["Resources"]["WakeErrorsAlarm"]["Properties"].pop("AlarmActions")
        self.assertIn("WakeErrorsAlarm: AlarmActions [], not ['" + cfn.ALARM_TOPIC + "']", operations(r, cfn.ALARM_TOPIC))

    def test_the_triggers_are_required(self):
        for source in ("SAM", "CDK"):
            for prefix, what in [("inbox/", "inbox/**.jsonl"), ("cancel/", "cancel/**")]:
                r = rendered(source, "defaults")
                configs = r["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
                for c in configs:
                    if any(rule["Value"] == prefix for rule in c["Filter"]["S3Key"]["Rules"]):
                        c["Filter"] = {}
                self.assertIn(f"InputBucket does not notify SubmitFunction of s3:ObjectCreated:* on {what}", operations(r))
        r = rendered("CDK", "defaults")
        configs = r["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
        for c in configs:
            c["Filter"]["S3Key"]["Rules"] = [rule for rule in c["Filter"]["S3Key"]["Rules"] if rule["Value"] != ".jsonl"]
        self.assertIn("InputBucket does not notify SubmitFunction of s3:ObjectCreated:* on inbox/**.jsonl", operations(r))

    def test_job_stop_failures_are_counted_and_alarmed(self):
        for source in ("SAM", "CDK"):
            r = rendered(source, "defaults")
            del r["Resources"]["JobStopFailuresAlarm"]
            self.assertIn("no alarm on batchdrop/{StackName} JobStopFailures", operations(r))
            r = rendered(source, "defaults")
            r["Resources"]["JobStopFailuresAlarm"]["Properties"]["TreatMissingData"] = "breaching"
            self.assertTrue(any("JobStopFailures treats missing data as breaching" in p for p in operations(r)))
            r = rendered(source, "defaults")
            del r["Resources"]["CheckJobsJobStopFailuresFilter"]
            self.assertTrue(any("no metric filter on CheckJobsLogGroup" in p for p in operations(r)), operations(r))
            r = rendered(source, "defaults")
            r["Resources"]["FinalizeJobStopFailuresFilter"]["Properties"]["FilterPattern"] = '"could not stop"'
            self.assertTrue(any("no metric filter on FinalizeLogGroup" in p for p in operations(r)))
            r = rendered(source, "defaults")
            r["Resources"]["SubmitJobStopFailuresFilter"]["Properties"]["MetricTransformations"][0]["MetricNamespace"] = "batchdrop"
            self.assertTrue(any("no metric filter on SubmitLogGroup" in p for p in operations(r)))
        r = rendered("SAM", "kms")
        r["Resources"]["JobStopFailuresAlarm"]["Properties"].pop("AlarmActions")
        self.assertIn("JobStopFailuresAlarm: AlarmActions [], not ['" + cfn.ALARM_TOPIC + "']", operations(r, cfn.ALARM_TOPIC))


class EventBusParameter(unittest.TestCase):
    """The EventBusName parameter takes exactly the bus names PutEvents takes (botocore's model of the API),
    and no ARN: the state machine's role names the bus as event-bus/<name>."""

    @staticmethod
    def put_events_pattern() -> str:
        import botocore.loaders

        model = botocore.loaders.create_loader().load_service_model("events", "service-2")
        shapes = model["shapes"]
        return shapes[shapes["PutEventsRequestEntry"]["members"]["EventBusName"]["shape"]]["pattern"]

    def test_the_pattern_is_put_events_bus_names(self):
        import re

        template = cfn.load(cfn.SAM_TEMPLATE)
        ours = re.compile(template["Parameters"]["EventBusName"]["AllowedPattern"])
        # The API's pattern: an optional ARN prefix, then the name.
        api_name = re.compile(self.put_events_pattern().rsplit(")?", 1)[1])
        names = ["default", "batchdrop-events", "my.bus_1", "A" * 256, "a"]
        refused = ["", "aws.partner/saas/x", "arn:aws:events:us-east-1:123456789012:event-bus/default",
                   "bus name", "bus\n", "A" * 257, "b\u00fcs"]
        for name in names:
            self.assertTrue(ours.fullmatch(name), name)
            self.assertTrue(api_name.fullmatch(name), name)
        for name in refused:
            self.assertFalse(ours.fullmatch(name), name)
        for name in refused[1:5]:
            # Refused by us, refused by the API as a plain name (a slash, a colon, a space, a control).
            self.assertFalse(api_name.fullmatch(name), name)


class BuildCheck(unittest.TestCase):
    """check_build.py on a made-up sam build output: the real one is checked by `make sam-build`."""

    @staticmethod
    def elf(machine: int, size: int = 4096) -> bytes:
        header = bytearray(64)
        header[:4] = b"\x7fELF"
        header[4], header[5] = 2, 1  # 64-bit, little-endian
        header[16:18] = (3).to_bytes(2, "little")  # ET_DYN, a position-independent executable
        header[18:20] = machine.to_bytes(2, "little")
        return bytes(header) + bytes(size - 64)

    def build(self, root: Path, machine: int = 0xB7, size: int = 4096) -> Path:
        for name in check_build.BUDGETS:
            (root / name).mkdir()
            bootstrap = root / name / "bootstrap"
            bootstrap.write_bytes(self.elf(machine, size))
            bootstrap.chmod(0o755)
        return root

    def problems(self, root: Path) -> list[str]:
        return check_build.check(root)[0]

    def test_arm64_functions_under_budget_pass(self):
        with tempfile.TemporaryDirectory() as d:
            problems, figures = check_build.check(self.build(Path(d)))
            self.assertEqual(problems, [])
            self.assertEqual(len(figures), 4)
            self.assertIn("budget", figures[0])

    def test_an_x86_binary_fails(self):
        with tempfile.TemporaryDirectory() as d:
            problems = self.problems(self.build(Path(d), machine=0x3E))
            self.assertEqual(len(problems), 4)
            self.assertIn("not aarch64", problems[0])

    def test_a_zip_over_budget_fails(self):
        with tempfile.TemporaryDirectory() as d:
            root = self.build(Path(d))
            (root / "WakeFunction" / "bootstrap").write_bytes(self.elf(0xB7) + random.Random(7).randbytes(200_000))
            with mock.patch.dict(check_build.BUDGETS, {"WakeFunction": 100_000}):
                problems = self.problems(root)
            self.assertEqual(len(problems), 1)
            self.assertIn("WakeFunction: its zip is", problems[0])

    def test_missing_extra_or_not_executable_files_fail(self):
        with tempfile.TemporaryDirectory() as d:
            root = self.build(Path(d))
            (root / "SubmitFunction" / "bootstrap").unlink()
            (root / "FinalizeFunction" / "debug.log").write_text("x")
            (root / "WakeFunction" / "bootstrap").chmod(0o644)
            (root / "CheckJobsFunction" / "bootstrap").write_bytes(b"#!/bin/sh\n")
            problems = "\n".join(self.problems(root))
            for expected in ["SubmitFunction: ", "is missing", "FinalizeFunction: the package holds more than bootstrap",
                             "WakeFunction: bootstrap is not executable", "CheckJobsFunction: bootstrap is not an ELF file"]:
                self.assertIn(expected, problems)

    def test_the_budgets_name_the_template_functions(self):
        with tempfile.TemporaryDirectory() as d:
            root = self.build(Path(d))
            with mock.patch.dict(check_build.BUDGETS, {"OldFunction": 1}):
                self.assertIn("BUDGETS names", self.problems(root)[0])


class CdkAssetsCheck(unittest.TestCase):
    """check_cdk_assets.py on a made-up synth: the real one is checked by `make cdk-consumer`."""

    FUNCTIONS = ["SubmitFunction", "CheckJobsFunction", "FinalizeFunction", "WakeFunction"]

    def synth(self, out: Path, stacks: list[str], shared: bool = True, machine: int = 0xB7) -> Path:
        for stack in stacks:
            resources = {}
            for name in self.FUNCTIONS:
                asset = f"asset.{name}" if shared else f"asset.{stack}.{name}"
                folder = out / asset
                if not folder.is_dir():
                    folder.mkdir(parents=True)
                    (folder / "bootstrap").write_bytes(BuildCheck.elf(machine))
                    (folder / "bootstrap").chmod(0o755)
                resources[name] = {"Type": "AWS::Lambda::Function", "Metadata": {"aws:asset:path": asset}}
            resources["Bucket"] = {"Type": "AWS::S3::Bucket"}
            (out / f"{stack}.template.json").write_text(json.dumps({"Resources": resources}))
        return out

    def test_shared_arm64_assets_pass(self):
        with tempfile.TemporaryDirectory() as d:
            problems, figures = check_cdk_assets.check(self.synth(Path(d), ["A", "B"]), ["A", "B"])
            self.assertEqual(problems, [])
            self.assertEqual(len(figures), 4)
            self.assertIn("A/SubmitFunction, B/SubmitFunction", "\n".join(figures))

    def test_a_build_per_stack_fails(self):
        with tempfile.TemporaryDirectory() as d:
            problems, _ = check_cdk_assets.check(self.synth(Path(d), ["A", "B"], shared=False), ["A", "B"])
            self.assertEqual(len(problems), 1)
            self.assertIn("8 function assets for 2 stacks", problems[0])

    def test_an_x86_or_extra_file_fails(self):
        with tempfile.TemporaryDirectory() as d:
            out = self.synth(Path(d), ["A"], machine=0x3E)
            (out / "asset.WakeFunction" / "README").write_text("x")
            problems = "\n".join(check_cdk_assets.check(out, ["A"])[0])
            self.assertIn("asset.SubmitFunction: bootstrap is built for ELF machine 0x3e", problems)
            self.assertIn("asset.WakeFunction: the package holds more than bootstrap: ['README']", problems)

    def test_a_missing_stack_or_function_fails(self):
        with tempfile.TemporaryDirectory() as d:
            out = self.synth(Path(d), ["A"])
            template = json.loads((out / "A.template.json").read_text())
            del template["Resources"]["WakeFunction"]
            (out / "A.template.json").write_text(json.dumps(template))
            problems = "\n".join(check_cdk_assets.check(out, ["A", "Gone"])[0])
            self.assertIn("A: 3 functions, not 4", problems)
            self.assertIn("Gone: cannot read", problems)


class ParityCheck(unittest.TestCase):
    def test_the_templates_match(self):
        problems, _notes = check_parity.check()
        self.assertEqual(problems, [])

    def test_differences_are_found(self):
        sam, cdk = rendered("SAM", "defaults"), rendered("CDK", "defaults")
        cdk["Resources"]["FinalizeFunction"]["Properties"]["Environment"]["Variables"]["POLL_FACTOR"] = "2"
        statements(cdk, "CheckJobsFunctionRole").append({"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "{GetAtt:OutputBucket.Arn}/results/*"})
        cdk["Resources"]["BatchStateMachine"]["Properties"]["DefinitionString"] = cdk["Resources"]["BatchStateMachine"][
            "Properties"
        ]["DefinitionString"].replace('"TimeoutSeconds": 240', '"TimeoutSeconds": 241')
        del sam["Resources"]["OutputBucket"]["Properties"]["LifecycleConfiguration"]
        paths = [p for p, _a, _b in check_parity.differences(sam, cdk)]
        for broken in [
            "Resources.FinalizeFunction.Properties.Environment.Variables.POLL_FACTOR",
            "Resources.CheckJobsFunctionRole.Properties.Permissions",
            "Resources.BatchStateMachine.Properties.Definition.States.Check Jobs.TimeoutSeconds",
            "Resources.OutputBucket.Properties.LifecycleConfiguration",
        ]:
            self.assertIn(broken, paths)
            self.assertIsNone(check_parity.allowed_by(broken))

    def test_the_job_events_rule_is_the_pattern_file(self):
        pattern = cfn.load(check_parity.JOB_EVENTS_PATTERN)
        rule = check_parity.check_job_events_rule
        for source in ("SAM", "CDK"):
            r = rendered(source, "kms")
            self.assertEqual(rule(r, pattern), [])
            # Changed alike in both templates, the two still match: only the file tells.
            r["Resources"]["BedrockJobEventsRule"]["Properties"]["EventPattern"]["detail"]["status"].remove("Stopped")
            self.assertTrue(any("EventPattern" in p and "bedrock-job-events.pattern.json" in p for p in rule(r, pattern)))
            r = rendered(source, "defaults")
            r["Resources"]["BedrockJobEventsRule"]["Properties"]["EventBusName"] = "batchdrop-events"
            self.assertTrue(any("not the default bus" in p for p in rule(r, pattern)))
            r = rendered(source, "defaults")
            target = r["Resources"]["BedrockJobEventsRule"]["Properties"]["Targets"][0]
            target["RetryPolicy"]["MaximumEventAgeInSeconds"] = 86400
            target["InputPath"] = "$.detail"
            problems = rule(r, pattern)
            self.assertTrue(any("RetryPolicy" in p for p in problems), problems)
            self.assertTrue(any("has InputPath" in p for p in problems), problems)
            r = rendered(source, "defaults")
            r["Resources"]["BedrockJobEventsRule"]["Properties"]["Targets"].append({"Id": "More", "Arn": "{GetAtt:FinalizeFunction.Arn}"})
            self.assertTrue(any("alone" in p for p in rule(r, pattern)))
            r = rendered(source, "defaults")
            del r["Resources"]["BedrockJobEventsRule"]
            self.assertIn("no AWS::Events::Rule BedrockJobEventsRule", rule(r, pattern))
        # The whole check, against a pattern file that says otherwise than both templates.
        target = cfn.ROOT / "target" / "checks"
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as d:
            changed = copy.deepcopy(pattern)
            changed["detail"]["batchJobName"] = [{"prefix": "batchdrop-"}]
            path = Path(d) / "bedrock-job-events.pattern.json"
            path.write_text(json.dumps(changed))
            with mock.patch.object(check_parity, "JOB_EVENTS_PATTERN", path):
                problems, _notes = check_parity.check()
        self.assertEqual(len([p for p in problems if "EventPattern" in p]), 4, problems)

    def test_the_rule_target_is_compared(self):
        sam, cdk = rendered("SAM", "defaults"), rendered("CDK", "defaults")
        cdk["Resources"]["BedrockJobEventsRule"]["Properties"]["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] = 185
        path = "Resources.BedrockJobEventsRule.Properties.Targets[0].RetryPolicy.MaximumRetryAttempts"
        self.assertIn(path, [p for p, _a, _b in check_parity.differences(sam, cdk)])
        self.assertIsNone(check_parity.allowed_by(path))

    def test_a_missing_resource_is_a_difference(self):
        sam, cdk = rendered("SAM", "kms"), rendered("CDK", "kms")
        del cdk["Resources"]["BatchEventSchema"]
        self.assertIn("Resources.BatchEventSchema", [p for p, _a, _b in check_parity.differences(sam, cdk)])


class AslCheck(unittest.TestCase):
    asl = json.loads((cfn.ROOT / "statemachine" / "batch.asl.json").read_text())
    template = cfn.ROOT / "infra" / "template.yaml"

    def problems(self, asl: dict) -> list[str]:
        """check_asl on this ASL and the real template, laid out as in the repository (DefinitionUri)."""
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "infra").mkdir()
            (Path(d) / "statemachine").mkdir()
            template = Path(d) / "infra" / "template.yaml"
            template.write_text(self.template.read_text())
            path = Path(d) / "statemachine" / "batch.asl.json"
            path.write_text(json.dumps(asl))
            return check_asl.check(str(path), str(template))

    def assertFlags(self, problems, text):
        self.assertTrue(any(text in p for p in problems), f"no problem mentions {text!r}: {problems}")

    def test_the_state_machine_passes(self):
        self.assertEqual(check_asl.check(str(cfn.ROOT / "statemachine" / "batch.asl.json"), str(self.template)), [])
        self.assertEqual(self.problems(copy.deepcopy(self.asl)), [])

    def test_a_task_timeout_must_be_below_the_function_timeout(self):
        for state, seconds, limit in [("Check Jobs", 300, 300), ("Stop Jobs", 360, 300), ("Mark Failed", 900, 900)]:
            asl = copy.deepcopy(self.asl)
            asl["States"][state]["TimeoutSeconds"] = seconds
            self.assertFlags(self.problems(asl), f"Lambda task '{state}': TimeoutSeconds {seconds} is not below the function's Timeout {limit}")

    def test_lambda_tasks_retry_every_transient_error_in_one_retrier(self):
        for error in ("Lambda.Unknown", "Sandbox.Timedout", "States.Timeout", "BatchdropTransientError"):
            asl = copy.deepcopy(self.asl)
            retrier = asl["States"]["Finalize"]["Retry"][0]
            retrier["ErrorEquals"] = [e for e in retrier["ErrorEquals"] if e != error]
            self.assertFlags(self.problems(asl), f"Lambda task 'Finalize': {error} is not retried")
        asl = copy.deepcopy(self.asl)
        retrier = asl["States"]["Check Jobs"]["Retry"][0]
        retrier["ErrorEquals"].remove("Sandbox.Timedout")
        asl["States"]["Check Jobs"]["Retry"].append(dict(retrier, ErrorEquals=["Sandbox.Timedout"]))
        self.assertFlags(self.problems(asl), "are not retried by one retrier")
        asl = copy.deepcopy(self.asl)
        asl["States"]["Stop Jobs"]["Retry"][0]["ErrorEquals"].append("BatchdropFatalError")
        self.assertFlags(self.problems(asl), "Lambda task 'Stop Jobs': BatchdropFatalError must not be retried")

    def test_only_a_park_that_falls_back_to_a_wait_may_go_without_retry(self):
        asl = copy.deepcopy(self.asl)
        self.assertNotIn("Retry", asl["States"]["Wait For Jobs"])
        asl["States"]["Wait For Jobs"]["Catch"][-1]["Next"] = "Check Jobs"
        self.assertFlags(self.problems(asl), "Task 'Wait For Jobs': no Retry")
        asl = copy.deepcopy(self.asl)
        del asl["States"]["Finalize"]["Retry"]
        self.assertFlags(self.problems(asl), "Task 'Finalize': no Retry")

    def test_catch_names_and_substitutions(self):
        asl = copy.deepcopy(self.asl)
        asl["States"]["Stop Jobs"]["Catch"][0]["ResultPath"] = "$"
        self.assertFlags(self.problems(asl), "Task 'Stop Jobs': Catch[0] ResultPath")
        asl = copy.deepcopy(self.asl)
        asl["States"]["All Jobs Stopped"] = asl["States"].pop("All Jobs Stopped?")
        self.assertFlags(self.problems(asl), "Choice state 'All Jobs Stopped': name does not end in '?'")
        asl = copy.deepcopy(self.asl)
        asl["States"]["Mark Failed"]["Resource"] = "${MarkFunctionArn}"
        problems = self.problems(asl)
        self.assertFlags(problems, "${MarkFunctionArn} is in")
        self.assertFlags(problems, "its Timeout is unknown")


class EventSchemaCheck(unittest.TestCase):
    schema = check_event_schema.load_schema()

    def test_the_schema_passes(self):
        self.assertEqual(check_event_schema.check(), [])

    def example(self, name: str) -> dict:
        return json.loads((check_event_schema.EXAMPLES / f"{name}.json").read_text())

    def test_broken_events_are_rejected(self):
        completed = self.example("batch-completed")
        unfinalized = self.example("batch-failed-unfinalized")
        broken = []
        e = copy.deepcopy(completed)
        del e["detail"]["usage"]
        broken.append(e)
        e = copy.deepcopy(completed)
        e["detail"]["request_counts"]["retried"] = 1
        broken.append(e)
        e = copy.deepcopy(completed)
        e["detail"]["status"] = "in_progress"
        broken.append(e)
        e = copy.deepcopy(completed)
        e["detail"]["request_counts"]["total"] = -1
        broken.append(e)
        e = copy.deepcopy(unfinalized)
        e["detail-type"] = "Batch Completed"
        broken.append(e)
        e = copy.deepcopy(completed)
        e["detail-type"] = "Batch Failed"  # a failed batch says why
        broken.append(e)
        e = copy.deepcopy(completed)
        e["source"] = "aws.batch"
        broken.append(e)
        for event in broken:
            self.assertNotEqual(check_event_schema.errors(self.schema, event), [], json.dumps(event)[:200])

    def test_a_new_rust_field_must_be_in_the_schema(self):
        text = check_event_schema.STATUS_RS.read_text()
        changed = text.replace("pub struct EventDetail {\n", "pub struct EventDetail {\n    pub model: String,\n", 1)
        self.assertNotEqual(text, changed)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "status.rs"
            path.write_text(changed)
            problems = check_event_schema.check_rust(self.schema, path)
        self.assertTrue(any("EventDetail has" in p and "model" in p for p in problems), problems)

    def test_a_failed_batch_is_never_a_batch_completed(self):
        completed = self.example("batch-completed")
        e = copy.deepcopy(completed)
        e["detail"]["status"] = "failed"
        e["detail"]["error"] = "job 0: failed"
        self.assertNotEqual(check_event_schema.errors(self.schema, e), [])
        e["detail-type"] = "Batch Failed"
        self.assertEqual(check_event_schema.errors(self.schema, e), [])

    def test_the_status_choice_decides_the_detail_type(self):
        asl = json.loads(check_event_schema.ASL.read_text())
        # Without "Batch Failed?", a finalized batch whose status is failed would be sent as Batch Completed.
        asl["States"]["Finalize"]["Next"] = "Announce Completion"
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "batch.asl.json"
            path.write_text(json.dumps(asl))
            problems = check_event_schema.check_asl(self.schema, path)
        self.assertIn("the state machine sends Batch Completed with a finalized batch whose status is failed; the schema rejects it", problems)
        asl = json.loads(check_event_schema.ASL.read_text())
        # A Catch straight into an announcement would send the failed state, not finalize's output.
        asl["States"]["Stop Jobs"]["Catch"][0]["Next"] = "Announce Failure"
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "batch.asl.json"
            path.write_text(json.dumps(asl))
            problems = check_event_schema.check_asl(self.schema, path)
        self.assertIn("ASL state 'Announce Failure' sends its input as the detail but is reached from 'Stop Jobs', not from finalize", problems)

    def test_a_recorded_event_of_the_old_flow_fails(self):
        # Batch Completed with status failed: what the state machine sent before "Batch Failed?".
        target = cfn.ROOT / "target" / "checks"
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as d:
            for f in check_event_schema.EXAMPLES.glob("*.json"):
                event = json.loads(f.read_text())
                if event["detail-type"] == "Batch Failed" and event["detail"].get("input_file"):
                    event["detail-type"] = "Batch Completed"
                (Path(d) / f.name).write_text(json.dumps(event))
            problems = check_event_schema.check_examples(self.schema, Path(d))
        self.assertTrue(any("which the state machine no longer sends" in p for p in problems), problems)

    def test_the_asl_detail_must_fit(self):
        asl = json.loads(check_event_schema.ASL.read_text())
        entry = asl["States"]["Announce Unfinalized Failure"]["Parameters"]["Entries"][0]
        entry["Detail"]["reason"] = "extra"
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "batch.asl.json"
            path.write_text(json.dumps(asl))
            problems = check_event_schema.check_asl(self.schema, path)
        self.assertTrue(any("Announce Unfinalized Failure" in p for p in problems), problems)

    def test_the_documented_examples_must_fit(self):
        text = check_event_schema.EVENTS_DOC.read_text()
        self.assertEqual(check_event_schema.check_doc(self.schema), [])
        # The detail of a finished batch, with a field the schema does not have.
        broken = text.replace('"status": "completed",', '"status": "completed", "retried": 0,', 1)
        self.assertNotEqual(text, broken)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "events.md"
            path.write_text(broken)
            problems = check_event_schema.check_doc(self.schema, path)
            self.assertTrue(any("an example does not fit the schema" in p and "retried" in p for p in problems), problems)
            path.write_text(text.replace("```json", "```text"))
            self.assertEqual(check_event_schema.check_doc(self.schema, path), [f"{path}: no JSON example of the detail"])
            path.unlink()
            self.assertEqual(check_event_schema.check_doc(self.schema, path), [f"{path} does not exist: it documents the completion event"])


class ScannerCheck(unittest.TestCase):
    def report(self, failed: list[tuple[str, str, str]]) -> dict:
        passed = [{"check_id": "CKV_AWS_1", "file_path": "/" + f, "resource": "x"} for f in scan_templates.SCANNED]
        checks = [
            {"check_id": c, "check_name": "a check", "file_path": "/" + f, "resource": r} for c, f, r in failed
        ]
        return {"check_type": "cloudformation", "summary": {"parsing_errors": 0}, "results": {"passed_checks": passed, "failed_checks": checks}}

    def run_check(self, report: dict) -> list[str]:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "report.json"
            path.write_text(json.dumps(report))
            problems, _notes = scan_templates.check(path)
        return problems

    def justified_failures(self) -> list[tuple[str, str, str]]:
        sam = "target/sam/template.json"
        types = {"Function": "AWS::Lambda::Function", "Group": "AWS::Logs::LogGroup", "Bucket": "AWS::S3::Bucket", "Queue": "AWS::SQS::Queue", "Table": "AWS::DynamoDB::Table"}
        out = []
        for check_id, (resources, _reason) in scan_templates.JUSTIFIED.items():
            for r in resources:
                kind = next(v for k, v in types.items() if r.endswith(k))
                out.append((check_id, sam, f"{kind}.{r}"))
        return out

    def test_justified_findings_pass(self):
        self.assertEqual(self.run_check(self.report(self.justified_failures())), [])

    def test_an_unjustified_finding_fails(self):
        failures = self.justified_failures() + [("CKV_AWS_111", "target/sam/template.json", "AWS::IAM::Role.SubmitFunctionRole")]
        self.assertTrue(any("CKV_AWS_111 SubmitFunctionRole" in p for p in self.run_check(self.report(failures))))
        failures = self.justified_failures() + [("CKV_AWS_21", "target/sam/template.json", "AWS::S3::Bucket.InputBucket")]
        self.assertTrue(any("CKV_AWS_21 InputBucket" in p for p in self.run_check(self.report(failures))))

    def test_a_stale_justification_fails(self):
        failures = [f for f in self.justified_failures() if f[0] != "CKV_AWS_117"]
        self.assertTrue(any("CKV_AWS_117 is justified but fails nowhere" in p for p in self.run_check(self.report(failures))))


if __name__ == "__main__":
    unittest.main()
