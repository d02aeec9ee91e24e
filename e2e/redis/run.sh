#!/usr/bin/env bash
# End-to-end tests of the Redis front end with redis-py: starts a 3-node
# cluster of real `elastickv` processes on loopback, runs the pytest suite
# against all three nodes, and stops the cluster.
#
# Usage: e2e/redis/run.sh [pytest args...]
#   ELASTICKV_BIN   binary to run (default: <target dir>/debug/elastickv,
#                   built with cargo if missing)
#   KEEP_DATA=1     keep the cluster's data directory and logs
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${ELASTICKV_BIN:-$target/debug/elastickv}
if [ ! -x "$bin" ]; then
  echo "== building elastickv"
  cargo build --bin elastickv
fi

venv=$root/target/venv
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r e2e/redis/requirements.txt

data=$(mktemp -d "${TMPDIR:-/tmp}/elastickv-redis-e2e.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Graceful shutdown first; a node that has not exited after 10 s is
  # killed so the script never hangs.
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_DATA:-0}" = 1 ]; then echo "data and logs kept in $data"; else rm -rf "$data"; fi
}
trap cleanup EXIT

# Six free loopback ports (gRPC and Redis for each node).
read -r -a ports <<<"$(python3 "$root/scripts/free-ports" 6)"
members="n1=127.0.0.1:${ports[0]},n2=127.0.0.1:${ports[1]},n3=127.0.0.1:${ports[2]}"
redis_ports=()
for i in 0 1 2; do
  n=$((i + 1))
  grpc=${ports[$i]}
  redis=${ports[$((i + 3))]}
  redis_ports+=("$redis")
  extra=()
  [ "$n" = 1 ] && extra=(--raftBootstrap)
  RUST_LOG=${RUST_LOG:-info,openraft=warn} "$bin" \
    --raftId "n$n" --address "127.0.0.1:$grpc" --raftDataDir "$data/n$n" \
    --raftBootstrapMembers "$members" --raftGroups 1,2 --shardRanges ':m=1,m:=2' \
    --redisAddress "127.0.0.1:$redis" "${extra[@]}" >"$data/n$n.log" 2>&1 &
  pids+=("$!")
done

echo "== waiting for the cluster (redis ports ${redis_ports[*]})"
EKV_REDIS_PORTS=$(IFS=,; echo "${redis_ports[*]}") "$venv/bin/python" - <<'PY'
import os, sys, time
import redis
ports = [int(p) for p in os.environ["EKV_REDIS_PORTS"].split(",")]
deadline = time.time() + 60
for port in ports:
    while True:
        try:
            r = redis.Redis(port=port, socket_timeout=5)
            r.set("__e2e_ready__", "1")
            r.delete("__e2e_ready__")
            break
        except Exception as e:  # not listening yet, no leader yet
            if time.time() > deadline:
                sys.exit(f"node on port {port} not ready: {e}")
            time.sleep(0.2)
PY

echo "== pytest"
EKV_REDIS_PORTS=$(IFS=,; echo "${redis_ports[*]}") \
  "$venv/bin/python" -m pytest -q e2e/redis "$@"
