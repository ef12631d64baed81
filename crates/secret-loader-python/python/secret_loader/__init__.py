"""secret-loader for Python: secrets from Secrets Manager, Parameter Store, S3, EFS and
KMS-encrypted environment variables, read in process by secret-loader's Rust library, with
its memory and /tmp caches, and without boto3.

Powertools' module functions, so a function changes one import::

    from secret_loader import get_secret          # was: aws_lambda_powertools...parameters
    secret = get_secret("prod/app/api", transform="json")   # SECRET_LOADER_SOURCE picks the store
    access_key, secret_key = secret["access_key"], secret["secret_key"]

``Source(url, **options)`` is one configured stack for code that reads from several.
Every error is a ``SecretLoaderError``; no exception text or log line holds a secret value.
"""

import os as _os


class SecretLoaderError(Exception):
    """Every error of secret-loader. ``kind`` (e.g. ``"not_found"``), ``backend``,
    ``secret_id`` and ``retryable`` say what failed; the message never holds a value."""

    kind = "other"
    backend = None
    secret_id = None
    retryable = False


class NotFoundError(SecretLoaderError, LookupError):
    """No secret (or no such version of it) under this name."""


class AccessDeniedError(SecretLoaderError):
    """The credentials may not read this secret or use its key."""


class DecryptionError(SecretLoaderError):
    """The ciphertext could not be opened: tampered, another key or encryption context."""


class RetryableError(SecretLoaderError):
    """A failure that may pass: trying again later may succeed."""


class ThrottledError(RetryableError):
    """The service asked to slow down (after the SDK's own bounded retries)."""


class TransientError(RetryableError):
    """Connection refused or reset, a timeout, a 5xx answer (after the SDK's retries)."""


class InvalidIdError(SecretLoaderError, ValueError):
    """The name is not a valid secret id (rejected before any call)."""


class ConfigError(SecretLoaderError, ValueError):
    """The source URL, an option or an argument is not valid."""


class FormatError(SecretLoaderError, ValueError):
    """The value is not what the transform or field asks for (not JSON, no such field)."""


class UnsupportedError(SecretLoaderError):
    """The backend cannot do this (a version selector it has no notion of, ...)."""


# Powertools' names, so its `except` clauses keep working after the import changes.
GetParameterError = SecretLoaderError
TransformParameterError = FormatError

from secret_loader._native import (  # noqa: E402
    Source,
    __version__,
    _after_fork_in_child,
    calls,
    get_field,
    get_parameter,
    get_secret,
)

# A forked child makes its own runtime and connections (the parent's are left alone).
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "DecryptionError",
    "FormatError",
    "GetParameterError",
    "InvalidIdError",
    "NotFoundError",
    "RetryableError",
    "SecretLoaderError",
    "Source",
    "ThrottledError",
    "TransformParameterError",
    "TransientError",
    "UnsupportedError",
    "calls",
    "get_field",
    "get_parameter",
    "get_secret",
]
