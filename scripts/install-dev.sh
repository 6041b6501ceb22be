#!/usr/bin/env bash
# Set up a development machine: the system packages (etcd, Redis), storage-proxy in editable mode
# with its dev extras (which bring moto, the local S3 server), then start the halfstack under
# ./.halfstack and write halfstack.toml to match.  Idempotent: running it twice is fine.
# Afterwards `storage-proxy start-server` runs on embedded defaults, and
# `storage-proxy start-server --config halfstack.toml` against the halfstack.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"storage-proxy needs Python >= 3.11, this is {sys.version.split()[0]}")
PY

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$PYTHON" -m pip install --quiet --editable ".[dev]"

if [ "${INSTALL_DEV_NO_HALFSTACK:-0}" != 1 ]; then
  bash scripts/halfstack.sh up
fi

echo "storage-proxy installed: $(command -v storage-proxy || echo "$PYTHON -m storage_proxy.cli")"
echo "Run the daemon on its embedded defaults:  storage-proxy start-server"
echo "  or against the halfstack:                storage-proxy start-server --config halfstack.toml"
