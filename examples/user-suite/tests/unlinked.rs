//! The pitfall the README's "In your own wasm-bindgen-test suite" warns of: this test
//! file never names the library (no `use my_lib as _;`), so the library and its
//! `#[global_allocator]` are not linked, and the binary runs on Rust's default allocator.
//! If this test ever fails, rustc links unused dependencies and the README's warning can go.
#![cfg(target_arch = "wasm32")]

use wasm_alloc::{Memory, WasmMemory};
use wasm_bindgen_test::wasm_bindgen_test;

/// Nothing took the module's initial heap (see `tests/std_only.rs`): wasm-alloc is not
/// the allocator in use, although the library declares it.
#[wasm_bindgen_test]
fn without_use_my_lib_the_test_runs_on_the_default_allocator() {
    let text = format!("{:?}", vec![1, 2, 3]);
    assert_eq!(text, "[1, 2, 3]");
    assert!(
        WasmMemory::new().take_initial_heap().is_some(),
        "wasm-alloc is in use: the library was linked after all"
    );
}
