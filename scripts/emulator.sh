# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: a pinned moto server on loopback.
#
#   emulator_start   installs moto into .venv if missing, starts it on a free 127.0.0.1 port,
#                    waits until it answers, exports the AWS_* variables that point the SDK at it
#                    (and only at it), and stops it again when the calling shell exits.

MOTO_VERSION="5.2.5"
# The official AWS Encryption SDK CLI, for interoperability tests of our envelopes.
ESDK_CLI_VERSION="4.3.0"
# AWS's Lambda runtime interface client for Python: runs the Python functions of the extension
# tests under the local Runtime API (boto3 and botocore come with moto).
AWSLAMBDARIC_VERSION="4.2.2"
# AWS Lambda Powertools for Python: its Parameters utility is one of the comparison's peers.
POWERTOOLS_VERSION="3.37.0"
# Runs the tests of this project's Python package (crates/secret-loader-python).
PYTEST_VERSION="9.2.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

emulator_install() {
    if [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws-encryption-cli" ] \
        && "$VENV/bin/python" -c "
import sys
from importlib.metadata import version
sys.exit(version('moto') != '$MOTO_VERSION' or version('aws-encryption-sdk-cli') != '$ESDK_CLI_VERSION'
         or version('awslambdaric') != '$AWSLAMBDARIC_VERSION'
         or version('aws-lambda-powertools') != '$POWERTOOLS_VERSION'
         or version('pytest') != '$PYTEST_VERSION')
" 2>/dev/null; then
        return 0
    fi
    echo "==> installing moto[server]==$MOTO_VERSION, aws-encryption-sdk-cli==$ESDK_CLI_VERSION, awslambdaric==$AWSLAMBDARIC_VERSION, aws-lambda-powertools==$POWERTOOLS_VERSION and pytest==$PYTEST_VERSION into .venv" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" "aws-encryption-sdk-cli==$ESDK_CLI_VERSION" \
        "awslambdaric==$AWSLAMBDARIC_VERSION" "aws-lambda-powertools==$POWERTOOLS_VERSION" \
        "pytest==$PYTEST_VERSION"
}

# This project's Python package into .venv, where the comparison's `python-secret-loader` peer
# and the package's pytest suite import it: the very wheel deploy/'s Python layer ships for this
# machine's architecture (scripts/wheels: release, manylinux2014, zig).
python_package_install() {
    emulator_install
    local wheel
    wheel="$("$ROOT/scripts/wheels" "$(uname -m)")"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
}

# AWS's Secrets Manager Agent, pinned, from crates.io (the oracle and benchmark peer of
# `secret-loader serve`, and the agent the comparison's `python-agent` peer reads through):
# built once per build directory, then reused. Exports SECRET_LOADER_AGENT, the binary,
# SECRET_LOADER_AGENT_SOURCE, the crate's source (kept beside the binary; deploy/agent-layer
# builds the Lambda layer from it), and SECRET_LOADER_AGENT_EXTENSION, AWS's sample script in
# it that runs the agent as a Lambda extension.
AGENT_VERSION="2.1.0"
agent_install() {
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    local root="$target/tools/aws_secretsmanager_agent-$AGENT_VERSION"
    local sample="examples/example-lambda-extension/secrets-manager-agent-extension.sh"
    if [ ! -x "$root/bin/aws_secretsmanager_agent" ] || [ ! -f "$root/src/$sample" ]; then
        echo "==> cargo install aws_secretsmanager_agent $AGENT_VERSION" >&2
        cargo install aws_secretsmanager_agent --version "$AGENT_VERSION" --locked --quiet \
            --force --root "$root" --target-dir "$target/tools/build"
        # cargo install unpacked the crate into the registry's sources.
        local source
        source="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"aws_secretsmanager_agent-$AGENT_VERSION" | head -n 1)"
        rm -rf "$root/src"
        cp -R "$source" "$root/src"
    fi
    export SECRET_LOADER_AGENT="$root/bin/aws_secretsmanager_agent"
    export SECRET_LOADER_AGENT_SOURCE="$root/src"
    export SECRET_LOADER_AGENT_EXTENSION="$root/src/$sample"
}

emulator_stop() {
    if [ -n "${EMULATOR_PID:-}" ] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
    fi
    EMULATOR_PID=
}

emulator_start() {
    emulator_install
    local port log
    port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$ROOT/.emulator"
    log="$ROOT/.emulator/moto-$port.log"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    EMULATOR_PID=$!
    trap emulator_stop EXIT
    trap 'exit 130' INT TERM
    local deadline=$((SECONDS + 60))
    until "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; do
        if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
            echo "moto_server exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "moto_server did not answer on 127.0.0.1:$port within 60 s" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "==> moto $MOTO_VERSION listening on 127.0.0.1:$port" >&2

    # Everything the SDK needs to talk to the emulator and to nothing else.
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_ENCRYPTION_CLI="$VENV/bin/aws-encryption-cli"
    # For tests that start a second emulator of their own (two endpoints, one id).
    export MOTO_SERVER="$VENV/bin/moto_server"
    # The virtualenv's Python (boto3, botocore, awslambdaric), for the extension's Python tests.
    export SECRET_LOADER_PYTHON="$VENV/bin/python"
}
