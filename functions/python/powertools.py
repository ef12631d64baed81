"""python-powertools: AWS Lambda Powertools' Parameters utility with its default caching
(300 s in 3.x, POWERTOOLS_PARAMETERS_MAX_AGE): `get_secret` for Secrets Manager and `get_parameter`
for Parameter Store, each transformed from JSON, then `access_key` and `secret_key`."""

import os
import time

_STARTED = time.perf_counter()

from aws_lambda_powertools.utilities import parameters  # noqa: E402

import measure  # noqa: E402

measure.count_botocore_calls()
_INIT_MS = (time.perf_counter() - _STARTED) * 1000
PARAMETER_NAME = os.environ["SECRET_LOADER_BENCH_PARAMETER_NAME"]


def get_secret():
    secret = parameters.get_secret(measure.SECRET_ID, transform="json")
    return secret["access_key"], secret["secret_key"]


def get_parameter():
    secret = parameters.get_parameter(PARAMETER_NAME, decrypt=True, transform="json")
    return secret["access_key"], secret["secret_key"]


handler = measure.handler_for(
    [
        measure.Stack(
            "python-powertools-secret",
            get_secret,
            source="powertools parameters.get_secret (default 300 s cache)",
            compare_with="secretsmanager+memory",
            init_ms=_INIT_MS,
        ),
        measure.Stack(
            "python-powertools-parameter",
            get_parameter,
            source="powertools parameters.get_parameter, decrypt (default 300 s cache)",
            compare_with="ssm+memory",
        ),
    ]
)
