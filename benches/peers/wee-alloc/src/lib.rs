//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is wee_alloc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(wee_alloc::WeeAlloc<'static>, wee_alloc::WeeAlloc::INIT);
