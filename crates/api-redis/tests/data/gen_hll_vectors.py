#!/usr/bin/env python3
"""Records HyperLogLog golden vectors from a real redis-server.

Development-time tool, not run by the test suite. Usage:

    redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no &
    python3 gen_hll_vectors.py 6399 > hll_vectors.txt

Every line of the output is `<command> -> <reply>` where arguments are
`gen:PREFIX:START:COUNT` (expands to PREFIX<START>..PREFIX<START+COUNT-1>),
`hex:HH..` (raw bytes) or plain words, and GET replies are hex. The Rust
test `hll_golden` replays the script through `hll.rs` and checks every
reply and every stored byte.
"""
import socket
import sys


def expand(arg):
    if arg.startswith("gen:"):
        _, prefix, start, count = arg.split(":")
        return [f"{prefix}{i}".encode() for i in range(int(start), int(start) + int(count))]
    if arg.startswith("hex:"):
        return [bytes.fromhex(arg[4:])]
    return [arg.encode()]


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return (t + rest).decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        raise RuntimeError(line)


def main():
    port = int(sys.argv[1])
    c = Conn(port)
    script = [
        "FLUSHALL",
        "CONFIG SET hll-sparse-max-bytes 3000",
        # 1, 10, 1000 and 100000 elements
        "PFADD one gen:e:0:1", "GET one", "PFCOUNT one", "GET one",
        "PFADD ten gen:e:0:10", "GET ten", "PFCOUNT ten", "GET ten",
        "PFADD k1000 gen:e:0:1000", "GET k1000", "PFCOUNT k1000",
        "PFADD k100000 gen:e:0:100000", "GET k100000", "PFCOUNT k100000", "GET k100000",
        # re-adding known elements changes nothing
        "PFADD ten gen:e:0:10", "GET ten",
        # PFADD with no elements on a missing key creates it
        "PFADD empty", "GET empty", "PFCOUNT empty", "GET empty",
        # sparse -> dense promotion happens while adding one at a time
        *[f"PFADD grow gen:g:{i*100}:100" for i in range(30)],
        "GET grow", "PFCOUNT grow",
        # binary elements
        "PFADD bin hex:00 hex:ff hex:00ff00 hex: hex:0d0a", "GET bin", "PFCOUNT bin",
        # multi-key count and merges (sparse + sparse, sparse + dense)
        "PFADD m1 gen:x:0:200", "PFADD m2 gen:x:100:200",
        "PFCOUNT m1 m2", "PFCOUNT m1 missing m2",
        "PFMERGE mdst m1 m2", "GET mdst", "PFCOUNT mdst",
        "PFMERGE mdst2 m1 k100000", "GET mdst2", "PFCOUNT mdst2",
        "PFMERGE m1 m2", "GET m1",
        "PFMERGE nothing missing", "GET nothing",
        # a lower hll-sparse-max-bytes promotes earlier
        "CONFIG SET hll-sparse-max-bytes 200",
        "PFADD small gen:s:0:300", "GET small", "PFCOUNT small",
        "CONFIG SET hll-sparse-max-bytes 3000",
        # counts at many sizes
        *[f"PFADD c{n} gen:c:0:{n}" for n in (2, 5, 50, 200, 500, 2000, 5000, 20000, 50000)],
        *[f"PFCOUNT c{n}" for n in (2, 5, 50, 200, 500, 2000, 5000, 20000, 50000)],
    ]
    print("# HyperLogLog golden vectors recorded from redis-server 7.0.15 (Debian bookworm package")
    print("# 5:7.0.15-1~deb12u10) on 127.0.0.1 by tests/data/gen_hll_vectors.py; see its docstring.")
    for cmd in script:
        words = cmd.split(" ")
        args = []
        for w in words:
            args.extend(expand(w))
        reply = c.call(args)
        if isinstance(reply, bytes):
            reply = "hex:" + reply.hex()
        print(f"{cmd} -> {reply}")


if __name__ == "__main__":
    main()
