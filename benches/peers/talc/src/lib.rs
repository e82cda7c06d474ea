//! The benchmark workloads (`bench-workloads`) in a wasm module whose global allocator is talc.
#![cfg(target_arch = "wasm32")]
pub use bench_workloads;

bench_workloads::bench_allocator!(talc::wasm::WasmDynamicTalc, talc::wasm::new_wasm_dynamic_allocator());
