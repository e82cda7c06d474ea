//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is rlsf.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(rlsf::SmallGlobalTlsf, rlsf::SmallGlobalTlsf::new());
