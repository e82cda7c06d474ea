#!/usr/bin/env python3
"""Reads a callgrind output file (Ir only; --dump-instr=yes or not) and prints, as JSON:
per function (after inlining: callgrind's `fn=`), its self cost, the calls into it and
their inclusive cost; per caller->callee edge, calls and inclusive cost; per source line
(file:line, for inlined code the inlined file), its self cost.

    cgparse.py FILE.cg > FILE.json
"""
import json, re, sys
from collections import defaultdict


def main(path):
    names = {"fn": {}, "fl": {}}
    positions = ["line"]
    fn = None
    fl = fi = None
    last = []
    self_cost = defaultdict(int)
    line_cost = defaultdict(int)
    calls_in = defaultdict(int)
    incl_in = defaultdict(int)
    edges = defaultdict(lambda: [0, 0])
    pending = None  # (callee, count) waiting for its cost line
    cfn = None

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        key, val = m.group(1), m.group(2)
        if val is not None:
            names[kind][key] = val
        return names[kind][key]

    def parse_pos(tokens):
        nonlocal last
        out = []
        for i, t in enumerate(tokens):
            prev = last[i] if i < len(last) else 0
            if t == "*":
                v = prev
            elif t[0] in "+-":
                v = prev + int(t, 0)
            else:
                v = int(t, 0)
            out.append(v)
        last = out
        return out

    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line or line[0] == "#":
                continue
            if line.startswith("positions:"):
                positions = line.split()[1:]
                continue
            if line.startswith(("events:", "version:", "creator:", "pid:", "cmd:", "part:", "desc:", "summary:", "totals:", "thread:", "ob=", "cob=")):
                continue
            if line.startswith("fl="):
                fl = fi = name("fl", line[3:])
                continue
            if line.startswith(("fi=", "fe=")):
                fi = name("fl", line[3:])
                continue
            if line.startswith("fn="):
                fn = name("fn", line[3:])
                fi = fl
                continue
            if line.startswith("cfn="):
                cfn = name("fn", line[4:])
                continue
            if line.startswith(("cfl=", "cfi=")):
                name("fl", line[4:])
                continue
            if line.startswith("calls="):
                parts = line[6:].split()
                pending = (cfn, int(parts[0]))
                continue
            if line.startswith("jump=") or line.startswith("jcnd="):
                continue
            tokens = line.split()
            if not tokens or not (tokens[0][0].isdigit() or tokens[0][0] in "+-*"):
                continue
            k = len(positions)
            pos = parse_pos(tokens[:k])
            cost = int(tokens[k]) if len(tokens) > k else 0
            if pending is not None:
                callee, count = pending
                calls_in[callee] += count
                incl_in[callee] += cost
                e = edges[(fn, callee)]
                e[0] += count
                e[1] += cost
                pending = None
            else:
                self_cost[fn] += cost
                ln = pos[positions.index("line")] if "line" in positions else 0
                line_cost[f"{fi}:{ln}"] += cost
    total = sum(self_cost.values())
    out = {
        "total": total,
        "functions": {
            f: {"self": self_cost.get(f, 0), "calls": calls_in.get(f, 0), "incl_in": incl_in.get(f, 0)}
            for f in set(self_cost) | set(calls_in)
        },
        "edges": [[a, b, c, i] for (a, b), (c, i) in edges.items()],
        "lines": {k: v for k, v in line_cost.items() if v},
    }
    json.dump(out, sys.stdout)


main(sys.argv[1])
