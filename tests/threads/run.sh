#!/usr/bin/env bash
# Builds tests/threads (wasm32 + atomics + shared memory, nightly -Z build-std) and runs
# run.mjs: worker_threads sharing one WebAssembly.Memory hammer the one allocator.
# From the repo root: `bash tests/threads/run.sh`. Exit code 0 only if every check passed.
# Env: THREADS (default 4), OPS (100000) / HOT_OPS (1000000) per thread and round, ROUNDS (3),
#      SEED, TIMEOUT_S (60), NODE (node), SKIP_BUILD=1 (reuse the last build).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

target_dir="$root/target/atomics"
wasm="$target_dir/wasm32-unknown-unknown/release/wasm_alloc_threads.wasm"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    # Nightly with rust-src (for -Z build-std); installed only when missing, never updated.
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        rustup toolchain install nightly --profile minimal --component rust-src
    elif ! rustup component list --toolchain nightly --installed 2>/dev/null | grep '^rust-src' >/dev/null; then
        rustup component add rust-src --toolchain nightly
    fi
    # atomics + bulk-memory: the allocator's spin lock and LLD's passive data segments;
    # mutable-globals (on by default anyway) for exporting __stack_pointer.
    # --shared-memory/--import-memory/--max-memory: one `shared` memory imported as
    # env.memory, so every instance (one per thread) uses the same memory.
    # __stack_pointer, __wasm_init_tls, __tls_size, __tls_align: each worker instance
    # gets its own stack and TLS block (run.mjs sets them before calling anything).
    flags=(
        -C target-feature=+atomics,+bulk-memory,+mutable-globals
        -C link-arg=--shared-memory
        -C link-arg=--import-memory
        -C link-arg=--max-memory=1073741824
        -C link-arg=--export=__stack_pointer
        -C link-arg=--export=__wasm_init_tls
        -C link-arg=--export=__tls_size
        -C link-arg=--export=__tls_align
    )
    # Exactly these flags (a RUSTFLAGS from the environment is replaced); changing them
    # rebuilds std.
    RUSTFLAGS="${flags[*]}" cargo +nightly build \
        -Z build-std=panic_abort,std \
        --target wasm32-unknown-unknown --release \
        --target-dir "$target_dir" \
        --manifest-path "$here/Cargo.toml"
fi

exec "${NODE:-node}" "$here/run.mjs" "$wasm"
