//! Code size as users build it: a wasm-bindgen library with one export that splits a
//! string, upper-cases each word and joins them, and one allocator per feature (the
//! issue 17 measurement). `cargo bench` builds it in the default `release` profile and
//! in `app-size` (opt-level "z", LTO, one codegen unit), runs wasm-bindgen, and reports
//! the final `.wasm`: release as is, release + `wasm-opt -O` (as wasm-pack does), and
//! app-size + `wasm-opt -Oz`.

use wasm_bindgen::prelude::*;

#[cfg(all(target_arch = "wasm32", feature = "wasm-alloc"))]
#[global_allocator]
static A: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

#[cfg(all(target_arch = "wasm32", feature = "wasmalloc"))]
#[global_allocator]
static A: wasmalloc::WasmAlloc = wasmalloc::WasmAlloc::new();

#[cfg(all(target_arch = "wasm32", feature = "talc"))]
#[global_allocator]
static A: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(all(target_arch = "wasm32", feature = "rlsf"))]
#[global_allocator]
static A: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

// SAFETY: wasm32 without atomics: one thread.
#[cfg(all(target_arch = "wasm32", feature = "lol_alloc"))]
#[global_allocator]
static A: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(all(target_arch = "wasm32", feature = "wee_alloc"))]
#[global_allocator]
static A: wee_alloc::WeeAlloc<'static> = wee_alloc::WeeAlloc::INIT;

#[cfg(all(target_arch = "wasm32", feature = "bump"))]
#[global_allocator]
static A: bench_bump::Bump = bench_bump::Bump::new();

/// `text` split on whitespace, each word upper-cased, joined by single spaces.
#[wasm_bindgen]
pub fn shout(text: &str) -> String {
    text.split_whitespace().map(str::to_uppercase).collect::<Vec<_>>().join(" ")
}
