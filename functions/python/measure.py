"""What every Python peer of the comparison shares: it reads the same secret through each of
its stacks and answers exactly as the Rust comparison function does (init, first read, warm
reads, AWS calls by `service:Operation`), so the same driver and report read both.

Nothing here changes what a peer does to read a secret; it only times and counts around it.
"""

import os
import time

SECRET_ID = os.environ["SECRET_LOADER_BENCH_SECRET_ID"]
# AWS calls made so far in this process, by `service:Operation` (as the Rust function counts).
CALLS = {}


def count_botocore_calls():
    """Counts every API call botocore makes from now on (boto3 and Powertools use it)."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request

    def make_request(self, operation_model, request_dict):
        key = f"{operation_model.service_model.signing_name}:{operation_model.name}"
        CALLS[key] = CALLS.get(key, 0) + 1
        return original(self, operation_model, request_dict)

    Endpoint.make_request = make_request


def _difference(after, before):
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0) > 0}


def _stats(samples):
    if not samples:
        return None
    samples = sorted(samples)

    def rank(p):
        index = min(max(int(-(-p * len(samples) // 1)), 1), len(samples)) - 1
        return samples[index]

    return {
        "count": len(samples),
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "max_ms": samples[-1],
        "samples_ms": samples,
    }


def _error(exc):
    # The exception's type and message; botocore's and urllib's never carry a secret value.
    return {"kind": type(exc).__name__, "message": str(exc)[:300]}


class Stack:
    """One way of reading the secret: `read()` returns what the caller keeps (the fields).
    `calls()` gives the AWS calls made so far (default: botocore's, counted above)."""

    def __init__(self, name, read, source, compare_with, init_ms=None, init_calls=None, calls=None):
        self.name = name
        self.read = read
        self.source = source
        self.compare_with = compare_with
        self.init_ms = init_ms
        self.init_calls = init_calls or {}
        self.first_read_done = False
        self.calls = calls or (lambda: CALLS)

    def measure(self, cold, warm_reads):
        report = {
            "name": self.name,
            "source": self.source,
            "init_ms": self.init_ms if cold else None,
            "first_read_ms": None,
            "warm": None,
            "error": None,
            "warm_calls": {},
            "compare_with": self.compare_with,
        }
        if cold:
            report["init_calls"] = self.init_calls
        if not self.first_read_done:
            self.first_read_done = True
            before = dict(self.calls())
            cpu = time.process_time()
            started = time.perf_counter()
            try:
                self.read()
                report["first_read_ms"] = (time.perf_counter() - started) * 1000
                report["first_read_cpu_ms"] = (time.process_time() - cpu) * 1000
            except Exception as exc:  # reported as data, as the Rust function does
                report["error"] = _error(exc)
            report["first_read_calls"] = _difference(self.calls(), before)
        before = dict(self.calls())
        samples = []
        cpu = time.process_time()
        for _ in range(warm_reads):
            started = time.perf_counter()
            try:
                self.read()
                samples.append((time.perf_counter() - started) * 1000)
            except Exception as exc:
                report["error"] = report["error"] or _error(exc)
        warm_cpu_ms = (time.process_time() - cpu) * 1000
        report["warm"] = _stats(samples)
        if samples:
            report["warm_cpu_ms"] = warm_cpu_ms
        report["warm_calls"] = _difference(self.calls(), before)
        return report


def handler_for(stacks):
    """The Lambda handler measuring `stacks`, answering the comparison's response shape.

    Called at the end of the module, so the end of INIT: the process's CPU time so far
    (user + system, `CLOCK_PROCESS_CPUTIME_ID`) is its INIT's, the interpreter's start and
    every import included."""
    init_cpu_ms = time.process_time() * 1000
    state = {"invocations": 0}

    def handler(event, context):
        warm_reads = int((event or {}).get("warm_reads", 10))
        if not 0 <= warm_reads <= 1000:
            raise ValueError(f"warm_reads {warm_reads} is out of bounds")
        state["invocations"] += 1
        cold = state["invocations"] == 1
        return {
            "cold": cold,
            "invocation": state["invocations"],
            "secret_id": SECRET_ID,
            "stacks": [stack.measure(cold, warm_reads) for stack in stacks],
            "copied": None,
            "envelope_warm_up_ms": None,
            "init_cpu_ms": init_cpu_ms if cold else None,
        }

    return handler
