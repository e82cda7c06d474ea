//! wasm-alloc as the `#[global_allocator]` of a wasm-bindgen library: every `String`,
//! `Vec` and `HashMap` below, and the buffers wasm-bindgen's glue allocates to pass
//! strings and arrays across the JS boundary, come from it. See README.md.

use std::collections::HashMap;
use std::fmt::Write as _;

use wasm_bindgen::prelude::*;

// The one line a user adds. Gated so that host builds (`cargo test --workspace`) keep
// std's allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

/// The `top` most frequent words of `text`, one `word count` a line, most frequent
/// first and ties in alphabetical order. Words are runs of letters, digits and
/// apostrophes, compared in lower case.
#[wasm_bindgen]
pub fn word_frequencies(text: &str, top: usize) -> String {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let word = word.trim_matches('\'');
        if !word.is_empty() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, u32)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
    let mut out = String::new();
    for (word, count) in ranked.iter().take(top) {
        if !out.is_empty() {
            out.push('\n');
        }
        write!(out, "{word} {count}").unwrap();
    }
    out
}

/// The primes up to and including `n` (a sieve of Eratosthenes); a `Uint32Array` in
/// JavaScript.
#[wasm_bindgen]
pub fn primes_up_to(n: u32) -> Vec<u32> {
    let n = n as usize;
    let mut composite = vec![false; n + 1];
    let mut primes = Vec::new();
    for i in 2..=n {
        if !composite[i] {
            primes.push(i as u32);
            // i² overflows a 32-bit usize once i passes 65535; no multiple is left then.
            if let Some(square) = i.checked_mul(i) {
                for multiple in (square..=n).step_by(i) {
                    composite[multiple] = true;
                }
            }
        }
    }
    primes
}

/// What [`heap_stats`] reports: a summary of `wasm_alloc::Stats`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    /// `memory.grow` calls the allocator made.
    #[wasm_bindgen(readonly)]
    pub grow_calls: usize,
    /// Bytes the allocator obtained from wasm memory.
    #[wasm_bindgen(readonly)]
    pub obtained_bytes: usize,
    /// Of those, bytes free in its page layer (returned by freed spans and large blocks).
    #[wasm_bindgen(readonly)]
    pub free_bytes: usize,
    /// Bytes of small blocks (size-class slots) in use.
    #[wasm_bindgen(readonly)]
    pub class_used_bytes: usize,
}

/// The global allocator's statistics, for the page and the tests.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn heap_stats() -> HeapStats {
    let stats = ALLOC.stats();
    HeapStats {
        grow_calls: stats.grow_calls,
        obtained_bytes: stats.obtained_bytes,
        free_bytes: stats.free_bytes,
        class_used_bytes: stats.classes.iter().map(|class| class.used_bytes).sum(),
    }
}
