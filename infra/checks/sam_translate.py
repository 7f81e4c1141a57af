"""Translates the SAM template into the CloudFormation template that `sam deploy` would create, offline.

Usage: sam_translate.py TEMPLATE.yaml OUT.json

cfn-lint reads a SAM template without expanding it: the S3 notification, permission and roles that SAM
generates are not in that graph, so a dependency cycle through them (the input bucket's trigger and a
function that names the bucket by !Ref) passes both cfn-lint and `sam validate`. Linting this expansion
finds it. Local CodeUri folders become placeholder S3 locations (as `sam validate` does) and each state
machine's DefinitionUri file is inlined, so the ASL is checked inside the template too.
"""

import json
import os
import sys

from boto3.session import Session
from samtranslator.parser import parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

# AWS managed policies the template names (SAM's own defaults are added by ARN, without a lookup).
MANAGED_POLICIES = {}


def translate(template_path):
    base = os.path.dirname(os.path.abspath(template_path))
    with open(template_path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = {"Bucket": "placeholder-artifacts", "Key": f"{logical_id}.zip"}
        if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            with open(os.path.join(base, props.pop("DefinitionUri")), encoding="utf-8") as f:
                props["Definition"] = json.load(f)
    # The Region only fills ${AWS::Region}-style pseudo parameters; nothing is called.
    translator = Translator(
        managed_policy_map=MANAGED_POLICIES,
        sam_parser=parser.Parser(),
        boto_session=Session(region_name="us-east-1"),
    )
    return translator.translate(sam_template=sam, parameter_values={})


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cfn = translate(argv[1])
    os.makedirs(os.path.dirname(os.path.abspath(argv[2])), exist_ok=True)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(cfn, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
