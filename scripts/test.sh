#!/usr/bin/env bash
# Install what the tests need, then run lint, type checks and the whole test suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive

# System tools the tests use (coreutils' du for the usage checks, curl for client checks).
need_apt=()
for tool in du curl; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if ((${#need_apt[@]})); then
  pkgs=()
  for tool in "${need_apt[@]}"; do
    case "$tool" in du) pkgs+=(coreutils) ;; curl) pkgs+=(curl) ;; esac
  done
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${pkgs[@]}"
fi

"$PYTHON" -m pip install --quiet --editable ".[dev]"

echo "== ruff"
"$PYTHON" -m ruff check src plugins tests bench
"$PYTHON" -m ruff format --check src plugins tests bench
echo "== mypy"
"$PYTHON" -m mypy src plugins
echo "== pytest"
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
