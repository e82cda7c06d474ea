//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is lol_alloc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

// SAFETY: wasm32 without atomics: one thread.
bench_workloads::bench_allocator!(lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator>, unsafe {
    lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new())
});
