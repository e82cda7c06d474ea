//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is wasmalloc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(wasmalloc::WasmAlloc, wasmalloc::WasmAlloc::new());
