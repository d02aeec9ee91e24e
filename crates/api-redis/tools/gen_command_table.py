#!/usr/bin/env python3
"""Generates src/command_table_data.rs from a live redis-server 7.0.

Development-time tool (not run by the build or the tests). The data behind
COMMAND / COMMAND INFO / COMMAND DOCS and arity checking is taken verbatim
from Redis 7.0's own replies, read over RESP3 so maps, sets and arrays keep
their exact types:

    redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no &
    git -C <redis checkout> show 7.4.0:src/commands/hexpire.json ...  # see HASH_74
    python3 tools/gen_command_table.py 6399 <dir with the 7.4.0 hash-field-expiry JSON files> \
        > src/command_table_data.rs

The hash-field expiration commands (HEXPIRE family) do not exist in 7.0;
their entries are built from Redis 7.4.0's src/commands/*.json with the same
rules Redis uses to build its replies (server.c addReplyCommandInfo /
addReplyCommandDocs, implicit ACL categories from flags and group).
"""
import json
import os
import socket
import sys

# ---------------------------------------------------------------- RESP3


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, *args):
        args = [a.encode() if isinstance(a, str) else a for a in args]
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = chr(line[0]), line[1:].decode()
        if t == "+":
            return ("status", rest)
        if t == "-":
            raise RuntimeError(rest)
        if t == ":":
            return ("int", int(rest))
        if t == "$":
            n = int(rest)
            return ("bulk", self.f.read(n + 2)[:-2].decode())
        if t == "=":
            n = int(rest)
            return ("bulk", self.f.read(n + 2)[4:-2].decode())
        if t == "_":
            return ("null",)
        if t in "*~":
            return ("array" if t == "*" else "set", [self.read() for _ in range(int(rest))])
        if t == "%":
            items = []
            for _ in range(int(rest)):
                k = self.read()
                items.append((k[1], self.read()))
            return ("map", items)
        raise RuntimeError(line)


# ------------------------------------------------------------- selection

WHOLE_GROUPS = {"string", "bitmap", "hash", "list", "set", "sorted-set", "hyperloglog", "stream", "pubsub", "transactions"}
EXCLUDED = set()
EXTRA = [
    # generic (keyspace)
    "del", "unlink", "exists", "type", "rename", "renamenx", "copy", "keys", "scan", "randomkey",
    "expire", "pexpire", "expireat", "pexpireat", "persist", "ttl", "pttl", "expiretime", "pexpiretime",
    "object", "touch", "move", "swapdb", "sort", "sort_ro", "dump", "restore", "memory",
    # server
    "dbsize", "flushdb", "flushall", "command", "info", "time", "config",
    # scripting
    "eval", "evalsha", "eval_ro", "evalsha_ro", "script", "function", "fcall", "fcall_ro",
    # connection
    "ping", "echo", "quit", "reset", "hello", "auth", "client", "select",
]
# Containers list only the subcommands the server implements; `help` is
# left out everywhere.
SUBCOMMANDS = {
    "client": {"id", "info", "list", "setname", "getname", "reply", "unblock"},
    "command": {"count", "info", "docs", "list"},
    "config": {"get", "set", "resetstat", "rewrite"},
    "script": {"load", "exists", "flush", "kill"},
    "function": {"delete", "dump", "flush", "kill", "list", "load", "restore", "stats"},
    "memory": {"usage"},
    "object": {"encoding", "freq", "idletime", "refcount"},
}


def sub_allowed(parent, sub):
    short = sub.split("|", 1)[1]
    if short == "help":
        return False
    allowed = SUBCOMMANDS.get(parent)
    return allowed is None or short in allowed


# --------------------------------------------------- 7.4 JSON conversion

HASH_74 = ["hexpire", "hpexpire", "hexpireat", "hpexpireat", "httl", "hpttl", "hexpiretime", "hpexpiretime", "hpersist"]
FLAG_NAMES = {"WRITE": "write", "READONLY": "readonly", "DENYOOM": "denyoom", "FAST": "fast"}


def convert_arg(a):
    items = [("name", ("bulk", a["name"])), ("type", ("bulk", a["type"]))]
    if "key_spec_index" in a:
        items.append(("key_spec_index", ("int", a["key_spec_index"])))
    if "token" in a:
        items.append(("token", ("bulk", a["token"])))
    for opt in ("summary", "since", "deprecated_since"):
        if opt in a:
            items.append((opt, ("bulk", a[opt])))
    flags = [f for f in ("optional", "multiple", "multiple_token") if a.get(f)]
    if flags:
        items.append(("flags", ("set", [("status", f) for f in flags])))
    if a["type"] in ("oneof", "block"):
        items.append(("arguments", ("array", [convert_arg(x) for x in a["arguments"]])))
    return ("map", items)


def convert_74(path):
    d = json.load(open(path))
    (name, v), = d.items()
    name = name.lower()
    flags = [FLAG_NAMES[f] for f in v["command_flags"]]
    acl = []
    # setImplicitACLCategories: write -> @write, readonly -> @read, fast or not -> @fast/@slow,
    # plus the explicit categories, in Redis's category table order.
    order = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
             "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
             "connection", "transaction", "scripting"]
    cats = {c.lower() for c in v.get("acl_categories", [])}
    if "write" in flags:
        cats.add("write")
    if "readonly" in flags:
        cats.add("read")
    cats.add("fast" if "fast" in flags else "slow")
    acl = ["@" + c for c in order if c in cats]
    key_specs = []
    for ks in v["key_specs"]:
        items = []
        if "notes" in ks:
            items.append(("notes", ("bulk", ks["notes"])))
        items.append(("flags", ("set", [("status", f if f in ("RO", "RW", "OW", "RM") else f.lower()) for f in ks["flags"]])))
        pos = ks["begin_search"]["index"]["pos"]
        items.append(("begin_search", ("map", [("type", ("bulk", "index")), ("spec", ("map", [("index", ("int", pos))]))])))
        r = ks["find_keys"]["range"]
        items.append(("find_keys", ("map", [("type", ("bulk", "range")), ("spec", ("map", [
            ("lastkey", ("int", r["lastkey"])), ("keystep", ("int", r["step"])), ("limit", ("int", r["limit"]))]))])))
        key_specs.append(("map", items))
    info = ("array", [("bulk", name), ("int", v["arity"]), ("set", [("status", f) for f in flags]),
                      ("int", 1), ("int", 1), ("int", 1), ("set", [("status", c) for c in acl]),
                      ("set", [("bulk", t.lower()) for t in v.get("command_tips", [])]),
                      ("set", key_specs), ("set", [])])
    docs = [("summary", ("bulk", v["summary"])), ("since", ("bulk", v["since"])),
            ("group", ("bulk", v["group"].replace("_", "-"))),
            ("complexity", ("bulk", v["complexity"]))]
    if v.get("history"):
        docs.append(("history", ("set", [("array", [("bulk", a), ("bulk", b)]) for a, b in v["history"]])))
    docs.append(("arguments", ("array", [convert_arg(a) for a in v["arguments"]])))
    return name, info, ("map", docs)


# ------------------------------------------------------------- emitting

def rs_str(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("\\u{%x}" % ord(ch))
    out.append('"')
    return "".join(out)


def rs_val(v):
    t = v[0]
    if t == "bulk":
        return f"B({rs_str(v[1])})"
    if t == "status":
        return f"S({rs_str(v[1])})"
    if t == "int":
        return f"I({v[1]})"
    if t == "null":
        return "N"
    if t == "array":
        return "A(&[" + ", ".join(rs_val(x) for x in v[1]) + "])"
    if t == "set":
        return "T(&[" + ", ".join(rs_val(x) for x in v[1]) + "])"
    if t == "map":
        return "M(&[" + ", ".join(f"({rs_str(k)}, {rs_val(x)})" for k, x in v[1]) + "])"
    raise ValueError(t)


FLAG_BITS = ["write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking", "loading",
             "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth", "may_replicate", "sentinel",
             "only_sentinel", "no_mandatory_keys", "protected", "module_getkeys", "module_no_cluster", "no_async_loading",
             "no_multi", "movablekeys", "allow_busy", "module_getchannels"]


def emit_spec(info, docs, subs, indent):
    _, items = info
    name = items[0][1]
    arity = items[1][1]
    flags = [f[1] for f in items[2][1]]
    bits = []
    for f in flags:
        if f not in FLAG_BITS:
            raise ValueError(f"unknown flag {f}")
        bits.append("CmdFlags::" + f.upper())
    first, last, step = items[3][1], items[4][1], items[5][1]
    acl = [c[1] for c in items[6][1]]
    group = dict(docs[1])["group"][1]
    pad = " " * indent
    out = [f"{pad}CommandSpec {{\n"]
    out.append(f"{pad}    name: {rs_str(name)},\n")
    out.append(f"{pad}    arity: {arity},\n")
    out.append(f"{pad}    flags: CmdFlags::from_bits({' | '.join(b + '.bits()' for b in bits) or '0'}),\n")
    out.append(f"{pad}    flag_names: &[{', '.join(rs_str(f) for f in flags)}],\n")
    out.append(f"{pad}    first_key: {first},\n    {pad}last_key: {last},\n    {pad}key_step: {step},\n")
    out.append(f"{pad}    acl_categories: &[{', '.join(rs_str(c) for c in acl)}],\n")
    out.append(f"{pad}    group: {rs_str(group)},\n")
    out.append(f"{pad}    tips: {rs_val(items[7])},\n")
    out.append(f"{pad}    key_specs: {rs_val(items[8])},\n")
    doc_items = [(k, v) for k, v in docs[1] if k != "subcommands"]
    out.append(f"{pad}    docs: &[{', '.join(f'({rs_str(k)}, {rs_val(v)})' for k, v in doc_items)}],\n")
    if subs:
        out.append(f"{pad}    subcommands: &[\n")
        for s in subs:
            out.append(emit_spec(*s, indent + 8))
        out.append(f"{pad}    ],\n")
    else:
        out.append(f"{pad}    subcommands: &[],\n")
    out.append(f"{pad}}},\n")
    return "".join(out)


def main():
    c = Conn(int(sys.argv[1]))
    json_dir = sys.argv[2]
    c.call("HELLO", "3")
    all_docs = dict(c.call("COMMAND", "DOCS")[1])
    names = sorted(n for n, d in all_docs.items()
                   if (dict(d[1])["group"][1] in WHOLE_GROUPS and n not in EXCLUDED) or n in EXTRA)
    missing = [n for n in EXTRA if n not in all_docs]
    if missing:
        raise SystemExit(f"missing commands: {missing}")
    specs = []
    for n in names:
        info = c.call("COMMAND", "INFO", n)[1][0]
        docs = all_docs[n]
        subs = []
        doc_subs = dict(dict(docs[1]).get("subcommands", ("map", []))[1])
        for sub_info in info[1][9][1]:
            sub_name = sub_info[1][0][1]
            if sub_allowed(n, sub_name):
                subs.append((sub_info, doc_subs[sub_name], []))
        subs.sort(key=lambda s: s[0][1][0][1])
        specs.append((n, info, docs, subs))
    for n in HASH_74:
        name, info, docs = convert_74(os.path.join(json_dir, f"{n}.json"))
        specs.append((name, info, docs, []))
    specs.sort(key=lambda s: s[0])
    server = c.call("INFO", "server")[1]
    ver = [l for l in server.splitlines() if l.startswith("redis_version:")][0].split(":")[1]
    print("//! Generated by tools/gen_command_table.py from redis-server " + ver + "'s own COMMAND INFO /")
    print("//! COMMAND DOCS replies (read over RESP3), plus the hash-field expiration commands built from")
    print("//! Redis 7.4.0's src/commands/*.json. Do not edit by hand; regenerate. Redis is BSD-3-Clause")
    print("//! licensed (Copyright (c) 2006-2022, Salvatore Sanfilippo and contributors).")
    print()
    print("use super::{CmdFlags, CommandSpec, Val::{A, B, I, M, S, T}};")
    print()
    print(f"/// Every command the server supports, sorted by name ({len(specs)} entries).")
    print("pub(super) static COMMANDS: &[CommandSpec] = &[")
    for n, info, docs, subs in specs:
        sys.stdout.write(emit_spec(info, docs, subs, 4))
    print("];")


if __name__ == "__main__":
    main()
