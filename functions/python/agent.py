"""python-agent: the standard library's HTTP to AWS's Secrets Manager Agent on 127.0.0.1, run
as AWS's sample extension runs it (`secrets-manager-agent-extension.sh`: the agent is started
on the first INVOKE, not during INIT, so that nothing is cached before a SnapStart snapshot).
The function retries while the agent is not yet listening, as the agent's README tells its
users to. No AWS SDK in the function; the agent's own calls are not on the function's wire.
The agent serves Secrets Manager only."""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import measure  # noqa: E402

PORT = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
HEADERS = {"X-Aws-Parameters-Secrets-Token": os.environ["AWS_SESSION_TOKEN"]}
# How long a read waits for the agent to start listening before it fails.
AGENT_START_WAIT_S = 10.0
_INIT_MS = (time.perf_counter() - _STARTED) * 1000


def get_secret():
    query = urllib.parse.urlencode({"secretId": measure.SECRET_ID})
    request = urllib.request.Request(
        f"http://localhost:{PORT}/secretsmanager/get?{query}", headers=HEADERS
    )
    deadline = time.monotonic() + AGENT_START_WAIT_S
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
            break
        except urllib.error.URLError as err:
            # Not listening yet (the sample starts the agent when the first INVOKE arrives).
            refused = isinstance(err.reason, ConnectionRefusedError)
            if not refused or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    secret = json.loads(body["SecretString"])
    return secret["access_key"], secret["secret_key"]


handler = measure.handler_for(
    [
        measure.Stack(
            "python-agent-secretsmanager",
            get_secret,
            "urllib to AWS's agent /secretsmanager/get (started by AWS's sample extension, cached)",
            "secretsmanager+memory",
            init_ms=_INIT_MS,
        )
    ]
)
