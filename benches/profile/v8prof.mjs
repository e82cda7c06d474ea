// One workload of one benchmark module under `node --cpu-prof --no-liftoff`, in the main
// thread, instantiated as benches/runner/run.mjs does (imported memory of the module's
// minimum, bench_init, then the workload export).
//
//   node --no-liftoff --cpu-prof --cpu-prof-interval 100 --cpu-prof-dir DIR \
//        benches/profile/v8prof.mjs MODULE.wasm wl_random_actions 24301 60
import { readFileSync } from 'node:fs';

const [file, fn, ...rest] = process.argv.slice(2);
const args = rest.map(Number);
const bytes = readFileSync(file);

// Minimum pages of the imported memory (as run.mjs's memoryImportMin).
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

const module = new WebAssembly.Module(bytes);
const minPages = memoryImportMin(bytes);
const imports = {};
let memory = null;
if (minPages !== null) {
  memory = new WebAssembly.Memory({ initial: minPages });
  imports.env = { memory };
}
const ex = new WebAssembly.Instance(module, imports).exports;
memory ??= ex.memory;
ex.bench_init();
const t0 = performance.now();
const ret = ex[fn](...args);
const ms = performance.now() - t0;
console.log(JSON.stringify({ file, fn, args, ret: ret >>> 0, ms: +ms.toFixed(1), mib: memory.buffer.byteLength / 2 ** 20 }));
