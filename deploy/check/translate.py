"""Translate deploy/template.yaml (AWS SAM) to plain CloudFormation JSON, offline.

checkov does not look inside AWS::Serverless::Function; on the translated template it sees the
real AWS::Lambda::Function. The translator wants an s3:// CodeUri (and ContentUri for the
layer): placeholders stand in for the packages `sam build`/`sam deploy` would upload.

usage: python translate.py TEMPLATE OUTPUT
"""

import json
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no managed policy; nothing to look up (and no AWS call)."""

    def load(self):
        return {}


def main(source, output):
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder-bucket/placeholder.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://placeholder-bucket/layer.zip"
    translated = transform(template, {}, NoManagedPolicies(), passthrough_metadata=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
