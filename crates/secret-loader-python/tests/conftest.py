"""What the package's tests share: the emulator scripts/test started (moto on 127.0.0.1), the
CLI that writes the values, and a counting proxy between the package and the emulator."""

import http.client
import http.server
import json
import os
import subprocess
import threading
import uuid
import urllib.parse

import pytest

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
CLI = os.environ.get("SECRET_LOADER_CLI", "")


def pytest_configure(config):
    # Never a silent skip: these tests exist to run against the emulator.
    if not ENDPOINT.startswith("http://127.0.0.1:"):
        raise pytest.UsageError("AWS_ENDPOINT_URL must point at the emulator on 127.0.0.1 (scripts/test)")
    if not os.access(CLI, os.X_OK):
        raise pytest.UsageError("SECRET_LOADER_CLI must name the secret-loader binary (scripts/test)")


def unique(prefix):
    return f"py/{prefix}-{uuid.uuid4().hex[:12]}"


def cli(*args, stdin=b"", env=None, check=True):
    """Runs the CLI; returns (stdout, stderr) as text."""
    done = subprocess.run([CLI, *args], input=stdin, capture_output=True, env=env, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"secret-loader {args[0]} failed: {done.stderr.decode()}")
    return done.stdout.decode(), done.stderr.decode()


def url_of(scheme_and_rest, endpoint=ENDPOINT):
    join = "&" if "?" in scheme_and_rest else "?"
    return f"{scheme_and_rest}{join}region=us-east-1&endpoint_url={endpoint}"


class Aws:
    """The emulator's fixtures: a KMS key and a bucket, made with boto3 (test set-up only:
    the package under test never imports it)."""

    def __init__(self):
        import boto3

        self.kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name="us-east-1")
        self.s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1")
        self.key = self.kms.create_key()["KeyMetadata"]["Arn"]
        self.bucket = f"py-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)


@pytest.fixture(scope="session")
def aws():
    return Aws()


class CountingProxy:
    """HTTP between the package and the emulator: counts each request by its operation
    (`X-Amz-Target`, or METHOD for S3) and can answer some operations with an error or
    after a delay instead."""

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        self.fail = {}  # operation -> (status, AWS error code)
        self.delay = 0.0
        upstream = urllib.parse.urlparse(ENDPOINT)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target") or f"s3:{self.command}"
                operation = target.split(".")[-1] if "." in target else target
                with proxy.lock:
                    proxy.counts[operation] = proxy.counts.get(operation, 0) + 1
                    fail = proxy.fail.get(operation)
                if proxy.delay:
                    threading.Event().wait(proxy.delay)
                if fail:
                    status, code = fail
                    reply = json.dumps({"__type": code, "message": "injected by the test"}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("x-amzn-ErrorType", code)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, operation):
        with self.lock:
            return self.counts.get(operation, 0)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy():
    counting = CountingProxy()
    yield counting
    counting.close()
