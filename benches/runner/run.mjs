#!/usr/bin/env node
// Allocator benchmark runner (Node/V8, no npm dependencies).
//
//   node benches/runner/run.mjs --manifest target/bench/manifest.json [--quick]
//
// The manifest is written by benches/compare.rs (`cargo bench`): one wasm module per
// allocator (same workloads, different #[global_allocator]) and the size-probe results.
// Each workload runs in a fresh instance inside a fresh worker thread (so a hung peer can
// be terminated), which is terminated, and its exit awaited, before the next run starts;
// allocators interleaved, each round's order (per workload) shuffled by a seeded RNG.
// wasm-alloc runs twice (a second copy of its module, `wasm-alloc (A/A)`): the spread of
// the two is the noise. Reported: the median time, its ratio to dlmalloc, ns per operation
// for the per-operation workloads, the A/A spread, peak memory (memory.buffer.byteLength at the end;
// wasm memory never shrinks), wasm-alloc's own counters, heap efficiency, the small-program
// footprint (memory after one fixed live set), code size. Progress (elapsed, estimated
// time left) goes to stderr. Writes a table to stdout and CSV + SVG into the output directory.

import { readFileSync, writeFileSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

// ------------------------------------------------------------------------------------
// Worker: instantiate, call one workload, report.
if (!isMainThread) {
  const { module, fn, args, minPages, maxPages } = workerData;
  const imports = {};
  let memory = null;
  if (minPages !== null) {
    const desc = { initial: minPages };
    if (maxPages) desc.maximum = Math.max(maxPages, minPages);
    memory = new WebAssembly.Memory(desc);
    imports.env = { memory };
  } else if (maxPages) {
    parentPort.postMessage({ fail: 'module exports its memory (not built with --import-memory): cannot cap it' });
    process.exit(0);
  }
  const inst = new WebAssembly.Instance(module, imports);
  const ex = inst.exports;
  memory ??= ex.memory;
  ex.bench_init();
  let ret, err = null;
  const t0 = performance.now();
  try {
    ret = ex[fn](...args);
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  const out = { ms, bytes: memory.buffer.byteLength, nulls: ex.bench_nulls(), nullSize: ex.bench_null_size() >>> 0 };
  out.heapBase = ex.__heap_base ? ex.__heap_base.value >>> 0 : null;
  if (fn === 'wl_heap_eff' && ex.bench_he_first) out.first = ex.bench_he_first() >>> 0;
  if (fn.startsWith('wl_op_') && ex.bench_ops) out.ops = ex.bench_ops() >>> 0;
  if (err) {
    const len = ex.bench_err_len() >>> 0;
    const msg = len ? Buffer.from(memory.buffer, ex.bench_err_ptr() >>> 0, len).toString('utf8') : '';
    let reason;
    if (msg) reason = 'panic: ' + msg.replace(/\s+/g, ' ');
    else if (out.nulls) reason = `out of memory: null for ${out.nullSize} B, then trap`;
    else reason = 'trap: ' + String(err.message || err);
    out.fail = reason;
  } else {
    out.ret = typeof ret === 'number' ? (fn === 'wl_heap_eff' ? ret : ret >>> 0) : ret;
  }
  if (ex.bench_stat_grow_calls) {
    try {
      out.stats = {
        grow_calls: ex.bench_stat_grow_calls() >>> 0,
        pages_obtained: ex.bench_stat_pages_obtained() >>> 0,
        pages_free: ex.bench_stat_pages_free() >>> 0,
      };
    } catch (e) {
      out.stats = null;
    }
  }
  parentPort.postMessage(out);
  process.exit(0);
}

// ------------------------------------------------------------------------------------
// Main thread. V8 compiles every function with TurboFan (--no-liftoff), so no allocator
// is measured partly in baseline code, and does so when the module is compiled
// (--no-wasm-lazy-compilation: V8 11 compiles lazily by default, at a function's first
// call, which put compile time into the first round's runs); re-exec with the flags if
// they are missing.
const V8_FLAGS = ['--no-liftoff', '--no-wasm-lazy-compilation'];
if (!V8_FLAGS.every((f) => process.execArgv.includes(f))) {
  const r = spawnSync(process.execPath, [...V8_FLAGS, ...process.execArgv.filter((f) => !V8_FLAGS.includes(f)), SELF, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const QUICK = argv.includes('--quick') || /^(1|true|yes)$/i.test(process.env.BENCH_QUICK || '');
const manifestPath = opt('--manifest', 'target/bench/manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const ROUNDS = Number(opt('--rounds', QUICK ? 5 : 7));
const TIMEOUT_MS = Number(opt('--timeout', QUICK ? 5 : 20)) * 1000; // heap-efficiency: 3x
const ONLY = opt('--only', null); // comma-separated workload ids
// Each round's allocator order (per workload) is a seeded shuffle: position effects
// (what ran just before, the machine warming up) average out instead of repeating.
const ORDER_SEED = Number(opt('--order-seed', 1));
// Only these allocators (comma-separated names), for before/after runs: dlmalloc (the
// reference of every ratio) is always kept, and so are wasm-alloc's A/A copy and baseline
// when wasm-alloc is.
const ALLOCATORS = opt('--allocators', null);
// Partial runs (--only, --allocators, or fewer than 5 rounds) never overwrite the committed
// full results.
const PARTIAL = !!ONLY || !!ALLOCATORS || (!QUICK && ROUNDS < 5);
// A baseline (BENCH_BASELINE / --baseline in compare.rs): wasm-alloc at another revision as
// one more allocator, `wasm-alloc@<short sha>`; its results go to target/bench/baseline-run/.
const BASELINE = manifest.baseline || null;
const outDir = opt('--out', PARTIAL ? (BASELINE ? 'target/bench/baseline-run/partial' : 'target/bench/partial') : manifest.out_dir || (QUICK ? 'target/bench/quick' : 'benches/results'));

// Workloads: export name, arguments (seed first), quick arguments. See benches/README.md.
const SEED = 0x5eed;
const HE_CAP_MIB = 128; // talc's arena is 128 MiB too
const WORKLOADS = [
  { id: 'random-actions', fn: 'wl_random_actions', full: [SEED, 20], quick: [SEED, 6],
    note: "talc's wasm-perf parameters: 100k actions/iteration" },
  { id: 'vec-growth', fn: 'wl_vec_growth', full: [SEED + 1, 32, 3], quick: [SEED + 1, 16, 2],
    note: 'Vec<u32>/String/64 Vec<u8> grown by push' },
  { id: 'churn', fn: 'wl_churn', full: [SEED + 2, 2_000_000], quick: [SEED + 2, 600_000],
    note: 'BTreeMap/HashMap/String, 8..256 B values' },
  { id: 'json', fn: 'wl_json', full: [SEED + 3, 4096, 3], quick: [SEED + 3, 2048, 2],
    note: 'serde_json parse + serialize, 4 MiB document' },
  { id: 'markdown', fn: 'wl_markdown', full: [SEED + 6, 1024, 3], quick: [SEED + 6, 512, 2],
    note: 'pulldown-cmark: a Markdown document of KiB rendered to HTML twice per repetition (from the parser; from owned events with heading ids)' },
  { id: 'fragmentation', fn: 'wl_frag', full: [SEED + 4, 400_000, 2], quick: [SEED + 4, 200_000, 2],
    note: '48 B blocks, free every other, 80 B blocks, big blocks' },
  { id: 'size-drift', fn: 'wl_size_drift', full: [SEED + 7, 20, 16], quick: [SEED + 7, 12, 8],
    note: 'phases, MiB live per phase; bands 16..64 B, 200..600 B, 2..8 KiB, 20..60 KiB in turn; 1 block in 32 kept 1..4 more phases' },
  { id: 'ui', fn: 'wl_ui', full: [SEED + 9, 160, 100], quick: [SEED + 9, 80, 100],
    note: 'UI-like frames: widgets of format!/push_str strings and Vec<small struct>, random lifetimes on a 64-frame wheel, every live widget rendered, lines joined and hashed' },
  { id: 'regex', fn: 'wl_regex', full: [SEED + 10, 32, 3], quick: [SEED + 10, 16, 2],
    note: 'regex: 9 patterns and a RegexSet compiled per repetition over a generated log of KiB; matches counted, key=value captured to Strings, e-mails replaced' },
  // Per operation: ns/op = time / operations (the module reports its count); memory capped.
  { id: 'op-pair-16', fn: 'wl_op_pair', full: [SEED + 11, 16, 500_000], quick: [SEED + 11, 16, 300_000], perop: true,
    what: 'alloc+free, 16 B', note: 'alloc+free pairs of 16 B, FIFO ring of 64 live blocks' },
  { id: 'op-pair-100', fn: 'wl_op_pair', full: [SEED + 12, 100, 500_000], quick: [SEED + 12, 100, 300_000], perop: true,
    what: 'alloc+free, 100 B', note: 'the same, 100 B' },
  { id: 'op-pair-1k', fn: 'wl_op_pair', full: [SEED + 13, 1024, 500_000], quick: [SEED + 13, 1024, 300_000], perop: true,
    what: 'alloc+free, 1 KiB', note: 'the same, 1 KiB' },
  { id: 'op-pair-10k', fn: 'wl_op_pair', full: [SEED + 14, 10240, 250_000], quick: [SEED + 14, 10240, 150_000], perop: true,
    what: 'alloc+free, 10 KiB', note: 'the same, 10 KiB' },
  { id: 'op-shuffle', fn: 'wl_op_shuffle', full: [SEED + 15, 1024, 250], quick: [SEED + 15, 1024, 150], perop: true,
    what: 'alloc, free shuffled (8..1024 B)', note: 'batches of blocks of 8..1024 B, freed in a shuffled order' },
  { id: 'op-realloc', fn: 'wl_op_realloc', full: [SEED + 16, 3000], quick: [SEED + 16, 2000], perop: true,
    what: 'realloc 8 B..1 MiB (x1.5..2)', note: 'realloc chains from 8 B to 1 MiB, 1.5x..2x a step, then free' },
  { id: 'heap-efficiency', fn: 'wl_heap_eff', full: [SEED + 5, 300], quick: [SEED + 5, 50], eff: true,
    note: `talc's heap efficiency, memory capped at ${HE_CAP_MIB} MiB` },
  { id: 'footprint', fn: 'wl_footprint', full: [SEED + 8], quick: [SEED + 8], once: true,
    note: '300 live blocks of 40 sizes, 8 B..64 KiB (1.40 MiB); memory at the end' },
].filter((w) => !ONLY || ONLY.split(',').includes(w.id));
const TIMED = WORKLOADS.filter((w) => !w.eff && !w.once && !w.perop);
const PEROP = WORKLOADS.filter((w) => w.perop);
const ROUNDED = WORKLOADS.filter((w) => !w.eff && !w.once); // run in the interleaved rounds
const PEROP_CAP_PAGES = 1024; // 64 MiB: far above what the ring, batches and chains need (< 4 MiB)
const ONCE = WORKLOADS.filter((w) => w.once);
const BASE = 'dlmalloc';
const RA_ACTIONS = 100000; // per iteration of random-actions (RA_ACTIONS in workloads)

// Minimum pages of an imported memory (section 2 of the binary), or null if none.
function memoryImportMin(bytes) {
  let p = 8;
  const u32 = () => {
    let r = 0, s = 0, b;
    do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80);
    return r >>> 0;
  };
  const name = () => { const n = u32(); p += n; };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = u32();
    const end = p + size;
    if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        name(); name();
        const kind = bytes[p++];
        if (kind === 0) u32();
        else if (kind === 1) { p++; const f = u32(); u32(); if (f & 1) u32(); }
        else if (kind === 2) { const f = u32(); const min = u32(); if (f & 1) u32(); return min; }
        else if (kind === 3) { p += 2; }
        else return null;
      }
      return null;
    }
    p = end;
  }
  return null;
}

function runOnce(alloc, w, args, maxPages) {
  const timeoutMs = w.eff ? TIMEOUT_MS * 3 : TIMEOUT_MS;
  return new Promise((resolve) => {
    const worker = new Worker(SELF, {
      workerData: { module: alloc.module, fn: w.fn, args, minPages: alloc.minPages, maxPages },
    });
    let done = false;
    // A long run still says something every 30 s.
    const t0 = Date.now();
    const beat = setInterval(() => log(`    ... ${w.id} / ${alloc.name} still running (${((Date.now() - t0) / 1000).toFixed(0)} s; ${elapsed()} elapsed)`), 30000);
    // The first outcome counts; the run is over only when the worker's thread has
    // stopped (terminate() resolves on its exit), so no worker, and no teardown of its
    // isolate and memory, overlaps the next run.
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(beat);
      worker.terminate().then(() => resolve(r), () => resolve(r));
    };
    const timer = setTimeout(() => finish({ fail: `timeout (> ${timeoutMs / 1000} s)` }), timeoutMs);
    worker.on('message', finish);
    worker.on('error', (e) => finish({ fail: 'worker error: ' + (e.message || e) }));
    worker.on('exit', () => finish({ fail: 'worker exited without a result' }));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mib = (b) => b / 1048576;

// ------------------------------------------------------------------------------------
// Compiled up front and in parallel (each module fully, with TurboFan: see V8_FLAGS); a
// worker receives the compiled module.
const kept = ALLOCATORS && new Set([...ALLOCATORS.split(','), 'dlmalloc']);
const keep = (a) => !kept || kept.has(a.name) || kept.has(a.aa_of) || (kept.has('wasm-alloc') && a.name.startsWith('wasm-alloc@'));
const allocs = await Promise.all(manifest.allocators.filter(keep).map(async (a) => {
  const r = { name: a.name, error: a.error || null, module: null, minPages: null, aaOf: a.aa_of || null };
  if (!r.error) {
    try {
      const bytes = readFileSync(a.wasm);
      r.module = await WebAssembly.compile(bytes);
      r.minPages = memoryImportMin(bytes);
    } catch (e) {
      r.error = 'cannot load module: ' + e.message;
    }
  }
  return r;
}));
// The A/A copy of wasm-alloc runs in the rounds but stays out of the main tables.
const names = allocs.filter((a) => !a.aaOf).map((a) => a.name);
const mainAllocs = allocs.filter((a) => !a.aaOf);
const AA = allocs.find((a) => a.aaOf) || null;
const cell = {}; // `${wl}|${alloc}` -> { times: [], bytes, ret, fail, stats, eff }
const key = (w, a) => `${w}|${a}`;
for (const w of WORKLOADS) for (const a of allocs) cell[key(w.id, a.name)] = { times: [], fail: a.error ? `build failed: ${a.error}` : null };

const started = Date.now();
const LOAD_AT_START = os.loadavg(); // a busy machine shows here: compare runs with similar loads
const log = (s) => process.stderr.write(s + '\n');
const dur = (ms) => {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s} s`;
};
const elapsed = () => dur(Date.now() - started);
log(`bench: ${QUICK ? 'quick' : 'full'} mode, ${ROUNDS} rounds, ${allocs.length} allocators, timeout ${TIMEOUT_MS / 1000} s`);

// --- Progress: what is left, estimated from the wall time of each run so far (worker
// start included); before a cell has run, from the last results in the output directory
// (same mode), else from the other allocators' runs of the workload, else from a first
// guess scaled by how the runs so far compared with their guesses.
const wall = {}; // key -> [ms]
const prior = (() => {
  const m = {};
  try {
    const [head, ...rows] = readFileSync(path.join(outDir, 'bench.csv'), 'utf8').trim().split('\n');
    const cols = head.split(',');
    for (const row of rows) {
      const f = row.split(','), get = (n) => f[cols.indexOf(n)];
      const ms = get('status') === 'ok' ? Number(get('median_ms')) : /timeout/.test(row) ? Infinity : 500;
      m[key(get('workload'), get('allocator'))] = ms;
    }
  } catch { /* no earlier results */ }
  return m;
})();
const mean = (xs) => xs.reduce((x, y) => x + y, 0) / xs.length;
// A first guess for a cell nothing is known about yet (no run, no earlier results).
const guess = (w) => (w.eff ? 5000 : w.once ? 300 : 1000);
// How long the runs so far took against the first guesses for them: on a first run the
// guesses are scaled by it, so the estimate follows what has run (quick mode is faster
// than the guesses, a loaded machine slower). 1 until something has run.
function pace() {
  let seen = 0, guessed = 0;
  for (const w of WORKLOADS) for (const a of allocs) {
    const ms = wall[key(w.id, a.name)];
    if (ms?.length) { seen += mean(ms); guessed += guess(w); }
  }
  return guessed ? seen / guessed : 1;
}
function estimate(w, a, k) {
  const c = cell[key(w.id, a.name)];
  if (c.fail) return 0;
  const seen = wall[key(w.id, a.name)];
  if (seen?.length) return mean(seen);
  const timeout = w.eff ? TIMEOUT_MS * 3 : TIMEOUT_MS;
  const p = prior[key(w.id, a.name)];
  if (p !== undefined) return Math.min(p + 150, timeout);
  const others = allocs.flatMap((b) => wall[key(w.id, b.name)] ?? []);
  if (others.length) return mean(others);
  const mine = ROUNDED.flatMap((v) => wall[key(v.id, a.name)] ?? []);
  if (mine.length && !w.eff && !w.once) return mean(mine);
  return guess(w) * k;
}
// Runs still to do: timed workloads from (round, workload index) on, then the one-off ones.
function left(round, wi, doneOnce) {
  const k = pace();
  let ms = 0;
  for (let r = round; r < ROUNDS; r++) {
    for (let i = r === round ? wi : 0; i < ROUNDED.length; i++) for (const a of allocs) ms += estimate(ROUNDED[i], a, k);
  }
  for (const w of WORKLOADS.filter((w) => w.eff || w.once)) for (const a of mainAllocs) {
    if (!doneOnce.has(key(w.id, a.name))) ms += estimate(w, a, k);
  }
  return ms;
}
const doneOnce = new Set();
const progress = (what, ms, next) => log(`  ${what.padEnd(34)} ${dur(ms).padStart(6)}   elapsed ${elapsed()}, about ${dur(next)} left`);
async function timedRun(a, w, args, maxPages) {
  const t0 = Date.now();
  const r = await runOnce(a, w, args, maxPages);
  if (!r.fail) (wall[key(w.id, a.name)] ??= []).push(Date.now() - t0);
  else log(`    ${w.id} / ${a.name}: FAIL, ${r.fail} (${elapsed()} elapsed)`);
  return r;
}

// Seeded shuffles (mulberry32, Fisher-Yates): a new order for every round and workload.
const orderRng = (() => {
  let t = ORDER_SEED >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), t | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
})();
const shuffled = (xs) => {
  const o = [...xs];
  for (let i = o.length - 1; i > 0; i--) {
    const j = Math.floor(orderRng() * (i + 1));
    [o[i], o[j]] = [o[j], o[i]];
  }
  return o;
};
for (let round = 0; round < ROUNDS; round++) {
  for (const [wi, w] of ROUNDED.entries()) {
    const t0 = Date.now();
    const order = shuffled(allocs);
    for (const a of order) {
      const c = cell[key(w.id, a.name)];
      // The round's time, or null: the A/A table pairs the runs of one round.
      c.rounds ??= [];
      c.rounds[round] = null;
      if (c.fail) continue;
      const r = await timedRun(a, w, QUICK ? w.quick : w.full, w.perop ? PEROP_CAP_PAGES : 0);
      if (r.fail) { c.fail = r.fail; continue; }
      c.rounds[round] = r.ms;
      if (w.perop) {
        if (c.ops !== undefined && c.ops !== r.ops) c.fail = `operation count changed between rounds (${c.ops} vs ${r.ops})`;
        c.ops = r.ops;
      }
      c.times.push(r.ms);
      c.bytes = Math.max(c.bytes || 0, r.bytes);
      if (c.ret !== undefined && c.ret !== r.ret) c.fail = `checksum changed between rounds (${c.ret} vs ${r.ret})`;
      c.ret = r.ret;
      if (r.stats) c.stats = r.stats;
    }
    const last = wi + 1 === ROUNDED.length;
    progress(`round ${round + 1}/${ROUNDS} ${w.id}`, Date.now() - t0, last ? left(round + 1, 0, doneOnce) : left(round, wi + 1, doneOnce));
  }
}

// Footprint: deterministic, one run per allocator, memory at the end.
for (const w of ONCE) {
  const t0 = Date.now();
  for (const a of mainAllocs) {
    const c = cell[key(w.id, a.name)];
    doneOnce.add(key(w.id, a.name));
    if (c.fail) continue;
    const r = await timedRun(a, w, QUICK ? w.quick : w.full, 0);
    if (r.fail) { c.fail = r.fail; continue; }
    c.times.push(r.ms);
    c.bytes = r.bytes;
    c.ret = r.ret;
    c.minPages = a.minPages;
    c.heapBase = r.heapBase;
    if (r.stats) c.stats = r.stats;
  }
  progress(`${w.id} (all allocators)`, Date.now() - t0, left(ROUNDS, 0, doneOnce));
}

// Heap efficiency: deterministic, one run per allocator.
for (const w of WORKLOADS.filter((w) => w.eff)) {
  const capPages = HE_CAP_MIB * 16;
  for (const a of mainAllocs) {
    const c = cell[key(w.id, a.name)];
    doneOnce.add(key(w.id, a.name));
    if (c.fail) continue;
    const args = QUICK ? w.quick : w.full;
    const t0 = Date.now();
    const r = await timedRun(a, w, args, capPages);
    progress(`${w.id} ${a.name}`, Date.now() - t0, left(ROUNDS, 0, doneOnce));
    if (r.fail) { c.fail = r.fail; continue; }
    const budget = capPages * 65536 - r.heapBase;
    c.eff = (100 * r.ret) / (args[1] * budget);
    c.effFirst = (100 * r.first) / budget;
    c.times.push(r.ms);
    c.bytes = r.bytes;
    c.heapBase = r.heapBase;
    if (r.stats) c.stats = r.stats;
  }
}

// Checksums: every allocator must compute what the reference computes.
const allNames = allocs.map((a) => a.name);
for (const w of [...ROUNDED, ...ONCE]) {
  const ref = cell[key(w.id, BASE)]?.ret ?? (() => {
    const votes = {};
    for (const a of names) { const r = cell[key(w.id, a)].ret; if (r !== undefined) votes[r] = (votes[r] || 0) + 1; }
    return Number(Object.entries(votes).sort((x, y) => y[1] - x[1])[0]?.[0]);
  })();
  for (const a of w.once ? names : allNames) {
    const c = cell[key(w.id, a)];
    if (!c.fail && c.ret !== undefined && c.ret !== ref) c.fail = `wrong checksum ${c.ret} (expected ${ref})`;
  }
}

// ------------------------------------------------------------------------------------
// Report.
const cpu = (() => {
  try { return readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model; }
  catch { return os.cpus()[0]?.model ?? '?'; }
})();
const nproc = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
const now = new Date();
const date = now.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
const header = [
  `wasm-alloc benchmark, ${QUICK ? 'QUICK' : 'full'} mode: ${date}`,
  `node ${process.version}, V8 ${process.versions.v8} (${V8_FLAGS.join(' ')}); ${nproc} cores, ${cpu}; ${os.type()} ${os.release()}`,
  `${manifest.rustc || 'rustc ?'}; wasm profile: ${manifest.profile || 'wasm-bench'}; ${ROUNDS} rounds, median; fresh instance and worker per run; ` +
    `allocator order shuffled per round and workload (seed ${ORDER_SEED})` + (AA ? `; ${AA.name}: a second copy of ${AA.aaOf}'s module` : ''),
  `load average at start ${LOAD_AT_START.map((x) => x.toFixed(2)).join(' ')}` + (manifest.commit ? `; wasm-alloc at ${manifest.commit}` : ''),
];
if (BASELINE) {
  const sha = BASELINE.commit.slice(0, 12);
  header.push(`baseline ${BASELINE.name}: wasm-alloc at ${sha} (${BASELINE.rev}), built with the current workloads, ` +
    `${BASELINE.peer === 'own' ? 'its own peer glue' : 'peer crate'} and size probe` +
    (BASELINE.aa ? '; A/A RUN: HEAD with src/ clean, the same code twice: their difference is run-to-run noise'
      : `; before/after: wasm-alloc (${manifest.commit ?? '?'}) against it`));
}

const med = (c) => (c.times.length ? median(c.times) : null);
function table(title, rowsHead, rows, cols) {
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => String(r[i + 1]).length)));
  const w0 = Math.max(rowsHead.length, ...rows.map((r) => r[0].length));
  const line = (cells) => '| ' + cells.map((s, i) => (i === 0 ? String(s).padEnd(w0) : String(s).padStart(w[i - 1]))).join(' | ') + ' |';
  return [title, line([rowsHead, ...cols]), '|' + ['-'.repeat(w0 + 2), ...w.map((n) => '-'.repeat(n + 1) + ':')].join('|') + '|', ...rows.map(line)].join('\n');
}
const fails = [];
// A timeout is a lower bound on the ratio: say so.
for (const w of ROUNDED) for (const a of allNames) {
  const c = cell[key(w.id, a)], b = med(cell[key(w.id, BASE)]);
  if (c.fail && c.fail.startsWith('timeout') && b) c.fail += `, i.e. > ${(TIMEOUT_MS / b).toFixed(0)}x dlmalloc`;
}
const failMark = (w, a, c) => {
  const text = c.fail.startsWith('build failed') ? `${a}: ${c.fail}` : `${w} / ${a}: ${c.fail}`;
  const i = fails.indexOf(text);
  if (i >= 0) return `FAIL[${i + 1}]`;
  fails.push(text);
  return `FAIL[${fails.length}]`;
};

const timeRows = TIMED.map((w) => [w.id, ...names.map((a) => {
  const c = cell[key(w.id, a)];
  if (c.fail) return failMark(w.id, a, c);
  const m = med(c), b = med(cell[key(w.id, BASE)]);
  return `${m.toFixed(1)} ms` + (b ? ` ${(m / b).toFixed(2)}x` : '');
})]);
// Per operation: the median run's time divided by the operations the module counted.
const nsPerOp = (c) => (c.fail || !c.ops || !c.times.length ? null : (med(c) * 1e6) / c.ops);
const perOpRows = PEROP.map((w) => [w.what, ...names.map((a) => {
  const c = cell[key(w.id, a)];
  if (c.fail) return failMark(w.id, a, c);
  const ns = nsPerOp(c), b = nsPerOp(cell[key(w.id, BASE)]);
  return `${ns.toFixed(1)} ns` + (b ? ` ${(ns / b).toFixed(2)}x` : '');
})]);
// A/A: wasm-alloc against the second copy of its module, in the same rounds. Per round,
// the two runs of the round paired: min..max of their ratio.
const aaRows = [];
const aaCsv = [];
if (AA) {
  const logs = [];
  let lo = Infinity, hi = -Infinity;
  for (const w of ROUNDED) {
    const a = cell[key(w.id, AA.aaOf)], b = cell[key(w.id, AA.name)];
    if (a.fail || b.fail) {
      aaRows.push([w.id, a.fail ? failMark(w.id, AA.aaOf, a) : med(a).toFixed(1), b.fail ? failMark(w.id, AA.name, b) : med(b).toFixed(1), '-', '-']);
      continue;
    }
    const pr = (a.rounds || []).map((t, r) => (t != null && b.rounds?.[r] != null ? t / b.rounds[r] : null)).filter((x) => x != null);
    const ratio = med(a) / med(b);
    logs.push(Math.log(ratio));
    if (pr.length) { lo = Math.min(lo, ...pr); hi = Math.max(hi, ...pr); }
    aaRows.push([w.id, med(a).toFixed(1), med(b).toFixed(1), `${ratio.toFixed(3)}x`,
      pr.length ? `${Math.min(...pr).toFixed(3)}..${Math.max(...pr).toFixed(3)}` : '-']);
    aaCsv.push([w.id, ratio.toFixed(4), pr.length ? Math.min(...pr).toFixed(4) : '', pr.length ? Math.max(...pr).toFixed(4) : '',
      pr.map((x) => x.toFixed(4)).join(' '), med(a).toFixed(3), med(b).toFixed(3)]);
  }
  if (logs.length) aaRows.push(['geomean / all rounds', '', '', `${Math.exp(logs.reduce((x, y) => x + y, 0) / logs.length).toFixed(3)}x`,
    lo <= hi ? `${lo.toFixed(3)}..${hi.toFixed(3)}` : '-']);
}
const memRows = [...TIMED, ...ONCE].map((w) => [w.id, ...names.map((a) => {
  const c = cell[key(w.id, a)];
  return c.fail ? 'FAIL' : mib(c.bytes).toFixed(1);
})]);
const effRows = WORKLOADS.filter((w) => w.eff).map((w) => [w.id + ` (${HE_CAP_MIB} MiB)`, ...names.map((a) => {
  const c = cell[key(w.id, a)];
  return c.fail ? failMark(w.id, a, c) : `${c.eff.toFixed(1)} %`;
})]);
if (effRows.length) effRows.push(['  first round only', ...names.map((a) => {
  const c = cell[key(WORKLOADS.find((w) => w.eff).id, a)];
  return c.fail || c.effFirst == null ? '-' : `${c.effFirst.toFixed(1)} %`;
})]);
// Small-program footprint: the memory's size at the end, nothing subtracted.
const fpRows = ONCE.flatMap((w) => {
  const b = cell[key(w.id, BASE)];
  const get = (f) => names.map((a) => { const c = cell[key(w.id, a)]; return c.fail ? failMark(w.id, a, c) : f(c); });
  return [
    ['memory at the end (MiB)', ...get((c) => mib(c.bytes).toFixed(2))],
    ['ratio to dlmalloc', ...get((c) => (b.fail ? '-' : `${(c.bytes / b.bytes).toFixed(2)}x`))],
    ['64 KiB pages grown', ...get((c) => String(c.bytes / 65536 - c.minPages))],
  ];
});
const ra = TIMED.find((w) => w.id === 'random-actions');
const raRow = ra ? [['actions/µs', ...names.map((a) => {
  const c = cell[key(ra.id, a)];
  return c.fail ? '-' : ((RA_ACTIONS * (QUICK ? ra.quick : ra.full)[1]) / (med(c) * 1000)).toFixed(1);
})]] : [];
const sizes = manifest.sizes || [];
const sizeOf = (n) => sizes.find((s) => s.name === n) || { error: 'not built' };
const bumpSize = sizeOf('bump');
const sizeRows = [
  ['probe .wasm (B)', ...names.map((a) => { const s = sizeOf(a); return s.error ? 'FAIL' : String(s.bytes); })],
  ['- bump (B)', ...names.map((a) => { const s = sizeOf(a); return s.error || bumpSize.error ? '-' : String(s.bytes - bumpSize.bytes); })],
];
if (manifest.wasm_opt) {
  sizeRows.push(['wasm-opt -Oz (B)', ...names.map((a) => { const s = sizeOf(a); return s.error || s.opt_bytes == null ? '-' : String(s.opt_bytes); })]);
  sizeRows.push(['  - bump (B)', ...names.map((a) => { const s = sizeOf(a); return s.opt_bytes == null || bumpSize.opt_bytes == null ? '-' : String(s.opt_bytes - bumpSize.opt_bytes); })]);
}
for (const a of names) { const s = sizeOf(a); if (s.error && s.error !== 'not built') fails.push(`size / ${a}: ${s.error}`); }
// Code size as users build it: the app probe (a wasm-bindgen cdylib, one export) after
// wasm-bindgen, per profile; a row of bytes and a row of the difference to dlmalloc each.
const appSizes = manifest.app_sizes || [];
const appOf = (n) => appSizes.find((s) => s.name === n) || { error: 'not built' };
const APP_PROFILES = [
  ['release', 'release + wasm-bindgen (B)'],
  ['release_opt', 'release + wasm-opt -O (B)'],
  ['size_opt', 'z, LTO, 1 CGU + wasm-opt -Oz (B)'],
];
const signed = (d) => (d > 0 ? `+${d}` : String(d));
const appRows = appSizes.length ? APP_PROFILES.flatMap(([k, label]) => [
  [label, ...names.map((a) => { const s = appOf(a); return s.error || s[k] == null ? '-' : String(s[k]); })],
  [`  vs ${BASE}`, ...names.map((a) => { const s = appOf(a), b = appOf(BASE); return s.error || b.error || s[k] == null || b[k] == null ? '-' : signed(s[k] - b[k]); })],
]) : [];
for (const a of names) { const s = appOf(a); if (appSizes.length && s.error && s.error !== 'not built') fails.push(`app size / ${a}: ${s.error}`); }
const wa = names.find((n) => n === 'wasm-alloc');
const bl = BASELINE && names.includes(BASELINE.name) ? BASELINE.name : null;
const statRowsOf = (name) => WORKLOADS.map((w) => {
  const c = cell[key(w.id, name)];
  const s = c.stats;
  return [w.id, s ? String(s.grow_calls) : '-', s ? String(s.pages_obtained) : '-', s ? String(s.pages_free) : '-',
    c.bytes ? String(c.bytes / 65536) : '-'];
});
// Before/after (with a baseline): wasm-alloc against wasm-alloc@<sha>. The two runs of a
// round are paired: per-round ratios, min..max over the rounds.
const pairRatios = (w) => {
  const a = cell[key(w.id, wa)], b = cell[key(w.id, bl)];
  if (a.fail || b.fail) return [];
  return a.times.slice(0, b.times.length).map((t, r) => t / b.times[r]);
};
const baselineRows = [];
const baselineOther = [];
const baselineCsv = [];
if (wa && bl) {
  const fmtMs = (c) => (c.fail ? 'FAIL' : `${med(c).toFixed(1)}`);
  const pages = (c) => (c.fail || !c.bytes ? null : c.bytes / 65536);
  const logs = [];
  for (const w of [...TIMED, ...ONCE]) {
    const a = cell[key(w.id, wa)], b = cell[key(w.id, bl)];
    const timed = !w.once;
    const ok = !a.fail && !b.fail;
    const ratio = ok && timed ? med(a) / med(b) : null;
    if (ratio) logs.push(Math.log(ratio));
    const pr = timed ? pairRatios(w) : [];
    const pa = pages(a), pb = pages(b);
    const dp = pa != null && pb != null ? pa - pb : null;
    baselineRows.push([w.id, timed ? fmtMs(a) : '-', timed ? fmtMs(b) : '-', ratio ? `${ratio.toFixed(3)}x` : '-',
      pr.length ? `${Math.min(...pr).toFixed(3)}..${Math.max(...pr).toFixed(3)}` : '-',
      pa != null ? mib(a.bytes).toFixed(2) : 'FAIL', pb != null ? mib(b.bytes).toFixed(2) : 'FAIL',
      dp == null ? '-' : dp > 0 ? `+${dp} HIGHER` : String(dp)]);
    baselineCsv.push([w.id, ratio ? ratio.toFixed(4) : '', pr.length ? Math.min(...pr).toFixed(4) : '', pr.length ? Math.max(...pr).toFixed(4) : '',
      pr.map((x) => x.toFixed(4)).join(' '), timed && !a.fail ? med(a).toFixed(3) : '', timed && !b.fail ? med(b).toFixed(3) : '',
      pa != null ? a.bytes : '', pb != null ? b.bytes : '', dp ?? '', '', '']);
  }
  if (logs.length) baselineRows.push(['geomean (timed)', '', '', `${Math.exp(logs.reduce((x, y) => x + y, 0) / logs.length).toFixed(3)}x`, '', '', '', '']);
  const he = WORKLOADS.find((w) => w.eff);
  if (he) {
    const a = cell[key(he.id, wa)], b = cell[key(he.id, bl)];
    const pct = (c, f) => (c.fail || c[f] == null ? null : c[f]);
    for (const [label, f] of [[`heap efficiency (${HE_CAP_MIB} MiB)`, 'eff'], ['  first round only', 'effFirst']]) {
      const x = pct(a, f), y = pct(b, f);
      baselineOther.push([label, x == null ? 'FAIL' : `${x.toFixed(2)} %`, y == null ? 'FAIL' : `${y.toFixed(2)} %`,
        x == null || y == null ? '-' : `${x - y >= 0 ? '+' : ''}${(x - y).toFixed(2)} pt`]);
    }
    baselineCsv.push([he.id, '', '', '', '', '', '', '', '', '', pct(a, 'eff')?.toFixed(2) ?? '', pct(b, 'eff')?.toFixed(2) ?? '']);
  }
  const sa = sizeOf(wa), sb = sizeOf(bl);
  for (const [label, f] of [['probe .wasm (B)', 'bytes'], ...(manifest.wasm_opt ? [['wasm-opt -Oz (B)', 'opt_bytes']] : [])]) {
    const x = sa.error ? null : sa[f], y = sb.error ? null : sb[f];
    baselineOther.push([label, x ?? 'FAIL', y ?? 'FAIL', x == null || y == null ? '-' : `${x - y >= 0 ? '+' : ''}${x - y}`]);
  }
}
const statRows = wa ? WORKLOADS.map((w) => {
  const c = cell[key(w.id, wa)];
  const s = c.stats;
  return [w.id, s ? String(s.grow_calls) : '-', s ? String(s.pages_obtained) : '-', s ? String(s.pages_free) : '-',
    c.bytes ? String(c.bytes / 65536) : '-'];
}) : [];

// At a glance (the README's summary): per allocator, the geometric means of its time and
// peak-memory ratios to dlmalloc (over the timed workloads it did not fail, and for peak
// memory the footprint too), its highest peak ratio, heap efficiency, footprint ratio and
// code size after wasm-opt minus the bump probe.
const geomean = (xs) => (xs.length ? Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length) : null);
const glanceRows = names.filter((a) => a !== 'bump').map((a) => {
  const ok = (w) => !cell[key(w.id, a)].fail && !cell[key(w.id, BASE)].fail;
  const timed = TIMED.filter(ok);
  const failed = TIMED.length - timed.length;
  const t = geomean(timed.map((w) => med(cell[key(w.id, a)]) / med(cell[key(w.id, BASE)])));
  const peaks = [...TIMED, ...ONCE].filter(ok).map((w) => [w.id, cell[key(w.id, a)].bytes / cell[key(w.id, BASE)].bytes]);
  const highest = peaks.reduce((m, p) => (m && m[1] >= p[1] ? m : p), null);
  const eff = WORKLOADS.filter((w) => w.eff).map((w) => cell[key(w.id, a)]).find((c) => !c.fail);
  const fp = ONCE.filter(ok).map((w) => cell[key(w.id, a)].bytes / cell[key(w.id, BASE)].bytes)[0];
  const s = sizeOf(a);
  const code = s.opt_bytes != null && bumpSize.opt_bytes != null ? String(s.opt_bytes - bumpSize.opt_bytes)
    : s.error || bumpSize.error ? '-' : `${s.bytes - bumpSize.bytes} (no wasm-opt)`;
  return [a,
    t == null ? '-' : `${t.toFixed(2)}x` + (failed ? ` (${failed} failed)` : ''),
    peaks.length ? `${geomean(peaks.map((p) => p[1])).toFixed(2)}x` : '-',
    highest ? `${highest[1].toFixed(2)}x (${highest[0]})` : '-',
    eff ? `${eff.eff.toFixed(1)} %` : '-',
    fp == null ? '-' : `${fp.toFixed(2)}x`,
    code];
});
const glance = table(`At a glance: ratios to dlmalloc, geometric means over the workloads (time: the ${TIMED.length} timed ones, of those that did not fail; peak memory: the same and the footprint)`,
  'allocator', glanceRows, ['time', 'peak memory', 'highest peak', 'heap efficiency', 'footprint', 'code (B, -Oz - bump)']);

const out = [
  ...header, '',
  glance, '',
  table('Time: median, and ratio to dlmalloc (lower is better)', 'workload', [...timeRows, ...raRow], names), '',
  ...(perOpRows.length ? [table('Per operation: ns per operation (median run / operations counted), and ratio to dlmalloc (lower is better); ' +
    'an operation: an alloc+free pair (a FIFO ring of 64 live blocks of the size), one block of a batch of 1024 allocated and freed in a shuffled order, ' +
    'one realloc of a chain from 8 B to 1 MiB (the chain\'s alloc and free included); checks of the blocks\' marks included', 'operation', perOpRows, names), ''] : []),
  ...(aaRows.length ? [table(`A/A spread: ${AA.aaOf} against ${AA.name}, the same module run twice in every round (the noise a change is judged against); ` +
    `ratio of the medians, and min..max over the rounds of the two runs of one round paired`, 'workload', aaRows,
    [`${AA.aaOf} ms`, `${AA.name} ms`, 'ratio', 'per round min..max']), ''] : []),
  table('Peak memory: MiB of wasm memory at the end (lower is better)', 'workload', memRows, names), '',
  ...(effRows.length ? [table("Heap efficiency: bytes in use at the first failure / heap (talc's definition; higher is better)", 'workload', effRows, names), ''] : []),
  ...(fpRows.length ? [table(`Small-program footprint: ${ONCE[0].note} (lower is better)`, 'footprint', fpRows, names), ''] : []),
  table(`Code size: no_std probe, opt-level=z, LTO, strip${manifest.wasm_opt ? `; ${manifest.wasm_opt}` : '; wasm-opt not installed'}`, 'size', sizeRows, names), '',
  ...(appRows.length ? [table(`Code size as users build it: a wasm-bindgen cdylib with one export (split, upper-case, join), bytes of the final .wasm; dlmalloc is Rust's default (no #[global_allocator]); ${manifest.wasm_bindgen}${manifest.wasm_opt ? `, ${manifest.wasm_opt}` : ''}`, 'profile', appRows, names), ''] : []),
  ...(wa ? [table('wasm-alloc counters at the end of the run (ALLOC.stats())', 'workload', statRows, ['memory.grow calls', 'pages obtained', 'pages free', 'memory pages']), ''] : []),
  ...(bl && cell[key(WORKLOADS[0].id, bl)].stats !== undefined ? [table(`${bl} counters at the end of the run (ALLOC.stats())`, 'workload', statRowsOf(bl), ['memory.grow calls', 'pages obtained', 'pages free', 'memory pages']), ''] : []),
  ...(baselineRows.length ? [
    `${BASELINE.aa ? 'A/A' : 'Before/after'}: ${wa} (${manifest.commit ?? '?'}) against ${bl} (${BASELINE.rev})` +
      (BASELINE.aa ? ' -- the same code twice: the ratios are run-to-run noise' : ''),
    `time ratio = ${wa}'s median / ${bl}'s (below 1: ${wa} faster); per round: the two runs of each round paired, min..max of their ratio over ${ROUNDS} rounds; peak change in 64 KiB pages (${wa} minus ${bl})`,
    table('', 'workload', baselineRows, [`${wa} ms`, `${bl} ms`, 'time ratio', 'per round min..max', `${wa} peak MiB`, `${bl} peak MiB`, 'peak change']).replace(/^\n/, ''), '',
    table('', '', baselineOther, [wa, bl, 'change']).replace(/^\n/, ''), '',
  ] : []),
  ...(fails.length ? ['Failures:', ...fails.map((f, i) => `  [${i + 1}] ${f}`), ''] : []),
  `Workloads: ${WORKLOADS.map((w) => `${w.id}(${(QUICK ? w.quick : w.full).slice(1).join(', ')}): ${w.note}`).join('; ')}.`,
  `Total run time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
].join('\n');
console.log(out);

// ------------------------------------------------------------------------------------
// CSV + SVG.
mkdirSync(outDir, { recursive: true });
const csvq = (s) => (/[",\n]/.test(String(s)) ? `"${String(s).replace(/"/g, '""')}"` : String(s));
const benchCsv = [
  ['workload', 'allocator', 'status', 'median_ms', 'min_ms', 'max_ms', 'runs', 'ratio_to_dlmalloc', 'peak_bytes', 'heap_efficiency_pct', 'heap_efficiency_first_round_pct', 'checksum', 'grow_calls', 'pages_obtained', 'pages_free', 'reason', 'peak_ratio_to_dlmalloc', 'ops', 'ns_per_op'].join(','),
  ...WORKLOADS.flatMap((w) => names.map((a) => {
    const c = cell[key(w.id, a)], bc = cell[key(w.id, BASE)];
    const m = med(c), b = med(bc);
    const ok = !c.fail;
    return [w.id, a, ok ? 'ok' : 'FAIL', ok && m != null ? m.toFixed(3) : '', ok && c.times.length ? Math.min(...c.times).toFixed(3) : '',
      ok && c.times.length ? Math.max(...c.times).toFixed(3) : '', c.times.length, ok && !w.eff && !w.once && b ? (m / b).toFixed(4) : '',
      ok ? c.bytes : '', ok && c.eff != null ? c.eff.toFixed(2) : '', ok && c.effFirst != null ? c.effFirst.toFixed(2) : '', ok && c.ret != null && !w.eff ? c.ret : '',
      c.stats?.grow_calls ?? '', c.stats?.pages_obtained ?? '', c.stats?.pages_free ?? '', c.fail || '',
      ok && !w.eff && c.bytes && bc.bytes && !bc.fail ? (c.bytes / bc.bytes).toFixed(4) : '',
      ok && c.ops ? c.ops : '', ok && nsPerOp(c) != null ? nsPerOp(c).toFixed(2) : ''].map(csvq).join(',');
  })),
].join('\n') + '\n';
const sizeCsv = [
  'allocator,status,probe_bytes,probe_minus_bump,wasm_opt_bytes,wasm_opt_minus_bump,reason',
  ...names.map((a) => {
    const s = sizeOf(a);
    return [a, s.error ? 'FAIL' : 'ok', s.bytes ?? '', s.error || bumpSize.error ? '' : s.bytes - bumpSize.bytes,
      s.opt_bytes ?? '', s.opt_bytes != null && bumpSize.opt_bytes != null ? s.opt_bytes - bumpSize.opt_bytes : '', s.error || ''].map(csvq).join(',');
  }),
].join('\n') + '\n';
const appSizeCsv = [
  'allocator,status,release_bytes,release_wasm_opt_O_bytes,size_profile_bytes,size_profile_wasm_opt_Oz_bytes,reason',
  ...names.map((a) => {
    const s = appOf(a);
    return [a, s.error ? 'FAIL' : 'ok', s.release ?? '', s.release_opt ?? '', s.size ?? '', s.size_opt ?? '', s.error || ''].map(csvq).join(',');
  }),
].join('\n') + '\n';
// Plain CSV; the header (date, machine, versions) is in results.txt beside it.
writeFileSync(path.join(outDir, 'bench.csv'), benchCsv);
writeFileSync(path.join(outDir, 'size.csv'), sizeCsv);
if (appSizes.length) writeFileSync(path.join(outDir, 'app-size.csv'), appSizeCsv);
writeFileSync(path.join(outDir, 'results.txt'), out + '\n');
writeFileSync(path.join(outDir, 'chart.svg'), svg());
if (aaCsv.length) {
  writeFileSync(path.join(outDir, 'aa.csv'), [
    'workload,time_ratio,round_ratio_min,round_ratio_max,round_ratios,median_ms,aa_median_ms',
    ...aaCsv.map((r) => r.map(csvq).join(',')),
  ].join('\n') + '\n');
}
if (baselineCsv.length) {
  writeFileSync(path.join(outDir, 'baseline.csv'), [
    `workload,time_ratio,round_ratio_min,round_ratio_max,round_ratios,median_ms,baseline_median_ms,peak_bytes,baseline_peak_bytes,peak_change_pages,heap_efficiency_pct,baseline_heap_efficiency_pct`,
    ...baselineCsv.map((r) => r.map(csvq).join(',')),
  ].join('\n') + '\n');
}
if (!QUICK && !PARTIAL) {
  // One set per run: `<date>-<hhmm UTC>-<commit>` (`-dirty` when src/ had local changes),
  // so that a second run on the same day keeps the first.
  const stamp = now.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  const sha = (manifest.commit ?? '').split(' ')[0] || 'unknown';
  const name = `${stamp}-${sha}${/uncommitted/.test(manifest.commit ?? '') ? '-dirty' : ''}`;
  mkdirSync(path.join(outDir, 'history'), { recursive: true });
  writeFileSync(path.join(outDir, 'history', `${name}-bench.csv`), benchCsv);
  writeFileSync(path.join(outDir, 'history', `${name}-size.csv`), sizeCsv);
  if (appSizes.length) writeFileSync(path.join(outDir, 'history', `${name}-app-size.csv`), appSizeCsv);
  writeFileSync(path.join(outDir, 'history', `${name}-results.txt`), out + '\n');
  if (aaCsv.length) writeFileSync(path.join(outDir, 'history', `${name}-aa.csv`), readFileSync(path.join(outDir, 'aa.csv')));
}
log(`bench: wrote ${outDir}/{bench.csv,size.csv,${appSizes.length ? 'app-size.csv,' : ''}results.txt,chart.svg${aaCsv.length ? ',aa.csv' : ''}${baselineCsv.length ? ',baseline.csv' : ''}}`);

function svg() {
  const COLORS = { 'wasm-alloc': '#d62728', dlmalloc: '#1f77b4', wasmalloc: '#e377c2', talc: '#2ca02c', rlsf: '#9467bd', lol_alloc: '#ff7f0e', wee_alloc: '#8c564b', bump: '#7f7f7f' };
  if (BASELINE) COLORS[BASELINE.name] = '#ff9896'; // a lighter wasm-alloc red
  const color = (a, i) => COLORS[a] || ['#17becf', '#bcbd22', '#e377c2'][i % 3];
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const MEM = [...TIMED, ...ONCE];
  const W = 980, padL = 60, padR = 20;
  const parts = [];
  let y0 = 0;
  const panel = (title, values, unit, groups) => {
    const groupW = (W - padL - padR) / groups.length, barW = Math.min(16, (groupW - 16) / names.length);
    // values: per workload, per allocator: ratio (log scale) or null (FAIL)
    const H = 220, top = y0 + 34, bottom = top + H;
    const all = values.flat().filter((v) => v != null && v > 0);
    const lo = Math.min(0.25, ...all.map((v) => v / 1.6)), hi = Math.max(4, ...all.map((v) => v * 1.6));
    const ly = (v) => bottom - ((Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) * H;
    parts.push(`<text x="${padL}" y="${y0 + 20}" font-size="15" font-weight="bold">${esc(title)}</text>`);
    for (let t = Math.pow(2, Math.ceil(Math.log2(lo))); t <= hi; t *= 2) {
      const y = ly(t).toFixed(1);
      parts.push(`<line x1="${padL}" x2="${W - padR}" y1="${y}" y2="${y}" stroke="${t === 1 ? '#000' : '#ddd'}" stroke-width="${t === 1 ? 1.2 : 1}"/>`);
      parts.push(`<text x="${padL - 6}" y="${+y + 4}" font-size="11" text-anchor="end">${t >= 1 ? t : '1/' + 1 / t}${unit}</text>`);
    }
    groups.forEach((w, wi) => {
      const gx = padL + wi * groupW + (groupW - barW * names.length) / 2;
      names.forEach((a, ai) => {
        const v = values[wi][ai], x = gx + ai * barW;
        if (v == null) {
          parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(ly(1) - 4).toFixed(1)}" font-size="11" text-anchor="middle" fill="${color(a, ai)}">✕</text>`);
          return;
        }
        const y1 = ly(Math.max(v, lo)), yb = ly(1);
        parts.push(`<rect x="${x.toFixed(1)}" y="${Math.min(y1, yb).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.max(1, Math.abs(yb - y1)).toFixed(1)}" fill="${color(a, ai)}"><title>${esc(`${a} ${w.id}: ${v.toFixed(2)}${unit}`)}</title></rect>`);
        // value label, rotated, beyond the end of the bar
        const lx = x + (barW - 2) / 2 + 3, up = v >= 1, ty = up ? Math.min(y1, yb) - 3 : Math.max(y1, yb) + 3;
        parts.push(`<text transform="translate(${lx.toFixed(1)},${ty.toFixed(1)}) rotate(-90)" font-size="9" text-anchor="${up ? 'start' : 'end'}" fill="#333">${v.toFixed(2)}</text>`);
      });
      parts.push(`<text x="${(padL + wi * groupW + groupW / 2).toFixed(1)}" y="${bottom + 16}" font-size="12" text-anchor="middle">${esc(w.id)}</text>`);
    });
    y0 = bottom + 30;
  };
  const ratio = (get, groups) => groups.map((w) => names.map((a) => {
    const c = cell[key(w.id, a)], b = cell[key(w.id, BASE)];
    if (c.fail || b.fail) return null;
    return get(c) / get(b);
  }));
  panel('Time, ratio to dlmalloc (median; log scale; lower is better; ✕ = FAIL)', ratio(med, TIMED), '×', TIMED);
  panel('Peak memory (footprint: memory at the end), ratio to dlmalloc (log scale; lower is better)', ratio((c) => c.bytes, MEM), '×', MEM);
  // Heap efficiency (linear %) and legend.
  const he = WORKLOADS.find((w) => w.eff);
  if (he) {
    const top = y0 + 42, H = 110;
    parts.push(`<text x="${padL}" y="${y0 + 16}" font-size="15" font-weight="bold">${esc(`Heap efficiency (talc's definition, ${HE_CAP_MIB} MiB cap; higher is better)`)}</text>`);
    for (const t of [0, 50, 100]) {
      const y = top + H - (t / 100) * H;
      parts.push(`<line x1="${padL}" x2="${padL + names.length * 80}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${padL - 6}" y="${y + 4}" font-size="11" text-anchor="end">${t}%</text>`);
    }
    names.forEach((a, ai) => {
      const c = cell[key(he.id, a)], x = padL + ai * 80 + 20;
      if (c.fail) { parts.push(`<text x="${x + 18}" y="${top + H - 4}" font-size="11" text-anchor="middle">FAIL</text>`); return; }
      const h = (c.eff / 100) * H;
      parts.push(`<rect x="${x}" y="${(top + H - h).toFixed(1)}" width="36" height="${h.toFixed(1)}" fill="${color(a, ai)}"/><text x="${x + 18}" y="${(top + H - h - 3).toFixed(1)}" font-size="11" text-anchor="middle">${c.eff.toFixed(1)}</text>`);
    });
    y0 = top + H + 10;
  }
  // Code size: the allocator's own bytes (probe minus the bump build; after wasm-opt -Oz when installed).
  const bump = sizeOf('bump');
  const opt = manifest.wasm_opt && bump.opt_bytes != null;
  const code = names.map((a) => {
    const s = sizeOf(a);
    if (s.error || bump.error) return null;
    return opt ? (s.opt_bytes != null ? s.opt_bytes - bump.opt_bytes : null) : s.bytes - bump.bytes;
  });
  if (code.some((v) => v != null) && names.some((a) => a !== 'bump')) {
    const top = y0 + 42, H = 110, max = Math.max(...code.filter((v) => v != null), 1);
    parts.push(`<text x="${padL}" y="${y0 + 16}" font-size="15" font-weight="bold">${esc(`Code size: allocator bytes in the no_std probe, minus the bump build${opt ? ', after wasm-opt -Oz' : ''} (lower is better)`)}</text>`);
    parts.push(`<line x1="${padL}" x2="${padL + names.length * 80}" y1="${top + H}" y2="${top + H}" stroke="#999"/>`);
    names.forEach((a, ai) => {
      const v = code[ai], x = padL + ai * 80 + 20;
      if (v == null) { parts.push(`<text x="${x + 18}" y="${top + H - 4}" font-size="11" text-anchor="middle">FAIL</text>`); return; }
      const h = (Math.max(v, 0) / max) * H;
      parts.push(`<rect x="${x}" y="${(top + H - h).toFixed(1)}" width="36" height="${Math.max(h, 0.5).toFixed(1)}" fill="${color(a, ai)}"/><text x="${x + 18}" y="${(top + H - h - 3).toFixed(1)}" font-size="11" text-anchor="middle">${v} B</text>`);
    });
    y0 = top + H + 10;
  }
  // One legend row (two when a baseline makes nine names).
  const perRow = names.length > 8 ? Math.ceil(names.length / 2) : names.length;
  names.forEach((a, ai) => {
    const x = padL + (ai % perRow) * 110, y = y0 + Math.floor(ai / perRow) * 18;
    parts.push(`<rect x="${x}" y="${y + 8}" width="12" height="12" fill="${color(a, ai)}"/><text x="${x + 16}" y="${y + 18}" font-size="12">${esc(a)}</text>`);
  });
  y0 += 30 + (Math.ceil(names.length / perRow) - 1) * 18;
  parts.push(`<text x="${padL}" y="${y0 + 8}" font-size="10" fill="#555">${esc(header[0] + ' — ' + header[1])}</text>`);
  const Ht = y0 + 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Ht}" viewBox="0 0 ${W} ${Ht}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}
