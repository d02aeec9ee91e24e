#!/usr/bin/env bash
# Node CPU per request on one Elastickv node under redis-benchmark.
#
#   bench/redis-cpu-per-request.sh [BIN] [TEST] [PIPELINE] [REQUESTS]
#   e.g. bench/redis-cpu-per-request.sh target/release/elastickv get 16 400000
#   RANGE=100000000 NODE_ARGS="--workerThreads 1" bench/redis-cpu-per-request.sh BIN set 16 800000
#
# Starts a one-node cluster (gRPC 127.0.0.1:15051, Redis 127.0.0.1:16379, data
# in a temporary directory), writes 200 000 SETs over 100 000 keys to warm it,
# then runs `redis-benchmark -c 50 -r RANGE -P PIPELINE -t TEST -n REQUESTS`
# (RANGE: environment, default 100000; NODE_ARGS: extra node flags) and
# prints requests/s, p50/p99/max latency and the node's CPU time (utime +
# stime from /proc/PID/stat) per request. CPU per request varies less than throughput on
# a shared machine, so it is the steadier number for A/B comparisons.
set -euo pipefail
BIN=${1:-target/release/elastickv}
TEST=${2:-set}
PIPE=${3:-16}
N=${4:-400000}
RANGE=${RANGE:-100000}
DIR=$(mktemp -d)
RUST_LOG=warn "$BIN" --raftId n1 --address 127.0.0.1:15051 --raftDataDir "$DIR/n1" \
  --raftBootstrapMembers n1=127.0.0.1:15051 --redisAddress 127.0.0.1:16379 \
  --raftBootstrap ${NODE_ARGS:-} >"$DIR/node.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 150); do
  redis-cli -p 16379 ping 2>/dev/null | grep -q PONG && break
  sleep 0.2
done
redis-benchmark -p 16379 -c 50 -n 200000 -r 100000 -P 16 -t set -q >/dev/null 2>&1
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
t0=$(ticks)
out=$(redis-benchmark -p 16379 -c 50 -n "$N" -r "$RANGE" -P "$PIPE" -t "$TEST" --csv 2>/dev/null | tail -1)
t1=$(ticks)
hz=$(getconf CLK_TCK)
field() { echo "$out" | cut -d, -f"$1" | tr -d '"'; }
echo "$TEST -P $PIPE: $(field 2) requests/s, p50 $(field 5) ms, p99 $(field 7) ms, max $(field 8) ms, node CPU $(python3 -c "print(round(($t1 - $t0) * 1e6 / $hz / $N, 2))") us per request"
