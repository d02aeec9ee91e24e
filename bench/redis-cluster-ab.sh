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
# shellcheck source=bench/cluster3.sh
. "$(dirname "$0")/cluster3.sh"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
csv() { cut -d, -f2,5,7 | tr -d '"' | tr ',' ' '; }
trap cluster_stop EXIT
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    cluster_start "$bin"
    pids=("${CLUSTER_PIDS[@]}")
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
    cluster_stop
  done
done
