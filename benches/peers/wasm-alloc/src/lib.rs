//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is wasm-alloc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(wasm_alloc::WasmAllocator, wasm_alloc::WasmAllocator::new());

/// `memory.grow` calls made by wasm-alloc (from `ALLOC.stats()`).
#[no_mangle]
pub extern "C" fn bench_stat_grow_calls() -> usize {
    GLOBAL.0.stats().grow_calls
}

/// 64 KiB pages wasm-alloc owns (its bytes obtained, in pages).
#[no_mangle]
pub extern "C" fn bench_stat_pages_obtained() -> usize {
    GLOBAL.0.stats().obtained_bytes / wasm_alloc::PAGE_SIZE
}

/// Of those, pages' worth of bytes free in its page layer.
#[no_mangle]
pub extern "C" fn bench_stat_pages_free() -> usize {
    GLOBAL.0.stats().free_bytes / wasm_alloc::PAGE_SIZE
}
