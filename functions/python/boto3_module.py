"""python-boto3 as a careful author writes it: the same flow, the client made once at module
level (during INIT) and reused by every read."""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402

import boto3  # noqa: E402

import measure  # noqa: E402

measure.count_botocore_calls()
CLIENT = boto3.session.Session().client(service_name="secretsmanager")


def get_secret():
    response = CLIENT.get_secret_value(SecretId=measure.SECRET_ID)
    secret = json.loads(response["SecretString"])
    return secret["access_key"], secret["secret_key"]


handler = measure.handler_for(
    [
        measure.Stack(
            "python-boto3-module-client",
            get_secret,
            source="boto3 client at module level, get_secret_value, json.loads",
            compare_with="secretsmanager",
            init_ms=(time.perf_counter() - _STARTED) * 1000,
        )
    ]
)
