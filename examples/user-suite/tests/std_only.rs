//! A test file that never calls the library: without `use my_lib as _;` the library is
//! not linked into this test binary, so neither is its `#[global_allocator]`, and the
//! tests would silently run on Rust's default allocator (dlmalloc). `tests/unlinked.rs`
//! shows that happening.
#![cfg(target_arch = "wasm32")]

use my_lib as _; // links the library, and with it wasm-alloc as the global allocator

use std::collections::BTreeMap;

use wasm_alloc::{Memory, WasmMemory};
use wasm_bindgen_test::wasm_bindgen_test;

/// Without naming the library: wasm-alloc as the global allocator takes the module's
/// initial heap at its first allocation (the harness allocated before this test), and
/// only one `WasmMemory` per module ever gets it, so asking for it again gets nothing.
#[wasm_bindgen_test]
fn wasm_alloc_is_the_global_allocator() {
    let map: BTreeMap<u32, String> = (0..100).map(|i| (i, i.to_string())).collect();
    assert_eq!(map[&42], "42");
    assert_eq!(
        WasmMemory::new().take_initial_heap(),
        None,
        "the initial heap was free: wasm-alloc is not in use"
    );
}
