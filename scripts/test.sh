#!/usr/bin/env bash
# Install what the tests need, then run lint, type checks and the whole test suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive

# A stock Debian/Ubuntu Python refuses pip installs (PEP 668): use (or make) ./.venv then.
if "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not (sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))'; then
  echo "== $PYTHON is externally managed: using the virtual environment .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  PYTHON=.venv/bin/python
fi

# System packages the tests use (Ceph, xfsprogs, curl, …); skips what is installed.
bash scripts/ci-apt.sh

"$PYTHON" -m pip install --quiet --editable ".[dev]"

echo "== ruff"
"$PYTHON" -m ruff check src plugins tests bench
"$PYTHON" -m ruff format --check src plugins tests bench
echo "== mypy"
"$PYTHON" -m mypy src plugins
echo "== layers (import-linter contracts in pyproject.toml)"
"$PYTHON" -c 'import sys; from importlinter.cli import lint_imports_command as main; sys.argv[0] = "lint-imports"; main()' --no-cache
echo "== pytest"
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
