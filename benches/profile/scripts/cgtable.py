#!/usr/bin/env python3
"""Per-workload allocator figures from cgparse.py's JSON and the harness's output.

    cgtable.py DIR [DIR...]     (each DIR holds <workload>.json and <workload>.txt from cg.sh)
"""
import json, os, re, sys

WORKLOADS = ["random-actions", "small-churn", "churn", "json", "vec-growth", "strings", "markdown"]


def edge(d, caller_re, callee_re):
    c = i = 0
    for a, b, n, cost in d["edges"]:
        if re.search(caller_re, a or "") and re.search(callee_re, b or ""):
            c += n
            i += cost
    return c, i


def fn(d, name_re):
    calls = incl = self_ = 0
    for f, v in d["functions"].items():
        if re.search(name_re, f):
            calls += v["calls"]
            incl += v["incl_in"]
            self_ += v["self"]
    return calls, incl, self_


def row(dirname, w):
    d = json.load(open(os.path.join(dirname, w + ".json")))
    txt = open(os.path.join(dirname, w + ".txt")).read()
    m = re.search(r"ops (\d+) alloc (\d+) alloc_zeroed (\d+) dealloc (\d+) realloc (\d+) realloc_moved (\d+)", txt)
    ops, na, nz, nd, nr, nm = map(int, m.groups())
    r = {"workload": w, "total": d["total"], "ops": ops, "alloc": na + nz, "dealloc": nd, "realloc": nr, "moved": nm}
    _, a_incl, _ = fn(d, r"^prof_alloc$")
    _, z_incl, _ = fn(d, r"^prof_alloc_zeroed$")
    _, d_incl, _ = fn(d, r"^prof_dealloc$")
    _, r_incl, _ = fn(d, r"^prof_realloc$")
    # The copy of a moving realloc: memcpy called from inside prof_realloc (directly or not).
    copy = sum(cost for a, b, n, cost in d["edges"] if re.search(r"memcpy|memmove", b or "") and re.search(r"prof_realloc|Lock<T>::with|Locked|dlmalloc|realloc", a or ""))
    # Zeroing of grown pages (Region::grow's write_bytes, the host's stand-in for memory.grow).
    zero = sum(cost for a, b, n, cost in d["edges"] if re.search(r"memset", b or "") and re.search(r"grow_memory|PageMap|Region|prof_|Lock<T>::with|dlmalloc|mmap|sys_alloc", a or ""))
    alloc_all = a_incl + z_incl + d_incl + r_incl
    r.update(
        alloc_ir=alloc_all, copy_ir=copy, zero_ir=zero,
        alloc_per_call=(a_incl + z_incl) / max(1, na + nz), dealloc_per_call=d_incl / max(1, nd),
        realloc_per_call=r_incl / max(1, nr), realloc_nocopy_per_call=(r_incl - copy) / nr if nr else 0,
        per_op=alloc_all / ops, per_op_nocopy=(alloc_all - copy - zero) / ops,
        share=alloc_all / d["total"],
    )
    for key, pat in [("refill", r"ClassHeap<M>::refill$"), ("retire", r"SizeClasses::retire$"), ("page_alloc", r"PageMap::alloc$"),
                     ("page_release", r"PageMap::release$"), ("grow", r"PageMap::grow_memory$"), ("alloc_run", r"alloc_run$"), ("dealloc_run", r"dealloc_run$")]:
        c, i, s = fn(d, pat)
        r[key] = c
        r[key + "_per_call"] = i / c if c else 0
    # Self cost of each function in the allocator, after inlining.
    top = sorted(((v["self"], f) for f, v in d["functions"].items()
                  if re.search(r"wasm_alloc::|dlmalloc|^prof_|memcpy|memset|memmove", f)), reverse=True)
    r["top"] = [(f, s, s / ops) for s, f in top[:8]]
    return r


for dirname in sys.argv[1:]:
    print(f"## {dirname}")
    print("| workload | ops | allocs | deallocs | reallocs (moved) | alloc Ir/op | excl. copy+zeroing | share of program Ir | alloc incl/call | dealloc incl/call | realloc incl/call | realloc excl. copy | refill (Ir/call) | retire | PageMap::alloc (Ir/call) | grows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for w in WORKLOADS:
        if not os.path.exists(os.path.join(dirname, w + ".json")):
            continue
        r = row(dirname, w)
        rows.append(r)
        print(f"| {w} | {r['ops']:,} | {r['alloc']:,} | {r['dealloc']:,} | {r['realloc']:,} ({100*r['moved']/max(1,r['realloc']):.1f} %) | {r['per_op']:.1f} | {r['per_op_nocopy']:.1f} | {100*r['share']:.1f} % | {r['alloc_per_call']:.1f} | {r['dealloc_per_call']:.1f} | {r['realloc_per_call']:.1f} | {r['realloc_nocopy_per_call']:.1f} | {r['refill']:,} ({r['refill_per_call']:.0f}) | {r['retire']:,} | {r['page_alloc']:,} ({r['page_alloc_per_call']:.0f}) | {r['grow']} |")
    print()
    for r in rows:
        print(f"- {r['workload']}: copy {r['copy_ir']:,} Ir, zeroing {r['zero_ir']:,} Ir; top self: " + "; ".join(f"{f.split('::')[-1] if '::' in f else f} {s/r['ops']:.1f}/op" for f, s, _ in r["top"]))
    print()
