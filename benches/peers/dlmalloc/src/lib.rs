//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is dlmalloc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(dlmalloc::GlobalDlmalloc, dlmalloc::GlobalDlmalloc);
