"""python-secret-loader: this project's Python package, the Rust library in process, reading
the secret as the seed does (get it, parse the JSON, take `access_key` and `secret_key`)
through each backend the Rust function reads, bare and behind the memory cache: the same
stacks, built at INIT as the Rust function builds its own. No boto3. Calls are counted by
the package itself on the SDK's HTTPS client (`Source.calls()`)."""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402

import secret_loader  # noqa: E402

import measure  # noqa: E402

_URLS = json.loads(os.environ["SECRET_LOADER_BENCH_PACKAGE_STACKS"])
_SOURCES = {name: secret_loader.Source(url) for name, url in _URLS.items()}
_INIT_MS = (time.perf_counter() - _STARTED) * 1000


def _stack(name, source, init_ms):
    def read():
        secret = source.get(measure.SECRET_ID, transform="json")
        return secret["access_key"], secret["secret_key"]

    return measure.Stack(
        f"python-secret-loader-{name}",
        read,
        f"secret_loader.Source({name}).get(transform=\"json\")",
        name,
        init_ms=init_ms,
        init_calls=source.calls(),
        calls=source.calls,
    )


def _get_secret():
    # The drop-in: Powertools' call with the import changed (its 300 s memory cache).
    secret = secret_loader.get_secret(measure.SECRET_ID, source=_URLS["secretsmanager"], transform="json")
    return secret["access_key"], secret["secret_key"]


handler = measure.handler_for(
    [_stack(name, source, _INIT_MS if i == 0 else None) for i, (name, source) in enumerate(_SOURCES.items())]
    + [
        measure.Stack(
            "python-secret-loader-get_secret",
            _get_secret,
            "secret_loader.get_secret(transform=\"json\"), Powertools' call (default 300 s cache)",
            "secretsmanager+memory",
            calls=secret_loader.calls,
        )
    ]
)
