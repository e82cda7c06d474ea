//! A user's wasm-bindgen library, as the README's "In your own wasm-bindgen-test suite"
//! assumes one: it declares wasm-alloc as its `#[global_allocator]` in a `pub static`,
//! so that its tests can read the allocator's `stats()`. The tests in `tests/` do what
//! that section says; see README.md.

use wasm_bindgen::prelude::*;

/// The library's global allocator. `pub`, so that a test can `use my_lib::ALLOC;` and
/// read `ALLOC.stats()`; a test must not declare a second `#[global_allocator]`.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
pub static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

/// `text` split on whitespace, each word upper-cased, joined by single spaces.
#[wasm_bindgen]
pub fn shout(text: &str) -> String {
    text.split_whitespace().map(str::to_uppercase).collect::<Vec<_>>().join(" ")
}

/// Counts of each distinct word of `text` (split on whitespace), most frequent first,
/// ties in order of first appearance.
pub fn word_counts(text: &str) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for word in text.split_whitespace() {
        match counts.iter_mut().find(|(w, _)| w == word) {
            Some((_, n)) => *n += 1,
            None => counts.push((word.to_owned(), 1)),
        }
    }
    counts.sort_by(|(_, a), (_, b)| b.cmp(a));
    counts
}
