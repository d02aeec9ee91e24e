#!/usr/bin/env bash
# Interleaved A/B of node builds on a 3-node cluster under redis-benchmark.
#
#   bench/redis-cluster-ab.sh ROUNDS BIN [BIN ...]
#   e.g. bench/redis-cluster-ab.sh 3 /tmp/elastickv.before /tmp/elastickv.after
#
# For each round and each binary (copy the binaries out of target/ first, so
# a rebuild cannot swap them mid-run): starts a fresh 3-node cluster (gRPC
# 127.0.0.1:25051-25053, Redis 127.0.0.1:26379-26381, one runtime thread
# per node, data under target/tmp), warms it with 100 000 pipelined SETs,
# then runs `redis-benchmark -c 50 -r 100000 -t set` against node 1 (the
# leader) with `-P 16` (N16 requests, default 300 000) and unpipelined
# (N1, default 60 000). Prints requests/s, p50 and p99 (ms), and the CPU
# time (utime + stime) the leader and one follower spent per pipelined SET:
# CPU per request varies less than throughput on a shared machine.
set -euo pipefail
ROUNDS=${1:?rounds}
shift
N16=${N16:-300000}
N1=${N1:-60000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT/target/tmp"
MEMBERS=n1=127.0.0.1:25051,n2=127.0.0.1:25052,n3=127.0.0.1:25053
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
csv() { cut -d, -f2,5,7 | tr -d '"' | tr ',' ' '; }
pids=()
dir=
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  pids=()
  [ -n "$dir" ] && rm -rf "$dir"
  dir=
}
trap stop EXIT
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    while ss -ltn | grep -qE ':2505[123] |:26379 |:2638[01] '; do sleep 0.5; done
    dir=$(mktemp -d "$ROOT/target/tmp/ab.XXXX")
    for i in 1 2 3; do
      extra=()
      [ "$i" = 1 ] && extra=(--raftBootstrap)
      RUST_LOG=warn "$bin" --raftId "n$i" --address "127.0.0.1:2505$i" \
        --raftDataDir "$dir/n$i" --raftBootstrapMembers "$MEMBERS" \
        --redisAddress "127.0.0.1:$((26378 + i))" --workerThreads 1 "${extra[@]}" \
        >"$dir/n$i.log" 2>&1 &
      pids+=($!)
    done
    for port in 26379 26380 26381; do
      for _ in $(seq 150); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.2
      done
    done
    rb() { timeout 300 redis-benchmark -p 26379 -c 50 -r 100000 -t set "$@"; }
    rb -n 100000 -P 16 -q >/dev/null 2>&1
    l0=$(ticks "${pids[0]}") f0=$(ticks "${pids[1]}")
    p16=$(rb -n "$N16" -P 16 --csv 2>/dev/null | tail -1 | csv)
    l1=$(ticks "${pids[0]}") f1=$(ticks "${pids[1]}")
    p1=$(rb -n "$N1" --csv 2>/dev/null | tail -1 | csv)
    hz=$(getconf CLK_TCK)
    per() { python3 -c "print(round(($2 - $1) * 1e6 / $hz / $N16, 1))"; }
    echo "$(basename "$bin") round $round: -P 16 SET/s p50 p99: $p16;" \
      "CPU per SET: leader $(per "$l0" "$l1") us, follower $(per "$f0" "$f1") us;" \
      "unpipelined SET/s p50 p99: $p1"
    stop
  done
done
