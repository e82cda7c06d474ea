// Cargo's runner for wasm32-wasip1 (.cargo/config.toml): runs a WASI preview 1 binary
// under Node's built-in WASI (node --no-warnings .ci/wasi-run.mjs file.wasm args...).
// The guest gets its arguments, the whole host environment, and one preopened directory,
// /tmp: a fresh empty host directory (under os.tmpdir()) made for this run and removed
// after it, so tests can write files without touching the repository.
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argv, env, exit } from 'node:process';
import { WASI } from 'node:wasi';

const [, , wasmPath, ...args] = argv;
const scratch = mkdtempSync(join(tmpdir(), 'wasm-alloc-wasi-'));
let code;
try {
  const wasi = new WASI({
    version: 'preview1',
    args: [wasmPath, ...args],
    env,
    preopens: { '/tmp': scratch },
    returnOnExit: true,
  });
  const module = await WebAssembly.compile(await readFile(wasmPath));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  code = wasi.start(instance);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
exit(code);
