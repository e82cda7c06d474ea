//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is bump.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(bench_bump::Bump, bench_bump::Bump::new());
