"""python-extension: the standard library's HTTP to this project's extension on 127.0.0.1,
for each backend it serves: AWS's Secrets Manager and Parameter Store routes, and the generic
route for the others. No AWS SDK in the function at all (the extension's own calls are not on
the function's wire)."""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import measure  # noqa: E402

PORT = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
HEADERS = {"X-Aws-Parameters-Secrets-Token": os.environ["AWS_SESSION_TOKEN"]}
PARAMETER_NAME = os.environ["SECRET_LOADER_BENCH_PARAMETER_NAME"]
_INIT_MS = (time.perf_counter() - _STARTED) * 1000


def _get(path, **query):
    url = f"http://localhost:{PORT}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=10) as r:
        return json.loads(r.read())


def secret_fields(text):
    secret = json.loads(text)
    return secret["access_key"], secret["secret_key"]


def stack(name, read, source, compare_with, init_ms=None):
    return measure.Stack(name, read, source, compare_with, init_ms=init_ms)


STACKS = [
    stack(
        "python-extension-secretsmanager",
        lambda: secret_fields(_get("/secretsmanager/get", secretId=measure.SECRET_ID)["SecretString"]),
        "urllib to /secretsmanager/get (the extension's Secrets Manager stack, cached)",
        "secretsmanager+memory",
        init_ms=_INIT_MS,
    ),
    stack(
        "python-extension-ssm",
        lambda: secret_fields(
            _get("/systemsmanager/parameters/get", name=PARAMETER_NAME, withDecryption="true")[
                "Parameter"
            ]["Value"]
        ),
        "urllib to /systemsmanager/parameters/get (the extension's Parameter Store stack, cached)",
        "ssm+memory",
    ),
]
for backend in filter(None, os.environ.get("SECRET_LOADER_BENCH_EXTENSION_SOURCES", "").split(",")):
    STACKS.append(
        stack(
            f"python-extension-{backend}",
            lambda backend=backend: secret_fields(
                _get("/secret-loader/get", id=measure.SECRET_ID, source=backend)["SecretString"]
            ),
            f"urllib to /secret-loader/get?source={backend} (cached in the extension)",
            f"{backend}+memory",
        )
    )

handler = measure.handler_for(STACKS)
