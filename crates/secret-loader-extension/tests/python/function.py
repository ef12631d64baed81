"""The flow this project started from, through the extension: a Python function that reads
its secret with the standard library only, `json.loads` it, and takes `access_key` and
`secret_key`. It reads once at import, during the function's own INIT (AWS's extension can't
serve then; this one can), and again in every invocation.

Switching from boto3 is these lines: instead of
`boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]`, one GET
to 127.0.0.1 with the session token in a header.
"""

import json
import os
import time
import urllib.parse
import urllib.request

PORT = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
TOKEN_HEADER = {"X-Aws-Parameters-Secrets-Token": os.environ["AWS_SESSION_TOKEN"]}


def get_secret(secret_id):
    """The secret's JSON value, as `get_secret_value` + `json.loads` gave it."""
    query = urllib.parse.urlencode({"secretId": secret_id})
    request = urllib.request.Request(
        f"http://localhost:{PORT}/secretsmanager/get?{query}", headers=TOKEN_HEADER
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(json.loads(response.read())["SecretString"])


_started = time.perf_counter()
AT_INIT = get_secret(os.environ["SECRET_ID"])
INIT_READ_MS = (time.perf_counter() - _started) * 1000


def handler(event, context):
    started = time.perf_counter()
    value = get_secret(os.environ["SECRET_ID"])
    read_ms = (time.perf_counter() - started) * 1000
    return {
        "init": {"access_key": AT_INIT["access_key"], "secret_key": AT_INIT["secret_key"]},
        "invoke": {"access_key": value["access_key"], "secret_key": value["secret_key"]},
        "init_read_ms": INIT_READ_MS,
        "read_ms": read_ms,
    }
