// Cargo's runner for wasm32-wasip2 (.cargo/config.toml): runs a WASI preview 2 command
// component under Node (node --no-warnings .ci/wasip2-run.mjs file.wasm args...).
// jco-transpile turns the component into an ES module plus core wasm modules (in memory,
// the JS written to a temporary directory), and preview2-shim implements the WASI 0.2
// imports on Node. Both are installed by `npm ci --prefix .ci/node` (.ci/install).
// Like .ci/wasi-run.mjs, the guest gets its arguments, the whole host environment, and
// one preopened directory, /tmp: a fresh empty host directory made for this run and
// removed after it. Exit code: the guest's exit status (wasi:cli/exit: 0, or 1 for an
// error), 1 if `run` returns an error or traps (a panic aborts on wasip2).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argv, env, exit } from 'node:process';
import { pathToFileURL } from 'node:url';

const [, , wasmPath, ...args] = argv;
if (!wasmPath) {
  console.error('usage: node .ci/wasip2-run.mjs component.wasm [args...]');
  exit(2);
}
const require = createRequire(new URL('./node/package.json', import.meta.url));
const load = async (specifier) => {
  try {
    return await import(pathToFileURL(require.resolve(specifier)).href);
  } catch (e) {
    console.error(`wasip2-run: cannot load ${specifier}: run \`npm ci --prefix .ci/node\` (${e.message})`);
    exit(2);
  }
};
const { transpile } = await load('@bytecodealliance/jco-transpile');
const { WASIShim } = await load('@bytecodealliance/preview2-shim/instantiation');
const { filesystem } = await load('@bytecodealliance/preview2-shim');

// wasi-libc (wasip2) asks for `mutate-directory` on every open for writing, as the WASI
// filesystem proposal suggests for POSIX compatibility; preview2-shim 0.26 answers
// `unsupported` (ENOTSUP) to that, so File::create and fs::write fail. The shim enforces
// no read-only directories anyway: drop the flag.
const descriptor = filesystem.types.Descriptor.prototype;
const openAt = descriptor.openAt;
descriptor.openAt = function (pathFlags, path, openFlags, descriptorFlags) {
  return openAt.call(this, pathFlags, path, openFlags, { ...descriptorFlags, mutateDirectory: false });
};

const scratch = mkdtempSync(join(tmpdir(), 'wasm-alloc-wasip2-'));
const bindings = mkdtempSync(join(tmpdir(), 'wasm-alloc-jco-'));
// The guest's exit (wasi:cli/exit) calls process.exit from inside the shim: clean up then.
process.on('exit', () => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(bindings, { recursive: true, force: true });
});

const name = 'component';
const { files } = await transpile(wasmPath, {
  name,
  instantiation: 'async',
  minify: false,
  optimize: false,
  emitTypescriptDeclarations: false,
});
const jsFile = join(bindings, `${name}.mjs`);
writeFileSync(jsFile, files[`${name}.js`]);
const { instantiate } = await import(pathToFileURL(jsFile).href);

const shim = new WASIShim({
  sandbox: {
    preopens: { '/tmp': scratch },
    env: { ...env },
    args: [wasmPath, ...args],
  },
});
const component = await instantiate(
  (path) => WebAssembly.compile(files[path]),
  shim.getImportObject(),
);
const run = component.run ?? component['wasi:cli/run@0.2.0']?.run;
if (typeof run?.run !== 'function') {
  console.error(`wasip2-run: ${wasmPath} is not a wasi:cli command component`);
  exit(2);
}
let code = 0;
try {
  await run.run();
} catch (e) {
  console.error(e);
  code = 1;
}
// Let the shim's stdout/stderr streams flush before exiting.
await new Promise((resolve) => setTimeout(resolve));
exit(code);
