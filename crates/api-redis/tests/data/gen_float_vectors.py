#!/usr/bin/env python3
"""Records number-formatting golden vectors from a real redis-server.

Development-time tool, not run by the test suite:

    redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no &
    python3 gen_float_vectors.py 6399 > float_vectors.txt

Output lines are tab-separated:
  incr   <start value or -> <increment> <INCRBYFLOAT reply or error>
  score  <ZADD score argument> <ZSCORE reply or error>
  zincr  <start score> <increment> <ZINCRBY reply or error>
"""
import random
import socket
import sys


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, *args):
        args = [a if isinstance(a, bytes) else a.encode() for a in args]
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return (t + rest).decode()
        if t == b":":
            return rest.decode()
        if t == b"$":
            n = int(rest)
            return "(nil)" if n < 0 else self.f.read(n + 2)[:-2].decode()
        raise RuntimeError(line)


def main():
    c = Conn(int(sys.argv[1]))
    rnd = random.Random(42)
    incr_cases = [
        ("-", "10.5"), ("10.5", "0.1"), ("5.0e3", "2.0e2"), ("1", "-1"), ("0", "-0.0"),
        ("-", "0.000003814697265625"), ("-", "3.0e3"), ("-", "1e-20"), ("-", "1e20"),
        ("-", "123456789012345678901234567890"), ("1.1", "2.2"), ("0.1", "0.2"),
        ("-", "1.7976931348623157e308"), ("1.7976931348623157e308", "1.7976931348623157e308"),
        ("-", "inf"), ("-", "-inf"), ("-", "nan"), ("-", " 1"), ("-", "1 "), ("-", "abc"),
        ("-", "0x10"), ("-", "0x1.8p1"), ("-", "1e5000"), ("-", "1e-5000"), ("-", "1e4000"),
        ("-", "-0.5"), ("-", "-1e-17"), ("-", "9999999999999999999.5"), ("abc", "1"),
        ("-", "3.14159265358979323846264338327950288"), ("-", "+5"), ("-", "1."), ("-", ".5"),
    ]
    for _ in range(60):
        a = f"{rnd.uniform(-1e6, 1e6):.{rnd.randint(0, 12)}f}"
        b = f"{rnd.uniform(-1e3, 1e3):.{rnd.randint(0, 12)}f}"
        incr_cases.append((a, b))
    for _ in range(30):
        a = f"{rnd.uniform(-1, 1):.{rnd.randint(1, 20)}e}"
        b = f"{rnd.uniform(-1, 1):.{rnd.randint(1, 20)}e}"
        incr_cases.append((a, b))
    for start, incr in incr_cases:
        c.call("DEL", "f")
        if start != "-":
            c.call("SET", "f", start)
        print(f"incr\t{start}\t{incr}\t{c.call('INCRBYFLOAT', 'f', incr)}")
    score_cases = ["0", "-0", "1", "1.5", "0.1", "1e17", "1e16", "1e-5", "0.0001", "123456789012345.625",
                   "inf", "-inf", "+inf", "1e999", "nan", "0x10", "3.0000000000000004", "1e308", "5e-324",
                   "-2.5e-7", "100", "1e-300", "2.2250738585072014e-308"]
    for _ in range(80):
        score_cases.append(repr(rnd.uniform(-1e12, 1e12) * 10 ** rnd.randint(-20, 20)))
    for s in score_cases:
        c.call("DEL", "z")
        r = c.call("ZADD", "z", s, "m")
        if r.startswith("-"):
            print(f"score\t{s}\t{r}")
        else:
            print(f"score\t{s}\t{c.call('ZSCORE', 'z', 'm')}")
    for start, incr in [("1", "0.1"), ("inf", "-inf"), ("0.1", "0.2"), ("1e308", "1e308"), ("5", "abc")]:
        c.call("DEL", "z")
        c.call("ZADD", "z", start, "m")
        print(f"zincr\t{start}\t{incr}\t{c.call('ZINCRBY', 'z', incr, 'm')}")


if __name__ == "__main__":
    main()
