// Self time by function from a .cpuprofile (node --cpu-prof), counting only samples taken
// inside the workload export (a `wl_*` frame on the stack), grouped into categories.
//   node v8summary.mjs FILE.cpuprofile [top] [--json]
import { readFileSync } from 'node:fs';
const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const [file, topN = 15] = argv.filter((a) => a !== '--json');
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children || []) parent.set(c, n.id);
const fname = (n) => n.callFrame.functionName || n.callFrame.url || '(anonymous)';
// Rust v0 / legacy mangled names, shortened to their path.
const pretty = (s) => {
  let m = s.match(/^_ZN(.*)E$/);
  if (m) {
    const parts = [];
    let r = m[1];
    while (r.length && /^\d/.test(r)) {
      const len = parseInt(r, 10);
      r = r.slice(String(len).length);
      parts.push(r.slice(0, len));
      r = r.slice(len);
    }
    if (parts.length && /^h[0-9a-f]{16}$/.test(parts[parts.length - 1])) parts.pop();
    return parts.join('::').replace(/\$LT\$/g, '<').replace(/\$GT\$/g, '>').replace(/\$u7b\$/g, '{').replace(/\$u7d\$/g, '}').replace(/\$C\$/g, ',').replace(/\$RF\$/g, '&').replace(/\$u20\$/g, ' ').replace(/\.\./g, '::');
  }
  m = s.match(/___rustc\d+(__\w+)$/);
  if (m) return m[1];
  return s;
};
const inWorkload = new Map();
const underWl = (id) => {
  if (inWorkload.has(id)) return inWorkload.get(id);
  const n = byId.get(id);
  const r = /^wl_/.test(fname(n)) || (parent.has(id) && underWl(parent.get(id)));
  inWorkload.set(id, r);
  return r;
};
const self = new Map();
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i + 1] ?? 0;
  const id = prof.samples[i];
  if (!underWl(id)) continue;
  let name = pretty(fname(byId.get(id)));
  // A native frame V8 does not name ((program)) is charged to the wasm function that called it.
  if (name.startsWith('(')) name = `${name} in ${pretty(fname(byId.get(parent.get(id))))}`;
  self.set(name, (self.get(name) || 0) + dt);
  total += dt;
}
const category = (name) => {
  if (/^\(garbage/.test(name)) return 'v8 gc';
  if (/^wl_|^bench_workloads::/.test(name)) return 'workload';
  if (/memcpy|memmove|memset|memcmp|memory_copy|memory\.copy/.test(name)) return 'mem* (copy/fill)';
  if (/grow_memory|grow_and_alloc|page::extend|sys_alloc|WasmMemoryGrow|\(program\)/i.test(name)) return 'memory.grow (allocator fn that grows)';
  if (/dlmalloc|wasm_alloc|wasmalloc|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_|__rg_|GlobalAlloc|Track/.test(name)) return 'allocator';
  return 'workload';
};
const cats = new Map();
for (const [name, t] of self) cats.set(category(name), (cats.get(category(name)) || 0) + t);
const pct = (t) => ((100 * t) / total).toFixed(1).padStart(5) + ' %';
if (JSON_OUT) {
  console.log(JSON.stringify({ file, ms: total / 1000, cats: Object.fromEntries([...cats].map(([c, t]) => [c, t / total])), top: [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topN)).map(([n, t]) => [n, t / total]) }));
} else {
  console.log(`# ${file}: ${(total / 1000).toFixed(0)} ms sampled inside the workload`);
  for (const [c, t] of [...cats].sort((a, b) => b[1] - a[1])) console.log(`  ${pct(t)}  [${c}]`);
  console.log('  top functions (self):');
  for (const [name, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topN)))
    console.log(`  ${pct(t)}  ${category(name).padEnd(22)} ${name.slice(0, 150)}`);
}
