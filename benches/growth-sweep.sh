#!/usr/bin/env bash
# The growth-step sweep behind the README's "Growing ahead" table. Builds wasm-alloc's
# workload module once per (GROW_AHEAD_SHIFT, GROW_AHEAD_MAX) setting of src/page.rs
# (restored afterwards), then runs them all in one interleaved runner run beside dlmalloc
# and talc, and prints the table. Needs the modules of one `cargo bench` run first
# (target/bench/manifest.json). Output: target/bench/growth-sweep/.
#   bash benches/growth-sweep.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
out=target/bench/growth-sweep
[ -f target/bench/manifest.json ] || { echo "run cargo bench first" >&2; exit 1; }
git diff --quiet src/page.rs || { echo "src/page.rs has local changes; commit or stash them" >&2; exit 1; }
trap 'git checkout -q src/page.rs' EXIT
mkdir -p $out/wasm
# shift max: memory grows ahead by size >> shift pages, at most max pages (0 = off).
configs=("3 0" "4 256" "3 256" "2 256" "3 1024" "3 64")
names=()
for c in "${configs[@]}"; do
  set -- $c
  sed -i "s/^const GROW_AHEAD_SHIFT: u32 = .*/const GROW_AHEAD_SHIFT: u32 = $1;/; s/^const GROW_AHEAD_MAX: usize = .*/const GROW_AHEAD_MAX: usize = $2;/" src/page.rs
  # If the constants' lines change, sed edits nothing and every setting builds the same module.
  for line in "const GROW_AHEAD_SHIFT: u32 = $1;" "const GROW_AHEAD_MAX: usize = $2;"; do
    grep -qxF "$line" src/page.rs || { echo "growth-sweep: no line '$line' in src/page.rs after the edit: update the sed patterns" >&2; exit 1; }
  done
  CARGO_ENCODED_RUSTFLAGS=-Clink-arg=--import-memory cargo build -q --profile wasm-bench \
    --target wasm32-unknown-unknown --target-dir target/bench -p wl-wasm-alloc
  name=$([ "$2" = 0 ] && echo "off" || echo "s$1-m$2")
  cp target/bench/wasm32-unknown-unknown/wasm-bench/wl_wasm_alloc.wasm $out/wasm/$name.wasm
  names+=("$name")
done
python3 - "$out" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
m = json.load(open('target/bench/manifest.json'))
keep = [a for a in m['allocators'] if a['name'] in ('dlmalloc', 'talc')]
for n in names:
    keep.append({'name': n, 'wasm': f'{out}/wasm/{n}.wasm'})
m.update(allocators=keep, sizes=[], out_dir=out)
json.dump(m, open(f'{out}/manifest.json', 'w'), indent=1)
PY
node --no-liftoff benches/runner/run.mjs --manifest $out/manifest.json \
  --only random-actions,vec-growth,churn,json,fragmentation --rounds "$rounds" --out $out
python3 - "$out" "${names[@]}" <<'PY'
import csv, math, sys
out, names = sys.argv[1], sys.argv[2:]
W = ['random-actions', 'vec-growth', 'churn', 'json', 'fragmentation']
d = {(r['workload'], r['allocator']): r for r in csv.DictReader(open(f'{out}/bench.csv'))}
def label(n):
    if n == 'off': return 'off (exact growth)'
    s, m = n[1:].split('-m')
    return f'1/{1 << int(s)} of memory, ≤ {int(m) // 16} MiB'
print('\n| grow ahead by | memory.grow calls | time vs dlmalloc | geomean | peak MiB |')
print('|---|---|---|---:|---|')
for n in names + ['dlmalloc', 'talc']:
    rs = [float(d[(w, n)]['ratio_to_dlmalloc']) for w in W]
    gm = math.exp(sum(map(math.log, rs)) / len(rs))
    calls = ' / '.join(d[(w, n)]['grow_calls'] for w in W) if n in names else '-'
    peak = ' / '.join('%.1f' % (int(d[(w, n)]['peak_bytes']) / 1048576) for w in W)
    print(f"| {label(n) if n in names else n} | {calls} | {' / '.join('%.2f' % r for r in rs)} | {gm:.2f}x | {peak} |")
print('\nColumns in workload order: ' + ', '.join(W) + '.')
PY
