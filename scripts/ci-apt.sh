#!/usr/bin/env bash
# Install (quietly, idempotently) the Debian packages the tests need: a single-node Ceph for the
# CephFS backend and, with radosgw, the real S3 server (Ceph RGW) the s3 tests run against,
# xfsprogs for the XFS backend, curl for the client checks, chromium for the web UI's tests
# (Playwright drives Debian's build), python3-venv for the quick start on the system Python.
# Packages already installed are skipped; nothing is done when all are present.
# Usage: scripts/ci-apt.sh [extra packages...]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(ceph-mon ceph-osd ceph-mds ceph-mgr ceph-fuse ceph-common radosgw fuse attr uuid-runtime
  bc xfsprogs curl coreutils openssl etcd-server etcd-client redis-server chromium python3-venv "$@")

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "ci-apt: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
