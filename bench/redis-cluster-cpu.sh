#!/usr/bin/env bash
# Requests/s and CPU per request of each node of a fresh 3-node cluster,
# one redis-benchmark test after another.
#
#   bench/redis-cluster-cpu.sh BIN TEST [TEST ...]
#   e.g. bench/redis-cluster-cpu.sh /tmp/elastickv.after set incr lpush zadd
#   P=16 N=200000 bench/redis-cluster-cpu.sh /tmp/elastickv.after set lpop
#
# Starts a 3-node cluster (gRPC 127.0.0.1:25051-25053, Redis
# 127.0.0.1:26379-26381, one runtime thread per node, data under
# target/tmp), warms it with 100 000 pipelined SETs, then for each TEST runs
# `redis-benchmark -c 50 -r 100000 -n N -P P -t TEST` against node 1 (the
# leader; N default 50 000, P default 1) and prints requests/s, each
# node's CPU use over the run (% of one core) and its CPU time per request
# in µs (utime + stime from /proc/PID/stat; leader first). For A/B runs,
# copy the binaries out of target/ and alternate them.
set -euo pipefail
BIN=${1:?binary}
shift
N=${N:-50000}
P=${P:-1}
# shellcheck source=bench/cluster3.sh
. "$(dirname "$0")/cluster3.sh"
trap cluster_stop EXIT
cluster_start "$BIN"
pids=("${CLUSTER_PIDS[@]}")
ticks() { for p in "${pids[@]}"; do awk '{printf "%s ", $14 + $15}' "/proc/$p/stat"; done; }
redis-benchmark -p 26379 -c 50 -r 100000 -n 100000 -P 16 -t set -q >/dev/null 2>&1
for t in "$@"; do
  before=$(ticks)
  t0=$(date +%s.%N)
  rate=$(timeout 300 redis-benchmark -p 26379 -c 50 -r 100000 -n "$N" -P "$P" -t "$t" --csv 2>/dev/null |
    tail -1 | cut -d, -f2 | tr -d '"')
  t1=$(date +%s.%N)
  after=$(ticks)
  python3 - "$t" "$rate" "$t0" "$t1" "$N" "$(getconf CLK_TCK)" "$before" "$after" <<'EOF'
import sys
test, rate, t0, t1, n, hz, before, after = sys.argv[1:]
elapsed, n, hz = float(t1) - float(t0), int(n), int(hz)
used = [int(b) - int(a) for a, b in zip(before.split(), after.split())]
util = " ".join(f"{u / hz / elapsed * 100:.0f}%" for u in used)
per = " ".join(f"{u / hz * 1e6 / n:.1f}" for u in used)
print(f"{test}: {rate} requests/s; CPU (leader, followers) {util}; us per request {per}")
EOF
done
