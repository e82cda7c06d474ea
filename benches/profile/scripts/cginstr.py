#!/usr/bin/env python3
"""Per-instruction self cost (callgrind --dump-instr=yes) of the functions named, printed
beside their objdump disassembly, divided by a call count:

    cginstr.py FILE.cg BINARY CALLS 'fn name' ['fn name'...]
"""
import re, subprocess, sys
from collections import defaultdict

path, binary, calls, *wanted = sys.argv[1:]
calls = int(calls)
names = {}
positions = None
fn = None
last = [0, 0]
pending = False
cost = defaultdict(int)
for raw in open(path):
    l = raw.rstrip("\n")
    if l.startswith("positions:"):
        positions = l.split()[1:]
        continue
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", l)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3)
        if m.group(1) == "fn":
            fn = names[m.group(2)]
        continue
    if l.startswith("calls="):
        pending = True
        continue
    if not l or not (l[0].isdigit() or l[0] in "+-*"):
        continue
    t = l.split()
    k = len(positions)
    out = []
    for i, x in enumerate(t[:k]):
        p = last[i]
        out.append(p if x == "*" else (p + int(x, 0) if x[0] in "+-" else int(x, 0)))
    last = out
    c = int(t[k]) if len(t) > k else 0
    if pending:
        pending = False
        continue
    if fn in wanted:
        cost[out[0]] += c
syms = subprocess.run(["nm", "-C", binary], capture_output=True, text=True).stdout
for w in wanted:
    addrs = [int(l.split()[0], 16) for l in syms.splitlines() if l.endswith(" " + w)]
    for a in addrs:
        mine = [x for x in cost if a <= x < a + 0x4000]
        if not mine:
            continue
        end = max(mine) + 16
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", binary, f"--start-address={a}", f"--stop-address={end}"], capture_output=True, text=True).stdout
        total = 0
        print(f"== {w} at {a:#x}")
        for l in dis.splitlines():
            mm = re.match(r"\s*([0-9a-f]+):\s*(.*)", l)
            if not mm:
                continue
            x = int(mm.group(1), 16)
            c = cost.get(x, 0)
            total += c
            if c:
                print(f"{c / calls:6.2f}  {mm.group(1)}: {mm.group(2)}")
        print(f"   total {total / calls:.2f} per call")
