// Multi-threaded test of wasm-alloc in wasm (atomics + shared memory), under Node.
//
//   node tests/threads/run.mjs path/to/wasm_alloc_threads.wasm   (run.sh builds it)
//
// The module is compiled once; one shared WebAssembly.Memory is created here and
// imported by every instance: the main thread's (which runs LLD's data initialisation
// once and hands out each worker's stack and TLS block) and one per worker thread
// (own __stack_pointer and __wasm_init_tls). All instances therefore use the same
// allocator state in the same memory, so its spin lock is what keeps them apart.
//
// Checks: every worker's checked alloc/realloc/free loop returns 0 (ROUNDS rounds, the
// workers released together by an Atomics barrier so they overlap); blocks one worker
// freed are handed to another (reuse_free on worker 0, reuse_take on worker 1) and come
// back zeroed from alloc_zeroed; allocator stats stay sane; nothing traps, crashes or
// takes longer than TIMEOUT_S (a deadlock). Exit code 0 only if all passed. The last
// line is `threads: N passed, M failed`.
//
// Env: THREADS (4), OPS (100000) per thread in mixed rounds, HOT_OPS (1000000) in hot rounds,
// ROUNDS (3: mixed, hot, mixed), SEED (1),
// TIMEOUT_S per phase (60), STACK_KIB per worker (1024).

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

// ---------------------------------------------------------------- worker thread

function workerMain() {
    const { module, memory, id, stackTop, tls, goSab } = workerData;
    const go = new Int32Array(goSab);
    let ex;
    try {
        ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
        // Our own stack (the linker's initial value is the main thread's stack) and TLS.
        ex.__stack_pointer.value = stackTop;
        ex.__wasm_init_tls(tls);
    } catch (e) {
        parentPort.postMessage({ type: 'trap', error: String(e && e.stack || e) });
        return;
    }
    parentPort.postMessage({ type: 'init', sp: ex.__stack_pointer.value >>> 0 });
    parentPort.on('message', (msg) => {
        try {
            if (msg.cmd === 'run') {
                parentPort.postMessage({ type: 'ready' });
                // Barrier: wait until the main thread releases round `msg.round`.
                let v;
                while ((v = Atomics.load(go, 0)) < msg.round) Atomics.wait(go, 0, v);
                const start = performance.timeOrigin + performance.now();
                const code = ex.worker_run(id, msg.ops, msg.seed, msg.hot ? 1 : 0) >>> 0;
                const end = performance.timeOrigin + performance.now();
                parentPort.postMessage({ type: 'done', code, start, end, detail: detail(ex, id) });
            } else if (msg.cmd === 'reuse_free') {
                const code = ex.reuse_free(id, msg.count, msg.small, msg.big) >>> 0;
                parentPort.postMessage({ type: 'done', code, detail: detail(ex, id) });
            } else if (msg.cmd === 'reuse_take') {
                const code = ex.reuse_take(id, msg.count, msg.small, msg.big) >>> 0;
                parentPort.postMessage({ type: 'done', code, detail: detail(ex, id) });
            } else if (msg.cmd === 'exit') {
                parentPort.close();
            }
        } catch (e) {
            // A trap in wasm: a panic (assertion, overflow) or `unreachable`.
            parentPort.postMessage({ type: 'trap', error: String(e && e.stack || e) });
        }
    });
}

function detail(ex, id) {
    return Array.from({ length: 8 }, (_, i) => ex.error_word(id, i) >>> 0);
}

// ---------------------------------------------------------------- main thread

const ERR = ['ok', 'alloc returned null', 'misaligned', 'CORRUPTED contents',
    'realloc returned null', 'alloc_zeroed not zero', 'bad stats', 'bad thread id',
    'OVERLAPPING blocks'];

// A trap's message and the innermost frames of its stack.
function trim(text) {
    const lines = String(text).split('\n');
    return lines.slice(0, 7).join('\n') + (lines.length > 7 ? '\n    ...' : '');
}

function describe(d) {
    const hex = (x) => '0x' + (x >>> 0).toString(16);
    return `${ERR[d[0]] ?? 'error ' + d[0]} at op ${d[1]}: ptr ${hex(d[2])} size ${d[3]} align ${d[4]}` +
        ` first bad offset ${d[5]} expected ${hex(d[6])} found ${hex(d[7])}`;
}

// The limits of the imported memory, from the module's import section.
function memoryImport(bytes) {
    let p = 8;
    const u8 = () => bytes[p++];
    const leb = () => { let r = 0, s = 0, b; do { b = u8(); r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return r; };
    const name = () => { const n = leb(); p += n; };
    while (p < bytes.length) {
        const id = u8(), size = leb(), end = p + size;
        if (id === 2) {
            for (let n = leb(); n > 0; n--) {
                name(); name();
                const kind = u8();
                if (kind === 2) {
                    const flags = u8();
                    const min = leb();
                    const max = flags & 1 ? leb() : undefined;
                    return { min, max, shared: (flags & 2) !== 0 };
                }
                if (kind === 0) leb();
                else if (kind === 1) { u8(); const f = u8(); leb(); if (f & 1) leb(); }
                else if (kind === 3) { u8(); u8(); }
                else throw new Error(`import kind ${kind}`);
            }
        }
        p = end;
    }
    return undefined;
}

let passed = 0, failed = 0;
const pass = (what) => { passed++; console.log(`ok   ${what}`); };
const fail = (what) => { failed++; console.log(`FAIL ${what}`); };
function finish(code) {
    console.log(`threads: ${passed} passed, ${failed} failed`);
    process.exit(code ?? (failed === 0 && passed > 0 ? 0 : 1));
}

const envInt = (name, dflt) => {
    const v = process.env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: not a non-negative integer`);
    return n;
};

async function main() {
    const wasmPath = process.argv[2];
    if (!wasmPath) {
        console.error('usage: node run.mjs path/to/wasm_alloc_threads.wasm');
        process.exit(2);
    }
    const THREADS = envInt('THREADS', 4);
    const OPS = envInt('OPS', 100000);
    const HOT_OPS = envInt('HOT_OPS', 1000000);
    const ROUNDS = envInt('ROUNDS', 3);
    const SEED = envInt('SEED', 1);
    const TIMEOUT_MS = envInt('TIMEOUT_S', 60) * 1000;
    const STACK = envInt('STACK_KIB', 1024) * 1024;
    if (THREADS < 2) throw new Error('THREADS must be at least 2');


    const bytes = readFileSync(wasmPath);
    const module = await WebAssembly.compile(bytes);
    const lim = memoryImport(bytes);
    if (!lim || !lim.shared || lim.max === undefined) {
        fail(`module imports a shared memory with a maximum (found ${JSON.stringify(lim)})`);
        finish();
    }
    pass(`module imports a shared memory: env.memory, ${lim.min}..${lim.max} pages, shared`);
    const memory = new WebAssembly.Memory({ initial: lim.min, maximum: lim.max, shared: true });

    // The main instance runs the start function (__wasm_init_memory: data segments and
    // the main thread's TLS, once for the module) and hands out worker stacks and TLS.
    const main = new WebAssembly.Instance(module, { env: { memory } }).exports;
    if (main.has_atomics() !== 1) {
        fail('module built with the atomics target feature');
        finish();
    }
    const stats = () => ({
        grow_calls: main.stats_word(0), pages_obtained: main.stats_word(1), pages_free: main.stats_word(2),
        class_bytes: main.stats_word(3), class_free_bytes: main.stats_word(4),
    });
    const tlsSize = main.__tls_size.value, tlsAlign = main.__tls_align.value;

    const goSab = new SharedArrayBuffer(4);
    const go = new Int32Array(goSab);
    const self = fileURLToPath(import.meta.url);
    const workers = [];
    for (let id = 0; id < THREADS; id++) {
        const stack = main.alloc_block(STACK, 16) >>> 0;
        const tls = main.alloc_block(Math.max(tlsSize, 1), Math.max(tlsAlign, 1)) >>> 0;
        if (stack === 0 || tls === 0) {
            fail('allocating worker stacks');
            finish();
        }
        const w = new Worker(self, { workerData: { module, memory, id, stackTop: stack + STACK, tls, goSab } });
        const state = { w, id, queue: [], waiter: null, dead: null, stack };
        w.on('message', (m) => { state.queue.push(m); wake(state); });
        w.on('error', (e) => { state.dead = `worker ${id} crashed: ${e && e.stack || e}`; wake(state); });
        w.on('exit', (c) => { state.dead ??= `worker ${id} exited (code ${c})`; wake(state); });
        workers.push(state);
    }
    function wake(s) {
        if (s.waiter) { const f = s.waiter; s.waiter = null; f(); }
    }
    // The next message of worker `s`, or an error string (crash, trap, timeout).
    function next(s, deadline) {
        return new Promise((resolve) => {
            const check = () => {
                if (s.queue.length) {
                    const m = s.queue.shift();
                    clearTimeout(t);
                    return resolve(m.type === 'trap' ? { type: 'error', error: `worker ${s.id} trapped: ${trim(m.error)}` } : m);
                }
                if (s.dead) { clearTimeout(t); return resolve({ type: 'error', error: s.dead }); }
                s.waiter = check;
            };
            const t = setTimeout(() => { s.waiter = null; resolve({ type: 'timeout' }); }, Math.max(0, deadline - Date.now()));
            check();
        });
    }
    // Waits for a message of `type` from every worker in `ws`; a timeout means deadlock.
    async function all(ws, type, what) {
        const deadline = Date.now() + TIMEOUT_MS;
        const got = new Array(ws.length).fill(null);
        // A trap or crash fails the phase at once: the others get 3 s more to report,
        // then count as stuck (a thread that traps inside the allocator leaves its lock
        // held, and the others spin on it for ever).
        let early;
        const failedEarly = new Promise((r) => (early = r));
        const done = Promise.all(ws.map((s, i) => next(s, deadline).then((m) => {
            got[i] = m;
            if (m.type === 'error') early();
        })));
        await Promise.race([done, failedEarly.then(() => new Promise((r) => setTimeout(r, 3000)))]);
        let ok = true;
        got.forEach((m, i) => {
            if (m === null) {
                ok = false;
                console.log(`     worker ${ws[i].id}: no '${type}' 3 s after another worker failed (${what}): stuck`);
            } else if (m.type === 'timeout') {
                ok = false;
                console.log(`     worker ${ws[i].id}: no '${type}' after ${TIMEOUT_MS / 1000} s (${what}): deadlock or livelock`);
            } else if (m.type === 'error') {
                ok = false;
                console.log(`     ${m.error}`);
            } else if (m.type !== type) {
                ok = false;
                console.log(`     worker ${ws[i].id}: expected '${type}', got '${m.type}'`);
            }
        });
        if (!ok) {
            // What the workers that did finish found.
            got.forEach((m, i) => {
                if (m && m.type === 'done' && m.detail && m.detail[0] !== 0) {
                    console.log(`     worker ${ws[i].id} returned ${m.code}: ${describe(m.detail)}`);
                }
            });
            fail(what);
            abort();
        }
        return got;
    }
    function abort() {
        for (const s of workers) s.w.terminate();
        finish(1);
    }

    await all(workers, 'init', 'workers instantiate the module over the shared memory');
    pass(`${THREADS} workers instantiated over the one memory, each with its own stack ` +
        `(${STACK / 1024} KiB) and TLS block (${tlsSize} B)`);

    const t0 = performance.now();
    let firstRoundPages = 0, totalOps = 0;
    for (let round = 1; round <= ROUNDS; round++) {
        const seed = (SEED * 1000 + round) >>> 0;
        // Odd rounds: the full mix (1 B..256 KiB, big alignments); even rounds: the hot
        // mix (1..512 B), where the lock is taken millions of times a second.
        const hot = round % 2 === 0, ops = hot ? HOT_OPS : OPS, kind = hot ? 'hot' : 'mixed';
        totalOps += ops * THREADS;
        for (const s of workers) s.w.postMessage({ cmd: 'run', round, ops, seed, hot });
        await all(workers, 'ready', `round ${round}: workers reach the barrier`);
        const r0 = performance.now();
        Atomics.store(go, 0, round);
        Atomics.notify(go, 0);
        const res = await all(workers, 'done', `round ${round} (${kind}): ${THREADS} threads x ${ops} ops without trap, crash or timeout (${TIMEOUT_MS / 1000} s)`);
        const ms = performance.now() - r0;
        const lastStart = Math.max(...res.map((m) => m.start));
        const firstEnd = Math.min(...res.map((m) => m.end));
        const overlap = firstEnd - lastStart;
        for (const [i, m] of res.entries()) {
            const what = `round ${round} (${kind}) thread ${i}: ${ops} checked ops (${(m.end - m.start).toFixed(0)} ms)`;
            if (m.code === 0) pass(what);
            else fail(`${what}: ${describe(m.detail)}`);
        }
        // A failed round leaves the allocator in an unknown state: stop here.
        if (res.some((m) => m.code !== 0)) abort();
        const st = stats();
        console.log(`     round ${round} (${kind}): ${ms.toFixed(0)} ms wall, all ${THREADS} threads running at once for ` +
            `${overlap.toFixed(0)} ms; stats: ${JSON.stringify(st)}`);
        // The barrier releases all at once; with enough work they must overlap.
        if (ops >= 10000) {
            const what = `round ${round} (${kind}): all ${THREADS} threads ran at the same time (${overlap.toFixed(0)} ms)`;
            if (overlap > 0) pass(what); else fail(what);
        }
        // Every block is freed at the end of a round: no size-class bytes in use beyond
        // the worker stacks and TLS blocks (and nothing else allocates), free pages <= obtained.
        if (st.pages_free > st.pages_obtained) fail(`round ${round}: stats sane: pages_free <= pages_obtained`);
        if (round === 1) firstRoundPages = st.pages_obtained;
    }
    const stressMs = performance.now() - t0;
    if (ROUNDS >= 2) {
        // Later rounds run on the heap the first one left; what they need again must come
        // from blocks freed (by any thread), not from fresh memory. Loose bound: at most
        // a quarter more pages than after round 1.
        const st = stats();
        const what = `memory reused across rounds: pages obtained ${firstRoundPages} after round 1, ` +
            `${st.pages_obtained} after round ${ROUNDS}`;
        if (st.pages_obtained <= Math.ceil(firstRoundPages * 1.25) + 8) pass(what);
        else fail(what);
    }

    // Cross-thread reuse: worker 0 allocates and frees, then worker 1 allocates the same
    // sizes and must get the very blocks worker 0 freed (LIFO free list; first-fit pages),
    // zeroed by alloc_zeroed although worker 0 had filled them.
    const [a, b] = workers;
    for (const [count, small, big] of [[64, 48, 3 * 65536 + 1], [16, 4000, 70000], [200, 8, 65536]]) {
        a.w.postMessage({ cmd: 'reuse_free', count, small, big });
        const [ra] = await all([a], 'done', `reuse: worker 0 allocates and frees ${count} x ${small} B + ${big} B`);
        if (ra.code !== 0) {
            fail(`reuse: worker 0 frees: ${describe(ra.detail)}`);
            continue;
        }
        b.w.postMessage({ cmd: 'reuse_take', count, small, big });
        const [rb] = await all([b], 'done', `reuse: worker 1 allocates ${count} x ${small} B + ${big} B`);
        if (rb.code & 0x8000_0000) {
            fail(`reuse: worker 1 allocates zeroed: ${describe(rb.detail)}`);
            continue;
        }
        const smallHits = rb.code & 0xffff, bigHit = (rb.code >>> 16) & 1;
        const whatS = `reuse: worker 1 got ${smallHits}/${count} of the ${small} B blocks worker 0 freed, zeroed`;
        if (smallHits === count) pass(whatS); else fail(whatS);
        const whatB = `reuse: worker 1 got ${bigHit ? 'the' : 'NOT the'} ${big} B block worker 0 freed, zeroed`;
        if (bigHit) pass(whatB); else fail(whatB);
    }

    const st = stats();
    for (const s of workers) s.w.postMessage({ cmd: 'exit' });
    await Promise.all(workers.map((s) => new Promise((r) => (s.dead ? r() : s.w.once('exit', r)))));
    const roundsText = Array.from({ length: ROUNDS }, (_, i) => (i % 2 ? `${HOT_OPS} hot` : `${OPS} mixed`)).join(' + ');
    console.log(`summary: ${THREADS} threads x (${roundsText}) ops = ${totalOps} checked ` +
        `operations on one allocator in ${(stressMs / 1000).toFixed(2)} s; end: ${st.pages_obtained} pages obtained ` +
        `(${st.pages_free} free) in ${st.grow_calls} memory.grow calls`);
    finish();
}

// Last, so that every declaration above is initialised (top-level await).
if (isMainThread) {
    try {
        await main();
    } catch (e) {
        // E.g. a trap in the main thread's instance (stats on a corrupted heap).
        fail(`main thread: ${trim(e && e.stack || e)}`);
        finish(1);
    }
} else {
    workerMain();
}
