//! The README's "In your own wasm-bindgen-test suite", as a user's test file that imports
//! the library's `pub static ALLOC` (it must not declare a `#[global_allocator]` of its
//! own: that fails to build with "the #[global_allocator] in this crate conflicts with
//! global allocator in: my_lib"). In Node by default, in headless Chromium or Firefox with
//! `WASM_BINDGEN_USE_BROWSER=1` and `CHROMEDRIVER` or `GECKODRIVER` set.
#![cfg(target_arch = "wasm32")]

use my_lib::ALLOC;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn wasm_alloc_is_the_allocator_in_use() {
    let block = Box::new([1u8; 100]);
    // The README's one-line check: on dlmalloc, wasm-alloc would have obtained nothing.
    assert!(ALLOC.stats().obtained_bytes > 0, "wasm-alloc is not the global allocator");
    // And the block is in one of its size classes (100 bytes take a 112-byte slot).
    let class = ALLOC.stats().classes.into_iter().find(|c| c.slot_size == 112).unwrap();
    assert!(class.used_bytes >= 112);
    assert_eq!(block.iter().map(|&b| b as usize).sum::<usize>(), 100);
}

#[wasm_bindgen_test]
fn word_counts_frees_what_it_allocates() {
    let input = "the cat saw the dog and the dog saw the cat ".repeat(500);
    let before = ALLOC.stats().in_use_bytes;
    let counts = my_lib::word_counts(&input);
    assert_eq!(counts[0], ("the".to_owned(), 2000));
    drop(counts);
    assert_eq!(ALLOC.stats().in_use_bytes, before);
}

#[wasm_bindgen_test]
fn shout_frees_what_it_allocates() {
    let before = ALLOC.stats().in_use_bytes;
    let loud = my_lib::shout("  split, upper-case   and join ");
    assert_eq!(loud, "SPLIT, UPPER-CASE AND JOIN");
    drop(loud);
    assert_eq!(ALLOC.stats().in_use_bytes, before);
}

/// The leak check can fail: a block that is never freed shows up in `in_use_bytes`.
#[wasm_bindgen_test]
fn a_leak_shows_up_in_in_use_bytes() {
    let before = ALLOC.stats().in_use_bytes;
    let leaked: &mut [u8] = Vec::leak(vec![0u8; 1000]);
    assert_eq!(leaked.len(), 1000);
    // 1000 bytes take a 1024-byte slot.
    assert_eq!(ALLOC.stats().in_use_bytes, before + 1024);
}
