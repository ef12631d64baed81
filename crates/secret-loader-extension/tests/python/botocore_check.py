"""botocore's own response parsers on the extension's answers, against the real calls.

usage: python botocore_check.py EXTENSION_URL TOKEN SECRET_ID PARAMETER_NAME

Parses the body of `/secretsmanager/get` as botocore parses a `GetSecretValue` response, and
the body of `/systemsmanager/parameters/get` as a `GetParameter` response, and compares each
field with the same call made with boto3 against the endpoint in AWS_ENDPOINT_URL (the
emulator). Timestamps must agree to the millisecond. Prints what differs as JSON; exit 0 when
nothing does.
"""

import datetime
import json
import sys
import urllib.parse
import urllib.request

import boto3
import botocore.session
from botocore import parsers

extension, token, secret_id, parameter_name = sys.argv[1:5]
session = botocore.session.get_session()


def parse(service, operation, body):
    model = session.get_service_model(service)
    parser = parsers.create_parser(model.metadata["protocol"])
    shape = model.operation_model(operation).output_shape
    return parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)


def fetch(path, **query):
    url = f"{extension}{path}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"X-Aws-Parameters-Secrets-Token": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def same(a, b):
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return abs((a - b).total_seconds()) < 0.001
    return a == b


def differences(ours, real, fields):
    return {
        field: [str(ours.get(field)), str(real.get(field))]
        for field in fields
        if not same(ours.get(field), real.get(field))
    }


ours = parse("secretsmanager", "GetSecretValue", fetch("/secretsmanager/get", secretId=secret_id))
real = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
secret_fields = ["ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"]

ours_p = parse(
    "ssm",
    "GetParameter",
    fetch("/systemsmanager/parameters/get", name=parameter_name, withDecryption="true"),
)["Parameter"]
real_p = boto3.client("ssm").get_parameter(Name=parameter_name, WithDecryption=True)["Parameter"]
parameter_fields = ["ARN", "Name", "Type", "Value", "Version", "LastModifiedDate", "DataType"]

report = {
    "secretsmanager": differences(ours, real, secret_fields),
    "ssm": differences(ours_p, real_p, parameter_fields),
    "checked": {"secretsmanager": secret_fields, "ssm": parameter_fields},
}
print(json.dumps(report))
sys.exit(1 if report["secretsmanager"] or report["ssm"] else 0)
