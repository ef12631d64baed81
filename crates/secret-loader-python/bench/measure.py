"""The Python package beside what a Python function uses today, measured in one run on this
machine (scripts/bench runs it after the criterion benchmarks, with the package built in
release): what an import costs a process, and what a warm read costs in process.

    python measure.py [CRITERION_DIR]

* Imports: `python -c "import X"` against `python -c pass`, in new processes, interleaved,
  median of N: `secret_loader`, `boto3`, Powertools' parameters.
* Warm reads: a memory hit through `Source.get`, `Source.get(transform="json")` and
  `get_secret`, median per call over timed loops; beside the Rust in-process hit criterion
  measured in the same run (`memory_cache_hit/secret_loader_memory`), when given.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("SECRET_LOADER_BENCH_IMPORT_RUNS", "21"))
IMPORTS = {
    "(interpreter, nothing imported)": "pass",
    "secret_loader": "import secret_loader",
    "boto3": "import boto3",
    "powertools parameters": "from aws_lambda_powertools.utilities import parameters",
}


def imports():
    samples = {name: [] for name in IMPORTS}
    for _ in range(RUNS):
        for name, code in IMPORTS.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(s) for name, s in samples.items()}


def per_call_ns(call, loops=20000, repeats=15):
    call()
    medians = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(loops):
            call()
        medians.append((time.perf_counter_ns() - started) / loops)
    return statistics.median(medians)


def warm_reads():
    import secret_loader

    os.environ["BENCH_PY_API_KEY"] = json.dumps({"access_key": "not-a-secret", "secret_key": "placeholder"})
    source = secret_loader.Source("env://?prefix=BENCH_PY_&memory_ttl=5m")
    url = "env://?prefix=BENCH_PY_"
    return {
        "Source.get (memory hit)": per_call_ns(lambda: source.get("api_key")),
        "Source.get transform=json (memory hit)": per_call_ns(lambda: source.get("api_key", transform="json")),
        "get_secret (memory hit, max_age default)": per_call_ns(lambda: secret_loader.get_secret("api_key", source=url)),
    }


def rust_hit_ns(criterion):
    path = pathlib.Path(criterion) / "memory_cache_hit" / "secret_loader_memory" / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"]


def main():
    found = imports()
    base = found.pop("(interpreter, nothing imported)")
    print(f"\nPython imports (median of {RUNS} new processes, minus the bare interpreter's {base:.1f} ms):")
    for name, ms in found.items():
        print(f"  import {name}: {ms - base:.1f} ms")
    ratio = (found["secret_loader"] - base) / (found["boto3"] - base)
    print(f"  secret_loader / boto3: {ratio:.3f} (goal <= 0.1)")
    reads = warm_reads()
    rust = rust_hit_ns(sys.argv[1]) if len(sys.argv) > 1 else None
    print("\nPython warm reads in process (median ns per call):")
    for name, ns in reads.items():
        against = f", {ns / rust:.1f}x the Rust hit ({rust:.0f} ns, criterion, this run)" if rust else ""
        print(f"  {name}: {ns:.0f} ns{against}")
    if rust:
        print(f"  goal: Source.get within 10x of the Rust hit: {reads['Source.get (memory hit)'] / rust:.1f}x")


if __name__ == "__main__":
    main()
