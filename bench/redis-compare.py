#!/usr/bin/env python3
"""Elastickv's Redis front end next to Debian's redis-server, in one run.

    bench/redis-compare.py [--requests N] [--clients C] [--out FILE]
                           [--node-threads T]      (runtime threads per node; default 1)
                           [--node-args "FLAGS"]   (extra flags for every node)

Runs `redis-benchmark -c C -n N -r 100000` for set, get, incr, lpush, lpop,
sadd, hset, zadd and lrange_100, unpipelined and with -P 16, against:

  * redis-server (no persistence)           -- the read reference
  * redis-server, appendfsync always        -- the durable write reference
  * Elastickv, one node (durable: every write fsynced through Raft)
  * Elastickv, 3-node cluster (durable, majority-replicated), clients on
    node 1

then the hot-key check: C clients INCR one key (no -r) versus SET on
distinct keys, and the final counter compared with the increments
redis-benchmark had acknowledged. Prints a markdown table (and writes it to
--out). Needs the release build (`cargo build --release --bin elastickv`,
or ELASTICKV_BIN) and redis-server / redis-benchmark (Debian's
redis-server and redis-tools packages; installed if missing).

Each node runs `--workerThreads T` (default 1, as `elastickv-bench`'s
`--node-threads`): the nodes and redis-benchmark share the machine, and on
two cores three nodes with a thread per core each oversubscribe it (0: the
node's own default, one thread per CPU).
"""
import argparse
import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TESTS = ["set", "get", "incr", "lpush", "lpop", "sadd", "hset", "zadd", "lrange_100"]
WRITES = {"set", "incr", "lpush", "lpop", "sadd", "hset", "zadd"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(n):
    """n free loopback ports (scripts/free-ports says how they are chosen)."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "free-ports"), str(n)],
                         check=True, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_ready(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["redis-cli", "-p", str(port), "set", "__ready__", "1"],
                           capture_output=True, text=True)
        if r.stdout.strip() == "OK":
            subprocess.run(["redis-cli", "-p", str(port), "del", "__ready__"], capture_output=True)
            return
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready")


def bench(port, tests, n, clients, pipeline, rand=True):
    cmd = ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(n),
           "-t", ",".join(tests), "--csv", "-P", str(pipeline)]
    if rand:
        cmd += ["-r", "100000"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for row in csv.reader(io.StringIO(out)):
        if not row or row[0] == "test":
            continue
        name = row[0].split(" ")[0].lower()
        if name.startswith("lrange_100"):
            name = "lrange_100"
        rows.setdefault(name, float(row[1]))
    return rows


class Target:
    def __init__(self, name, start, stop, port):
        self.name, self.start, self.stop, self.port = name, start, stop, port


def redis_target(name, port, data, extra):
    proc = {}

    def start():
        proc["p"] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--dir", data] + extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port)

    def stop():
        proc["p"].terminate()
        proc["p"].wait()

    return Target(name, start, stop, port)


def elastickv_target(name, binary, nodes, data, extra_args=()):
    ports = free_ports(nodes * 2)
    grpc, redis_ports = ports[:nodes], ports[nodes:]
    members = ",".join(f"n{i + 1}=127.0.0.1:{grpc[i]}" for i in range(nodes))
    procs = []

    def start():
        for i in range(nodes):
            args = [binary, "--raftId", f"n{i + 1}", "--address", f"127.0.0.1:{grpc[i]}",
                    "--raftDataDir", os.path.join(data, f"n{i + 1}"),
                    "--raftBootstrapMembers", members,
                    "--redisAddress", f"127.0.0.1:{redis_ports[i]}"]
            if i == 0:
                args.append("--raftBootstrap")
            args.extend(extra_args)
            log = open(os.path.join(data, f"n{i + 1}.log"), "ab")
            procs.append(subprocess.Popen(args, stdout=log, stderr=log,
                                          env=dict(os.environ, RUST_LOG="warn")))
        for p in redis_ports:
            wait_ready(p)

    def stop():
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()

    return Target(name, start, stop, redis_ports[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tests", default=",".join(TESTS),
                    help="comma-separated subset of the tests (for iterating)")
    ap.add_argument("--targets", default="redis,fsync,one,three",
                    help="comma-separated subset of redis,fsync,one,three (for iterating)")
    ap.add_argument("--no-hot", action="store_true", help="skip the hot-key check")
    ap.add_argument("--node-threads", type=int, default=1,
                    help="runtime threads per node (--workerThreads); 0: the node's default")
    ap.add_argument("--node-args", default="",
                    help="extra flags for every elastickv node (space-separated)")
    a = ap.parse_args()
    tests = [t for t in a.tests.split(",") if t]
    unknown = set(tests) - set(TESTS)
    if unknown:
        raise SystemExit(f"unknown tests: {sorted(unknown)}")
    wanted = set(a.targets.split(","))
    node_args = a.node_args.split()
    if a.node_threads > 0:
        node_args = ["--workerThreads", str(a.node_threads)] + node_args
    for tool in ["redis-server", "redis-benchmark", "redis-cli"]:
        if not shutil.which(tool):
            subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"],
                           check=True)
    binary = os.environ.get("ELASTICKV_BIN", os.path.join(ROOT, "target", "release", "elastickv"))
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--bin", "elastickv"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="elastickv-redis-bench.")
    p1, p2 = free_ports(2)
    targets = [
        ("redis", redis_target("redis-server", p1, tmp, ["--appendonly", "no"])),
        ("fsync", redis_target("redis-server fsync always", p2, tmp,
                               ["--appendonly", "yes", "--appendfsync", "always",
                                "--appendfilename", "bench.aof"])),
        ("one", elastickv_target("Elastickv 1 node", binary, 1, os.path.join(tmp, "one"),
                                 node_args)),
        ("three", elastickv_target("Elastickv 3 nodes", binary, 3, os.path.join(tmp, "three"),
                                   node_args)),
    ]
    targets = [t for key, t in targets if key in wanted]
    results = {}
    hot = {}
    try:
        for t in targets:
            os.makedirs(os.path.join(tmp, "one"), exist_ok=True)
            os.makedirs(os.path.join(tmp, "three"), exist_ok=True)
            print(f"== {t.name}", file=sys.stderr)
            t.start()
            try:
                for p in (1, 16):
                    subprocess.run(["redis-cli", "-p", str(t.port), "flushall"], capture_output=True)
                    results[(t.name, p)] = bench(t.port, tests, a.requests, a.clients, p)
                    print(f"   P={p}: {results[(t.name, p)]}", file=sys.stderr)
                if a.no_hot:
                    continue
                # Hot key: C clients INCR one key vs SET on distinct keys.
                subprocess.run(["redis-cli", "-p", str(t.port), "flushall"], capture_output=True)
                incr = bench(t.port, ["incr"], a.requests, a.clients, 1, rand=False)["incr"]
                final = subprocess.run(["redis-cli", "-p", str(t.port), "get", "counter:__rand_int__"],
                                       capture_output=True, text=True).stdout.strip()
                sets = bench(t.port, ["set"], a.requests, a.clients, 1)["set"]
                hot[t.name] = (incr, sets, final)
                print(f"   hot INCR {incr:.0f}/s, SET distinct {sets:.0f}/s, counter {final}", file=sys.stderr)
            finally:
                t.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = []
    cmd = f"bench/redis-compare.py --requests {a.requests} --clients {a.clients}"
    lines.append(f"`{cmd}` — redis-benchmark -c {a.clients} -n {a.requests} -r 100000, requests/s.")
    threads = a.node_threads if a.node_threads > 0 else "one per CPU"
    lines.append(f"Elastickv: durable (Raft log fsynced), {threads} runtime thread(s) per node, "
                 "clients on node 1. Ratios: reads against")
    lines.append("redis-server, writes against redis-server with appendfsync always (1 node: both against")
    lines.append("plain redis-server as the issue's single-node target asks).")
    lines.append("")
    for p in (1, 16):
        lines.append(f"**{'unpipelined' if p == 1 else 'pipelined -P 16'}**")
        lines.append("")
        lines.append("| test | redis-server | redis fsync always | Elastickv 1 node | % | Elastickv 3 nodes | % |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for test in tests:
            r = results.get(("redis-server", p), {}).get(test, 0)
            rf = results.get(("redis-server fsync always", p), {}).get(test, 0)
            e1 = results.get(("Elastickv 1 node", p), {}).get(test, 0)
            e3 = results.get(("Elastickv 3 nodes", p), {}).get(test, 0)
            ref3 = rf if test in WRITES else r
            pct1 = 100 * e1 / r if r else 0
            pct3 = 100 * e3 / ref3 if ref3 else 0
            lines.append(f"| {test} | {r:.0f} | {rf:.0f} | {e1:.0f} | {pct1:.0f} % | {e3:.0f} | {pct3:.0f} % |")
        lines.append("")
    lines.append(f"**hot key**: {a.clients} clients INCR one key vs SET on distinct keys (unpipelined)")
    lines.append("")
    lines.append("| target | INCR one key/s | SET distinct/s | ratio | final counter (expected {}) |".format(a.requests))
    lines.append("|---|---:|---:|---:|---:|")
    for name, (incr, sets, final) in hot.items():
        ratio = incr / sets if sets else 0
        lines.append(f"| {name} | {incr:.0f} | {sets:.0f} | {ratio:.2f} | {final} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
