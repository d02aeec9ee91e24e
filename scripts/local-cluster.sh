#!/usr/bin/env bash
# Starts (or stops) a 3-node Elastickv cluster of real processes on
# loopback, in the background, for scripts and manual testing.
#
# Usage:
#   scripts/local-cluster.sh start DIR [BASE_PORT]
#   scripts/local-cluster.sh stop DIR
#
# Node i (1..3) listens for gRPC on BASE_PORT+i-1 and for Redis on
# BASE_PORT+10+i-1 (default BASE_PORT 26000: gRPC 26000-26002, Redis
# 26010-26012; below the ephemeral port range, so outgoing connections
# never hold them). Data and logs go to DIR/n1..n3 and DIR/n*.log, pids to
# DIR/pids. Two groups: keys below "m" in group 1, the rest (and every
# Redis key) in group 2. `start` returns once every node answers a Redis
# write. ELASTICKV_BIN selects the binary (default: the debug build in
# CARGO_TARGET_DIR or ./target, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: $0 start|stop DIR [BASE_PORT]}
dir=${2:?usage: $0 start|stop DIR [BASE_PORT]}

stop() {
  [ -f "$dir/pids" ] || return 0
  read -r -a pids <"$dir/pids"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Graceful shutdown first, kill -9 after 10 s so nothing hangs.
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

case "$cmd" in
stop)
  stop
  exit 0
  ;;
start) ;;
*)
  echo "unknown command $cmd (start|stop)" >&2
  exit 2
  ;;
esac

base=${3:-26000}
target=${CARGO_TARGET_DIR:-$(pwd)/target}
bin=${ELASTICKV_BIN:-$target/debug/elastickv}
if [ ! -x "$bin" ]; then
  cargo build --bin elastickv
fi
mkdir -p "$dir"
stop
members="n1=127.0.0.1:$base,n2=127.0.0.1:$((base + 1)),n3=127.0.0.1:$((base + 2))"
pids=()
for n in 1 2 3; do
  extra=()
  [ "$n" = 1 ] && extra=(--raftBootstrap)
  RUST_LOG=${RUST_LOG:-info,openraft=warn} "$bin" \
    --raftId "n$n" --address "127.0.0.1:$((base + n - 1))" --raftDataDir "$dir/n$n" \
    --raftBootstrapMembers "$members" --raftGroups 1,2 --shardRanges ':m=1,m:=2' \
    --redisAddress "127.0.0.1:$((base + 9 + n))" "${extra[@]}" >>"$dir/n$n.log" 2>&1 &
  pids+=("$!")
done
echo "${pids[*]}" >"$dir/pids"

deadline=$((SECONDS + 60))
for n in 1 2 3; do
  port=$((base + 9 + n))
  until [ "$(redis-cli -p "$port" set __cluster_ready__ 1 2>/dev/null)" = OK ]; do
    if [ $SECONDS -gt $deadline ]; then
      echo "node n$n (redis port $port) not ready after 60 s; see $dir/n$n.log" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
done
redis-cli -p "$((base + 10))" del __cluster_ready__ >/dev/null
echo "cluster up: redis ports $((base + 10))-$((base + 12)), gRPC $base-$((base + 2)), data $dir"
