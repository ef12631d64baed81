"""python-boto3, the flow this project started from, unchanged in substance: inside
`get_secret()` a boto3 session and a Secrets Manager client are made, `get_secret_value`
is called, the answer is `json.loads`ed, and `access_key` and `secret_key` are read.
A new client per read, as the original does."""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402

import boto3  # noqa: E402

import measure  # noqa: E402

measure.count_botocore_calls()


def get_secret():
    session = boto3.session.Session()
    client = session.client(service_name="secretsmanager")
    response = client.get_secret_value(SecretId=measure.SECRET_ID)
    secret = json.loads(response["SecretString"])
    return secret["access_key"], secret["secret_key"]


handler = measure.handler_for(
    [
        measure.Stack(
            "python-boto3-client-per-read",
            get_secret,
            source="boto3 session + client per read, get_secret_value, json.loads",
            compare_with="secretsmanager",
            init_ms=(time.perf_counter() - _STARTED) * 1000,
        )
    ]
)
