#!/usr/bin/env bash
# Set up storage-proxy on this machine, saying what each step does and how long it took.
#
#   scripts/install-dev.sh [--dev] [--halfstack] [--venv DIR] [--no-venv]
#
#   (default)    a virtual environment in ./.venv (made, or reused when it is there) with
#                storage-proxy installed in editable mode: enough to run the daemon, the web UI
#                and the CLI. A stock Debian/Ubuntu Python is "externally managed" (PEP 668) and
#                refuses pip installs; a venv works everywhere, so the next commands are the same
#                on every machine.
#   --dev        also the test and lint tools (the dev extras; scripts/test.sh installs them too)
#   --halfstack  also etcd and Redis (apt) and the local halfstack under ./.halfstack, started
#                (implies --dev: its S3 server comes from the dev extras)
#   --venv DIR   the virtual environment to make or reuse (default: .venv)
#   --no-venv    install into $PYTHON itself (refused when it is externally managed)
#
# PYTHON names the interpreter (default: python3; it must be 3.11 or newer). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv"
USE_VENV=1
EXTRAS=""
HALFSTACK=0
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --dev) EXTRAS="[dev]" ;;
    --halfstack) HALFSTACK=1; EXTRAS="[dev]" ;;
    --venv) VENV="${2:?--venv needs a directory}"; shift ;;
    --no-venv) USE_VENV=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-dev: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive
START=$SECONDS
STEP_START=$SECONDS
step() { STEP_START=$SECONDS; printf '\n==> %s\n' "$*"; }
done_step() { printf '    done in %ss\n' "$((SECONDS - STEP_START))"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  step "apt-get install $* (system packages)"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  done_step
}

step "checking $PYTHON"
command -v "$PYTHON" >/dev/null || { echo "install-dev: $PYTHON not found; set PYTHON=…" >&2; exit 1; }
read -r PYVER MANAGED < <("$PYTHON" - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
print("%d.%d" % sys.version_info[:2], int(os.path.exists(marker) and not in_venv))
PY
)
case "$PYVER" in 3.1[1-9]|3.[2-9][0-9]) ;; *)
  echo "install-dev: storage-proxy needs Python >= 3.11; $PYTHON is $PYVER" >&2; exit 1 ;;
esac
echo "    Python $PYVER ($(command -v "$PYTHON"))$([ "$MANAGED" = 1 ] && echo ", externally managed (PEP 668)")"
done_step

if ((USE_VENV)); then
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    step "reusing the virtual environment $VENV"
  else
    step "making a virtual environment in $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      echo "    $PYTHON cannot make one (no ensurepip): installing python3-venv"
      rm -rf "$VENV"
      apt_install "python${PYVER}-venv"
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  PY="$VENV/bin/python"
  BIN="$VENV/bin/"
  done_step
else
  if [ "$MANAGED" = 1 ]; then
    echo "install-dev: $PYTHON is externally managed: pip may not install into it. Drop --no-venv." >&2
    exit 1
  fi
  PY="$PYTHON"
  BIN=""
fi

step "installing storage-proxy$EXTRAS in editable mode (pip, from the package index)"
set +e
"$PY" -m pip install --progress-bar off --editable ".$EXTRAS" 2>&1 \
  | grep -E --line-buffered '^(Collecting|Successfully installed|ERROR)'
status=${PIPESTATUS[0]}
set -e
((status == 0)) || { echo "install-dev: pip failed ($status); see above" >&2; exit 1; }
done_step

if ((HALFSTACK)); then
  need=()
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v etcdctl >/dev/null || need+=(etcd-client)
  command -v redis-server >/dev/null || need+=(redis-server)
  ((${#need[@]})) && apt_install "${need[@]}"
  step "starting the halfstack (etcd, Redis, S3 under ./.halfstack)"
  PYTHON="$PY" bash scripts/halfstack.sh up
  done_step
fi

printf '\nstorage-proxy is installed (%ss in all). Next:\n\n' "$((SECONDS - START))"
if [ -n "$BIN" ]; then
  echo "  . $VENV/bin/activate                  # storage-proxy and storage-proxy-client on PATH"
fi
echo "  storage-proxy start-server              # the daemon on its embedded defaults"
((HALFSTACK)) && echo "  storage-proxy start-server --config halfstack.toml   # ...or against the halfstack"
echo
echo "and in another shell$([ -n "$BIN" ] && echo " (after . $VENV/bin/activate)"):"
echo
echo "  storage-proxy token issue --user alice --link   # a sign-in link for the web UI (/ui/)"
echo "  open http://127.0.0.1:6021/docs                 # the client API's reference"
echo
echo "README.md, \"Quick start\", makes a vfolder and moves files in and out with curl, the CLI"
echo "and the browser."
