"""The official Python AWS Encryption SDK as a test oracle for secret-loader's envelopes.

    python esdk_oracle.py encrypt|decrypt SUITE ID BACKEND INPUT OUTPUT

SUITE is `committing` or `committing-signed`; the wrapping key is the tests' raw AES key
(namespace `secret-loader-oracle`, name `wrapping-key-1`, 32 bytes of 0x42). `encrypt` writes a
message with secret-loader's encryption context for ID in BACKEND (kind `binary`); `decrypt`
opens one and checks that context. Exits non-zero on any failure.
"""

import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey

SUITES = {
    "committing": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    "committing-signed": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
}


def key():
    return RawMasterKey(
        provider_id="secret-loader-oracle",
        key_id=b"wrapping-key-1",
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=bytes([0x42] * 32),
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def main(mode, suite, secret_id, backend, source, target):
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    context = {
        "secret-loader:id": secret_id,
        "secret-loader:backend": backend,
        "secret-loader:kind": "binary",
    }
    with open(source, "rb") as f:
        data = f.read()
    if mode == "encrypt":
        out, _ = client.encrypt(
            source=data,
            key_provider=key(),
            encryption_context=context,
            algorithm=SUITES[suite],
            frame_length=4096,
        )
    else:
        out, header = client.decrypt(source=data, key_provider=key())
        for k, v in context.items():
            if k != "secret-loader:kind" and header.encryption_context.get(k) != v:
                sys.exit(f"context {k} does not match")
        if header.algorithm != SUITES[suite]:
            sys.exit(f"suite {header.algorithm} is not {suite}")
    with open(target, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
