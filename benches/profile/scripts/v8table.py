#!/usr/bin/env python3
"""Markdown tables from v8summary.mjs --json lines (one per profile): v8table.py SUMMARY.jsonl"""
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    m = re.search(r"/([\w-]+)\.(\w+)\.cpuprofile$", r["file"])
    by[(m.group(1), m.group(2))] = r
def short(n):
    n = re.sub(r"^_+", "", n)
    n = n.replace("wasm_alloc::", "").replace("dlmalloc::dlmalloc::", "").replace("wasmalloc::", "")
    return n[:60]
for w in ["random-actions", "churn", "json", "vec-growth"]:
    print(f"#### {w}\n")
    print("| allocator | sampled ms | allocator fns | of which memory-growing fns | workload fns | mem* fns | allocator ms vs dlmalloc | top allocator functions (self %) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    base = None
    for a in ["dlmalloc", "wasm_alloc", "wasmalloc"]:
        r = by.get((w, a))
        if not r:
            continue
        c = r["cats"]
        grow = c.get("memory.grow (allocator fn that grows)", 0)
        alloc = c.get("allocator", 0) + grow
        ams = alloc * r["ms"]
        if a == "dlmalloc":
            base = ams
        tops = [f"{short(n)} {100*s:.1f}" for n, s in r["top"] if re.search(r"wasm_alloc::|dlmalloc::|wasmalloc::|rust_(alloc|dealloc|realloc)", n)][:5]
        print(f"| {a.replace('_','-')} | {r['ms']:.0f} | {100*alloc:.1f} % | {100*grow:.1f} % | {100*c.get('workload',0):.1f} % | {100*c.get('mem* (copy/fill)',0):.1f} % | {ams/base:.2f}x | {'; '.join(tops)} |")
    print()
