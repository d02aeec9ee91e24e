# Sourced by the redis-cluster-*.sh benchmarks: one 3-node cluster on fixed
# loopback ports (gRPC 127.0.0.1:25051-25053, Redis 127.0.0.1:26379-26381),
# one runtime thread per node, data and logs under target/tmp.
#
#   cluster_start BIN   waits for the ports to be free, starts the nodes
#                       (PIDs in CLUSTER_PIDS, node 1 bootstraps and leads)
#                       and waits until every node answers PING
#   cluster_stop        kills the nodes, waits for them, removes the data
CLUSTER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_MEMBERS=n1=127.0.0.1:25051,n2=127.0.0.1:25052,n3=127.0.0.1:25053
CLUSTER_PIDS=()
CLUSTER_DIR=

cluster_start() {
  local bin=$1 i port extra
  mkdir -p "$CLUSTER_ROOT/target/tmp"
  while ss -ltn | grep -qE ':2505[123] |:26379 |:2638[01] '; do sleep 0.5; done
  CLUSTER_DIR=$(mktemp -d "$CLUSTER_ROOT/target/tmp/cluster.XXXX")
  for i in 1 2 3; do
    extra=()
    [ "$i" = 1 ] && extra=(--raftBootstrap)
    RUST_LOG=warn "$bin" --raftId "n$i" --address "127.0.0.1:2505$i" \
      --raftDataDir "$CLUSTER_DIR/n$i" --raftBootstrapMembers "$CLUSTER_MEMBERS" \
      --redisAddress "127.0.0.1:$((26378 + i))" --workerThreads 1 "${extra[@]}" \
      >"$CLUSTER_DIR/n$i.log" 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  for port in 26379 26380 26381; do
    for _ in $(seq 150); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.2
    done
  done
}

cluster_stop() {
  local p
  for p in "${CLUSTER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${CLUSTER_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  CLUSTER_PIDS=()
  [ -n "$CLUSTER_DIR" ] && rm -rf "$CLUSTER_DIR"
  CLUSTER_DIR=
}
