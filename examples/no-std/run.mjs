// Loads the no_std example module, instantiates it with no imports, calls its exports and
// checks every result exactly. Exits with 1 and a message on the first wrong one.
//   node examples/no-std/run.mjs target/wasm32-unknown-unknown/release/wasm_alloc_example_no_std.wasm
import { readFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs <path to wasm_alloc_example_no_std.wasm>");
  process.exit(2);
}

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(what, actual, expected) {
  if (actual !== expected) fail(`${what} = ${actual}, expected ${expected}`);
  console.log(`${what} = ${actual}`);
}

const module = new WebAssembly.Module(readFileSync(path));
const imports = WebAssembly.Module.imports(module);
if (imports.length !== 0) fail(`the module imports ${JSON.stringify(imports)}; it should import nothing`);
const { exports } = new WebAssembly.Instance(module, {});

// i32 results arrive in JavaScript as signed numbers; u32 and usize are read unsigned.
const u32 = (x) => x >>> 0;
const obtained = () => u32(exports.heap_obtained_bytes());
const free = () => u32(exports.heap_free_bytes());

// The allocator takes no memory before the first allocation.
check("heap_obtained_bytes() before any allocation", obtained(), 0);

// n(n+1)(2n+1)/6, the expected sum_of_squares(n).
const squares = (n) => (BigInt(n) * BigInt(n + 1) * BigInt(2 * n + 1)) / 6n;

// The first blocks come from the module's initial heap (__heap_base to the end of the
// memory it was instantiated with: there is no C library on wasm32-unknown-unknown or
// wasm32v1-none), so a small Vec needs no memory.grow.
const initialBytes = exports.memory.buffer.byteLength;
check("sum_of_squares(100), from the initial heap", exports.sum_of_squares(100), squares(100));
check("heap_grow_calls() after it", u32(exports.heap_grow_calls()), 0);
if (obtained() === 0 || obtained() > initialBytes) fail(`obtained ${obtained()} bytes of an initial memory of ${initialBytes}`);

// sum_of_squares: u64, a BigInt in JavaScript.
for (const n of [0, 1, 10, 1_000, 1_000_000, 3_000_000]) {
  check(`sum_of_squares(${n})`, exports.sum_of_squares(n), squares(n));
}

// The 24 MB Vec of sum_of_squares(3_000_000) came from the allocator and went back to it.
const bytes = 3_000_000 * 8;
const afterSquares = { obtained: obtained(), free: free() };
console.log(`heap_obtained_bytes() = ${afterSquares.obtained}, heap_free_bytes() = ${afterSquares.free}`);
if (afterSquares.obtained < bytes) fail(`obtained ${afterSquares.obtained} bytes, fewer than the ${bytes} of the Vec`);
if (afterSquares.obtained % 4096 !== 0) fail(`obtained ${afterSquares.obtained} bytes, not whole 4 KiB units`);
if (afterSquares.free < bytes) fail(`only ${afterSquares.free} bytes free after the ${bytes}-byte Vec was dropped`);

// btree_checksum, computed here the same way: even i only, in unsigned key order.
function btreeChecksum(n) {
  const entries = [];
  for (let i = 0; i < n; i += 2) entries.push([u32(Math.imul(i, 2654435761)), i]);
  entries.sort((a, b) => a[0] - b[0]);
  let sum = 0;
  for (const [key, value] of entries) sum = u32(Math.imul(sum, 31) + u32(key ^ value));
  return sum;
}
for (const n of [0, 1, 2, 1_000, 100_000, 1_000_000]) {
  check(`btree_checksum(${n})`, u32(exports.btree_checksum(n)), btreeChecksum(n));
}

// Memory is reused: the BTreeMaps fit in what the 24 MB Vec gave back.
check("heap_obtained_bytes() after the BTreeMaps", obtained(), afterSquares.obtained);

// A panic (here: a capacity overflow, 8 * (2^32 - 1) bytes) is a trap.
try {
  exports.sum_of_squares(0xffff_ffff);
  fail("sum_of_squares(4294967295) returned; it should trap");
} catch (e) {
  if (!(e instanceof WebAssembly.RuntimeError)) throw e;
  console.log(`sum_of_squares(4294967295) traps: ${e.message}`);
}

console.log("ok");
