"""The package against the emulator: the seed's flow on every backend with values the CLI
wrote, the exception classes, thread safety, fork, the GIL, and no value in any error or log."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest

import secret_loader
from conftest import ENDPOINT, cli, unique, url_of

BACKENDS = ["secretsmanager", "ssm", "s3+kms", "s3+sse-kms", "file+kms", "env+kms", "env"]


def seed_value():
    token = uuid.uuid4().hex
    return {"access_key": f"AKIA{token[:16].upper()}", "secret_key": f"canary-{token}"}


class Stored:
    """A secret the CLI wrote into one backend, and the URL the package reads it with."""

    def __init__(self, backend, aws, tmp_path, value, endpoint=ENDPOINT):
        self.backend = backend
        self.id = unique(backend.replace("+", "-"))
        self.value = value
        text = json.dumps(value) if not isinstance(value, str) else value
        self.root = tmp_path / f"files-{uuid.uuid4().hex[:8]}"
        self.root.mkdir(parents=True)
        base = {
            "secretsmanager": "secretsmanager://",
            "ssm": "ssm://",
            "s3+kms": f"s3+kms://{aws.bucket}/py",
            "s3+sse-kms": f"s3+sse-kms://{aws.bucket}/sse",
            "file+kms": f"file+kms://{self.root}",
            "env+kms": "env+kms://?prefix=PYKMS_",
            "env": "env://?prefix=PYENV_",
        }[backend]
        self.url = url_of(base, endpoint) if backend != "env" else base
        if backend in ("s3+kms", "file+kms", "env+kms"):
            self.url += f"&kms_key_id={aws.key}"
        writer = url_of(base)  # the CLI writes to the emulator itself
        if backend == "env":
            os.environ["PYENV_" + re.sub(r"[^A-Z0-9_]", "_", self.id.upper())] = text
        elif backend == "env+kms":
            out, err = cli("seal", self.id, "--source", writer, "--kms-key", aws.key, stdin=text.encode())
            variable = re.search(r"set ([A-Z0-9_]+)", err).group(1)
            os.environ[variable] = out.strip()
        else:
            cli("put", self.id, "--source", writer, "--kms-key", aws.key, stdin=text.encode())


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_seed_flow_reads_what_the_cli_wrote_on_every_backend(backend, aws, tmp_path):
    stored = Stored(backend, aws, tmp_path, seed_value())
    # The seed: get the secret, json.loads it, read access_key and secret_key.
    secret = secret_loader.get_secret(stored.id, source=stored.url, transform="json")
    assert (secret["access_key"], secret["secret_key"]) == (
        stored.value["access_key"],
        stored.value["secret_key"],
    )
    assert secret_loader.get_field(stored.id, "secret_key", source=stored.url) == stored.value["secret_key"]
    source = secret_loader.Source(stored.url)
    assert json.loads(source.get(stored.id)) == stored.value
    assert source.get_field(stored.id, "access_key") == stored.value["access_key"]
    assert source.get_many([stored.id]) == {stored.id: json.dumps(stored.value)}


@pytest.mark.parametrize("backend", ["secretsmanager", "s3+kms", "env+kms"])
def test_a_python_function_reads_through_the_environment_without_boto3(backend, aws, tmp_path):
    stored = Stored(backend, aws, tmp_path, seed_value())
    program = f"""
import sys, secret_loader
secret = secret_loader.get_secret({stored.id!r}, transform="json")
assert secret["secret_key"] == {stored.value["secret_key"]!r}
assert not any(m.split(".")[0] in ("boto3", "botocore") for m in sys.modules), "boto3 imported"
print("ok")
"""
    env = dict(os.environ, SECRET_LOADER_SOURCE=stored.url)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ok\n"


def test_transforms_versions_and_binary(aws, tmp_path):
    url = url_of("secretsmanager://")
    source = secret_loader.Source(url)
    name = unique("versions")
    cli("put", name, "--source", url, stdin=b'{"n": 1, "ok": true, "list": [1.5, null]}')
    cli("put", name, "--source", url, stdin=b'{"n": 2}')
    assert source.get(name, transform="json") == {"n": 2}
    assert source.get(name, transform="json", version_stage="AWSPREVIOUS") == {
        "n": 1,
        "ok": True,
        "list": [1.5, None],
    }
    # "auto" picks by the name's suffix, as Powertools does.
    cli("put", name + ".json", "--source", url, stdin=b'{"a": "b"}')
    assert source.get(name + ".json", transform="auto") == {"a": "b"}
    assert source.get(name, transform="auto") == '{"n": 2}'
    # "binary": base64 text decoded; a SecretBinary as it is.
    cli("put", name + "-b64", "--source", url, stdin=b"AAEC/w==")
    assert source.get(name + "-b64", transform="binary") == b"\x00\x01\x02\xff"
    cli("put", name + "-raw", "--binary", "--source", url, stdin=b"\x00\xfe\xff")
    assert source.get(name + "-raw") == b"\x00\xfe\xff"
    assert source.get(name + "-raw", transform="binary") == b"\x00\xfe\xff"
    # A SecretBinary that happens to be ASCII (and valid base64) is still bytes, as it is.
    cli("put", name + "-ascii", "--binary", "--source", url, stdin=b"AAAA")
    assert source.get(name + "-ascii") == b"AAAA"
    assert source.get(name + "-ascii", transform="binary") == b"AAAA"
    assert source.get_many([name + "-ascii"], transform="binary") == {name + "-ascii": b"AAAA"}


def test_max_age_and_force_fetch_as_powertools(aws, proxy):
    writer = url_of("secretsmanager://")
    url = url_of("secretsmanager://", proxy.endpoint)
    name = unique("max-age")
    cli("put", name, "--source", writer, stdin=b"first")
    assert secret_loader.get_secret(name, source=url, max_age=60) == "first"
    assert secret_loader.get_secret(name, source=url, max_age=60) == "first"
    assert proxy.count("GetSecretValue") == 1, proxy.counts
    cli("put", name, "--source", writer, stdin=b"second")
    assert secret_loader.get_secret(name, source=url, max_age=60) == "first", "cached for 60 s"
    assert secret_loader.get_secret(name, source=url, max_age=60, force_fetch=True) == "second"
    assert secret_loader.get_secret(name, source=url, max_age=60) == "second", "the refresh is kept"
    assert proxy.count("GetSecretValue") == 2, proxy.counts
    # max_age=0 keeps nothing: every call reads.
    for _ in range(3):
        assert secret_loader.get_secret(name, source=url, max_age=0) == "second"
    assert proxy.count("GetSecretValue") == 5, proxy.counts
    # A memory layer in the URL and no max_age: the URL's TTL (1 h) holds.
    layered = url_of("secretsmanager://?memory_ttl=1h", proxy.endpoint)
    assert secret_loader.get_secret(name, source=layered) == "second"
    assert secret_loader.get_secret(name, source=layered) == "second"
    assert proxy.count("GetSecretValue") == 6, proxy.counts
    proxy.counts.clear()
    # A Source's caches are its URL's: none here.
    bare = secret_loader.Source(url)
    bare.get(name)
    bare.get(name)
    assert proxy.count("GetSecretValue") == 2, proxy.counts
    # The package counts its own calls as the proxy saw them.
    assert bare.calls() == {"secretsmanager:GetSecretValue": 2}
    cached = secret_loader.Source(url, memory_ttl="1m")
    for _ in range(3):
        cached.get(name)
    assert cached.calls() == {"secretsmanager:GetSecretValue": 1}


def test_many_threads_reading_one_cold_id_make_one_backend_call(aws, proxy):
    writer = url_of("secretsmanager://")
    for layered in (
        lambda name: secret_loader.get_secret(name, source=url_of("secretsmanager://", proxy.endpoint)),
        lambda name, s=secret_loader.Source(url_of("secretsmanager://", proxy.endpoint), memory_ttl="5m"): s.get(name),
    ):
        name = unique("threads")
        cli("put", name, "--source", writer, stdin=b"shared value")
        before = proxy.count("GetSecretValue")
        proxy.delay = 0.2  # every thread arrives while the first call is in flight
        threads, results, gate = [], [], threading.Barrier(32)

        def read():
            gate.wait()
            results.append(layered(name))

        for _ in range(32):
            threads.append(threading.Thread(target=read))
            threads[-1].start()
        for thread in threads:
            thread.join(60)
        proxy.delay = 0.0
        assert results == ["shared value"] * 32
        assert proxy.count("GetSecretValue") - before == 1, proxy.counts


def test_the_gil_is_released_while_a_read_waits(aws, proxy):
    name = unique("gil")
    cli("put", name, "--source", url_of("secretsmanager://"), stdin=b"v")
    source = secret_loader.Source(url_of("secretsmanager://", proxy.endpoint))
    proxy.delay = 0.5
    done = threading.Event()
    reader = threading.Thread(target=lambda: (source.get(name), done.set()))
    reader.start()
    # The request is at the proxy, which holds it 0.5 s: from here the reader only waits.
    deadline = time.monotonic() + 30
    while proxy.count("GetSecretValue") == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    spins = 0
    while not done.is_set() and time.monotonic() < deadline:
        spins += 1
    reader.join()
    # A reader holding the GIL while it waits would stop this loop until its read is done.
    assert done.is_set() and spins > 50_000, spins


def test_errors_are_the_right_classes_and_never_hold_the_value(aws, proxy, tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    errors = []

    def expect(cls, kind, call):
        with pytest.raises(cls) as caught:
            call()
        err = caught.value
        assert err.kind == kind, (err.kind, str(err))
        assert isinstance(err, secret_loader.SecretLoaderError)
        errors.append(err)
        return err

    sm = url_of("secretsmanager://")
    missing = expect(
        secret_loader.NotFoundError, "not_found", lambda: secret_loader.get_secret(unique("missing"), source=sm)
    )
    assert isinstance(missing, LookupError) and missing.backend == "secretsmanager" and not missing.retryable
    assert missing.secret_id.startswith("py/missing-")
    file_url = url_of(f"file+kms://{tmp_path}?kms_key_id={aws.key}")
    expect(secret_loader.NotFoundError, "not_found", lambda: secret_loader.Source(file_url).get("nope"))
    expect(secret_loader.InvalidIdError, "invalid_id", lambda: secret_loader.Source(file_url).get("../../etc/passwd"))
    expect(secret_loader.InvalidIdError, "invalid_id", lambda: secret_loader.get_secret("a\x00b", source=sm))
    expect(secret_loader.ConfigError, "invalid_config", lambda: secret_loader.Source("bogus://"))
    expect(secret_loader.ConfigError, "invalid_config", lambda: secret_loader.Source(sm, memory_ttll="5m"))
    expect(secret_loader.ConfigError, "invalid_config", lambda: secret_loader.get_secret("x", source=sm, max_age=-1))
    expect(secret_loader.ConfigError, "invalid_config", lambda: secret_loader.get_secret("x", source=sm, transform="yaml"))
    assert issubclass(secret_loader.ConfigError, ValueError)

    # The value is stored, then asked for in shapes it does not have.
    name = unique("format")
    cli("put", name, "--source", sm, stdin=json.dumps({"secret_key": canary}).encode())
    cli("put", name + "-text", "--source", sm, stdin=f"not json {canary}".encode())
    expect(secret_loader.FormatError, "invalid_format", lambda: secret_loader.get_field(name, "access_key", source=sm))
    expect(secret_loader.FormatError, "invalid_format", lambda: secret_loader.get_secret(name + "-text", source=sm, transform="json"))
    expect(secret_loader.FormatError, "invalid_format", lambda: secret_loader.get_secret(name + "-text", source=sm, transform="binary"))
    assert secret_loader.TransformParameterError is secret_loader.FormatError

    # Sealed for one function, read as another: the context does not match.
    kms = url_of(f"env+kms://?prefix=PYDENY_&kms_key_id={aws.key}")
    out, err = cli("seal", "denied", "--source", kms, "--kms-key", aws.key, "--function", "orders-fn", stdin=canary.encode())
    os.environ["PYDENY_DENIED"] = out.strip()
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "other-fn"
    try:
        expect(secret_loader.DecryptionError, "decryption_failed", lambda: secret_loader.Source(kms).get("denied"))
    finally:
        del os.environ["AWS_LAMBDA_FUNCTION_NAME"]

    # A file+kms envelope with one byte changed.
    root = tmp_path / "tampered"
    root.mkdir()
    tampered = url_of(f"file+kms://{root}?kms_key_id={aws.key}")
    cli("put", "app/key", "--source", tampered, "--kms-key", aws.key, stdin=canary.encode())
    (path,) = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]
    data = bytearray(open(path, "rb").read())
    data[-40] ^= 1
    open(path, "wb").write(bytes(data))
    expect(secret_loader.DecryptionError, "decryption_failed", lambda: secret_loader.Source(tampered).get("app/key"))

    # The service's answers, injected by the proxy (one attempt, no retries to wait for).
    via = url_of("secretsmanager://?max_attempts=1", proxy.endpoint)
    proxy.fail["GetSecretValue"] = (400, "AccessDeniedException")
    expect(secret_loader.AccessDeniedError, "access_denied", lambda: secret_loader.Source(via).get(name))
    proxy.fail["GetSecretValue"] = (400, "ThrottlingException")
    throttled = expect(secret_loader.ThrottledError, "throttled", lambda: secret_loader.Source(via).get(name))
    assert throttled.retryable and isinstance(throttled, secret_loader.RetryableError)
    proxy.fail.clear()
    # The emulator down: nothing listens on the port.
    down = url_of("secretsmanager://?max_attempts=1&connect_timeout=1s", "http://127.0.0.1:9")
    expect(secret_loader.TransientError, "transient", lambda: secret_loader.Source(down).get(name))
    os.environ["PYUNSUP_X"] = canary
    expect(
        secret_loader.UnsupportedError,
        "unsupported",
        lambda: secret_loader.Source("env://?prefix=PYUNSUP_").get("x", version_stage="AWSPREVIOUS"),
    )

    # get_many: one failing name fails alone when asked to.
    got = secret_loader.Source(sm).get_many([name, unique("absent")], raise_on_error=False)
    assert got[name] == json.dumps({"secret_key": canary})
    (failed,) = [v for k, v in got.items() if k != name]
    assert isinstance(failed, secret_loader.NotFoundError)
    errors.append(failed)
    text_only = secret_loader.Source(sm).get_many([name + "-text"], transform="json", raise_on_error=False)
    assert isinstance(text_only[name + "-text"], secret_loader.FormatError)
    errors.append(text_only[name + "-text"])
    with pytest.raises(secret_loader.NotFoundError):
        secret_loader.Source(sm).get_many([name, unique("absent")])
    # A bad transform is refused before any call.
    with pytest.raises(secret_loader.ConfigError):
        secret_loader.Source(sm).get_many([], transform="yaml")

    for err in errors:
        chain = [err, err.__cause__, err.__context__]
        for text in [str(e) for e in chain if e is not None] + [repr(err), str(err.args)]:
            assert canary not in text, text



def test_no_value_in_any_log_line(aws, tmp_path):
    """Every read and every failure with the library's logs on at trace, on every backend
    that calls AWS: the value nowhere."""
    value = {"secret_key": f"canary-{uuid.uuid4().hex}"}
    canary = value["secret_key"]
    stored = [Stored(backend, aws, tmp_path, value) for backend in BACKENDS]
    sources = [one.url for one in stored] + [stored[4].url + f"&memory_ttl=5m&tmp_ttl=1h&tmp_kms_key_id={aws.key}"]
    names = [one.id for one in stored]
    program = f"""
import secret_loader
for source in {sources!r}:
    for name in {names!r}:
        try:
            secret_loader.Source(source).get(name, transform="json")
            secret_loader.get_field(name, "access_key", source=source)
        except secret_loader.SecretLoaderError as err:
            print(type(err).__name__, err, repr(err))
        try:
            secret_loader.get_secret(name, source=source, transform="binary")
        except secret_loader.SecretLoaderError as err:
            print(type(err).__name__, err)
print(repr(secret_loader.Source({stored[0].url!r}, memory_ttl="1m")))
"""
    env = dict(os.environ, SECRET_LOADER_LOG="trace", TMPDIR=str(tmp_path))
    assert any(k.startswith("PYKMS_") for k in env), "the sealed variable is in the environment"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    output = done.stdout.decode() + done.stderr.decode()
    assert "FormatError" in output and "TRACE" in output, output[-2000:]
    assert canary not in output


def test_a_forked_child_reads_with_its_own_runtime(aws):
    sm = url_of("secretsmanager://")
    name = unique("fork")
    cli("put", name, "--source", sm, stdin=b"before fork")
    program = f"""
import os, secret_loader
source = secret_loader.Source({sm!r}, memory_ttl="5m")
assert source.get({name!r}) == "before fork"
pid = os.fork()
if pid == 0:
    ok = source.refresh({name!r}) == "before fork" and secret_loader.get_secret({name!r}, source={sm!r}) == "before fork"
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert source.refresh({name!r}) == "before fork", "the parent's connections still work"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ok\n"


def test_get_parameter_defaults_to_parameter_store(aws, monkeypatch):
    name = unique("param")
    cli("put", name, "--source", url_of("ssm://"), "--kms-key", aws.key, stdin=b'{"k": "v"}')
    # `ssm://` with the environment's region and endpoint (scripts/test exports them).
    assert secret_loader.get_parameter(name, transform="json") == {"k": "v"}
    assert secret_loader.get_parameter(name, decrypt=True, max_age=0) == '{"k": "v"}'
    # Powertools' default decrypt=False is accepted; the SecureString comes back decrypted.
    assert secret_loader.get_parameter(name, decrypt=False, max_age=0) == '{"k": "v"}'
