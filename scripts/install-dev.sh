#!/usr/bin/env bash
# Set up a development install of storage-proxy on this machine: the package in editable mode
# with its dev extras, into the Python that runs this script (a virtualenv if one is active).
# Idempotent: running it twice is fine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"storage-proxy needs Python >= 3.11, this is {sys.version.split()[0]}")
PY

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$PYTHON" -m pip install --quiet --editable ".[dev]"

echo "storage-proxy installed: $(command -v storage-proxy || echo "$PYTHON -m storage_proxy.cli")"
echo "Run the daemon on its embedded defaults:  storage-proxy start-server"
echo "  or with the local dev config:            storage-proxy start-server --config halfstack.toml"
