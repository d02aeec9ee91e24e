#!/usr/bin/env python3
"""Latency of optimistic transactions (WATCH, MULTI, one command, EXEC).

    bench/redis-watch-exec.py [--iterations N] [--nodes 1|3] [--node-args "FLAGS"]

Starts an Elastickv cluster (release build, or ELASTICKV_BIN), then one
client on node 1 runs N rounds of `WATCH k` + `MULTI` + `GET k` + `EXEC`
(reads) and N rounds with `INCR k` (writes), each round waiting for its
replies, and prints rounds/s and the p50/p99 of a round (three round trips:
WATCH, the MULTI/command/EXEC pipeline, and its replies). Plain sockets, no
client library.
"""
import argparse
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("redis_compare",
                                               os.path.join(ROOT, "bench", "redis-compare.py"))
rc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rc)


def command(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = str(a).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise SystemExit(f"error reply: {rest.decode()}")
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        return rest

    def send(self, *cmds):
        self.sock.sendall(b"".join(cmds))


def rounds(conn, n, cmd):
    lat = []
    aborted = 0
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        conn.send(command("WATCH", "k"))
        conn.reply()
        conn.send(command("MULTI"), command(*cmd), command("EXEC"))
        conn.reply()
        conn.reply()
        if conn.reply() is None:
            aborted += 1
        lat.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - start
    lat.sort()
    return n / elapsed, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], aborted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--node-args", default="")
    a = ap.parse_args()
    binary = os.environ.get("ELASTICKV_BIN", os.path.join(ROOT, "target", "release", "elastickv"))
    tmp = tempfile.mkdtemp(prefix="elastickv-watch-bench.")
    target = rc.elastickv_target(f"Elastickv {a.nodes} node(s)", binary, a.nodes, tmp,
                                 a.node_args.split())
    target.start()
    try:
        conn = Conn(target.port)
        conn.send(command("SET", "k", "1"))
        conn.reply()
        print(f"`bench/redis-watch-exec.py --iterations {a.iterations} --nodes {a.nodes}` "
              f"({os.path.basename(binary)})")
        for name, cmd in [("reads (GET)", ("GET", "k")), ("writes (INCR)", ("INCR", "k"))]:
            rate, p50, p99, aborted = rounds(conn, a.iterations, cmd)
            print(f"  {name}: {rate:.0f} rounds/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                  f"{aborted} aborted")
    finally:
        target.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
