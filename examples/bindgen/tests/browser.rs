//! The example's exports in headless Chromium, with wasm-alloc as the test binary's
//! global allocator (the library's `#[global_allocator]` applies to everything linked
//! with it, the test harness included):
//!
//! `CHROMEDRIVER=$(command -v chromedriver) WASM_BINDGEN_USE_BROWSER=1 \
//!     cargo test -p wasm-alloc-example-bindgen --target wasm32-unknown-unknown`
#![cfg(target_arch = "wasm32")]

use wasm_alloc_example_bindgen::{heap_stats, primes_up_to, word_frequencies};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn word_frequencies_ranks_by_count_then_word() {
    let text = "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox doesn't.";
    assert_eq!(word_frequencies(text, 4), "the 4\ndog 2\nfox 2\nbrown 1");
    assert_eq!(word_frequencies(text, 100).lines().count(), 10);
    assert_eq!(word_frequencies("  ... ''  ", 5), "");
}

#[wasm_bindgen_test]
fn word_frequencies_of_a_megabyte() {
    let vocabulary = ["gamma", "alpha", "epsilon", "delta", "beta"];
    let mut text = String::new();
    for i in 0..200_000 {
        text.push_str(vocabulary[i % vocabulary.len()]);
        text.push(' ');
    }
    text.push_str("Zeta");
    assert!(text.len() > 1_000_000);
    assert_eq!(word_frequencies(&text, 3), "alpha 40000\nbeta 40000\ndelta 40000");
    assert!(word_frequencies(&text, 10).ends_with("gamma 40000\nzeta 1"));
}

#[wasm_bindgen_test]
fn primes() {
    assert_eq!(primes_up_to(30), [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(primes_up_to(1).is_empty());
    assert_eq!(primes_up_to(2), [2]);
    let million = primes_up_to(1_000_000);
    assert_eq!(million.len(), 78_498);
    assert_eq!(million.last(), Some(&999_983));
}

#[wasm_bindgen_test]
fn the_global_allocator_is_wasm_alloc() {
    // The harness and the tests before this one have allocated through it already.
    let start = heap_stats();
    assert!(start.obtained_bytes > 0, "wasm-alloc has obtained no memory: {start:?}");

    // A small block is a slot of a size class.
    let small = Box::new([7u8; 100]);
    let with_small = heap_stats();
    assert!(
        with_small.class_used_bytes >= start.class_used_bytes + 100,
        "a 100-byte Box is not in wasm-alloc's classes: {start:?} then {with_small:?}"
    );

    // A large block is a run of 4 KiB units, free in the page layer again once dropped.
    const BIG: usize = 16 << 20;
    let big = vec![1u8; BIG];
    let with_big = heap_stats();
    assert!(with_big.obtained_bytes >= BIG, "a 16 MiB Vec is not from wasm-alloc: {with_big:?}");
    assert_eq!(big.iter().map(|&b| b as usize).sum::<usize>(), BIG);
    drop(big);
    let freed = heap_stats();
    assert!(
        freed.free_bytes >= with_big.free_bytes + BIG,
        "dropping 16 MiB did not free it in wasm-alloc: {with_big:?} then {freed:?}"
    );

    assert_eq!(*small, [7u8; 100]);
    drop(small);
    assert_eq!(heap_stats().class_used_bytes, start.class_used_bytes);
}
