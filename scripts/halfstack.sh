#!/usr/bin/env bash
# The local "halfstack": etcd, Redis and an S3 server (moto) for development, all bound to
# 127.0.0.1, state under ./.halfstack of the checkout.  Idempotent.
#   scripts/halfstack.sh up | down | status
set -euo pipefail
cd "$(dirname "$0")/.."
HS="${HALFSTACK_DIR:-$PWD/.halfstack}"
ETCD_PORT="${HALFSTACK_ETCD_PORT:-8121}"
ETCD_PEER_PORT="${HALFSTACK_ETCD_PEER_PORT:-8122}"
REDIS_PORT="${HALFSTACK_REDIS_PORT:-8111}"
S3_PORT="${HALFSTACK_S3_PORT:-8131}"
PYTHON="${PYTHON:-python3}"

running() { [ -f "$HS/$1.pid" ] && kill -0 "$(cat "$HS/$1.pid")" 2>/dev/null; }

wait_port() {  # name port
  for _ in $(seq 1 100); do
    (echo >"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "halfstack: $1 did not open 127.0.0.1:$2; see $HS/logs/$1.log" >&2
  return 1
}

start() {  # name port command...
  local name=$1 port=$2
  shift 2
  if running "$name"; then
    echo "$name: already running (pid $(cat "$HS/$name.pid"), 127.0.0.1:$port)"
    return 0
  fi
  setsid "$@" >"$HS/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$HS/$name.pid"
  wait_port "$name" "$port"
  echo "$name: started (pid $(cat "$HS/$name.pid"), 127.0.0.1:$port)"
}

up() {
  mkdir -p "$HS/logs" "$HS/etcd" "$HS/redis"
  start etcd "$ETCD_PORT" etcd --name halfstack --data-dir "$HS/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "halfstack=http://127.0.0.1:$ETCD_PEER_PORT"
  start redis "$REDIS_PORT" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$HS/redis" --save 60 1 --appendonly no --daemonize no --protected-mode yes
  start s3 "$S3_PORT" "$PYTHON" -m moto.server -H 127.0.0.1 -p "$S3_PORT"
}

down() {
  for name in s3 redis etcd; do
    if running "$name"; then
      kill "$(cat "$HS/$name.pid")"
      for _ in $(seq 1 50); do running "$name" || break; sleep 0.1; done
      running "$name" && kill -9 "$(cat "$HS/$name.pid")"
      echo "$name: stopped"
    fi
    rm -f "$HS/$name.pid"
  done
}

status() {
  local rc=0
  for pair in "etcd:$ETCD_PORT" "redis:$REDIS_PORT" "s3:$S3_PORT"; do
    name=${pair%%:*} port=${pair#*:}
    if running "$name"; then
      echo "$name: running (pid $(cat "$HS/$name.pid"), 127.0.0.1:$port)"
    else
      echo "$name: stopped"
      rc=3
    fi
  done
  return $rc
}

case "${1:-status}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
