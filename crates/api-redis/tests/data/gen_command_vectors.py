#!/usr/bin/env python3
"""Records command golden vectors from a real redis-server 7.0.

Development-time tool, not run by the test suite. Usage:

    redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no &
    python3 gen_command_vectors.py 6399 < command_corpus.txt > command_vectors.txt

Each output line is `MODE<TAB>COMMAND LINE<TAB>HEX OF THE RAW REPLY`, MODE
being `=` (compare exactly), `s` (compare the top-level array as a
multiset) or `i` (ignore the reply). The Rust test `command_vectors`
replays the lines against Elastickv's Redis layer over an in-memory store.
"""
import socket
import sys


def split(line):
    """Shell-like split: double quotes group, \\xHH and \\" escapes inside."""
    out, cur, i, quoted, have = [], bytearray(), 0, False, False
    while i < len(line):
        c = line[i]
        if quoted:
            if c == "\\" and i + 1 < len(line):
                n = line[i + 1]
                if n == "x":
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                cur += n.encode()
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                cur += c.encode()
        elif c == '"':
            quoted, have = True, True
        elif c == " ":
            if cur or have:
                out.append(bytes(cur))
            cur, have = bytearray(), False
        else:
            cur += c.encode()
        i += 1
    if cur or have:
        out.append(bytes(cur))
    return out


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t in b"+-:_,#(":
        return line
    if t in b"$=!":
        n = int(rest)
        return line if n < 0 else line + f.read(n + 2)
    if t in b"*~>%|":
        n = int(rest)
        if n < 0:
            return line
        if t in b"%|":
            n *= 2
        out = line
        for _ in range(n):
            out += read_reply(f)
        return out
    raise ValueError(f"bad reply line {line!r}")


def main():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    f = s.makefile("rb")
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        mode = "="
        if line.startswith("@sorted "):
            mode, line = "s", line[len("@sorted "):]
        elif line.startswith("@ignore "):
            mode, line = "i", line[len("@ignore "):]
        s.sendall(encode(split(line)))
        reply = read_reply(f)
        print(f"{mode}\t{line}\t{reply.hex()}")


main()
