//! A memory cap chosen by the user: the `#[global_allocator]` is
//! `WasmAllocator::with_max_pages(GLOBAL_CAP)`, and secondary instances over
//! `Capped<WasmMemory>` are capped a few pages above the memory's size. At each cap,
//! out of memory is null, every block is intact, `stats()` says how near the cap memory
//! is, and what is freed serves again. Run in Node, Chromium and Firefox by
//! `bash .ci/test`.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_size;

use wasm_alloc::{Capped, WasmAllocator, WasmMemory, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

/// The global allocator's cap: 256 pages, 16 MiB.
const GLOBAL_CAP: usize = 256;

#[global_allocator]
static ALLOC: WasmAllocator<Capped> = WasmAllocator::with_max_pages(GLOBAL_CAP);

/// Allocates blocks of the layouts in `layouts`, in turn, from `heap` until one is null,
/// writing a pattern into each; returns them. `blocks` must have room for all of them,
/// so that nothing else allocates (and grows memory) while the heap fills.
fn fill(heap: &dyn GlobalAlloc, layouts: &[Layout], blocks: &mut Vec<(*mut u8, Layout)>) {
    loop {
        let layout = layouts[blocks.len() % layouts.len()];
        assert!(blocks.len() < blocks.capacity(), "memory never ran out: is the cap in force?");
        // SAFETY: a non-zero size.
        let p = unsafe { heap.alloc(layout) };
        if p.is_null() {
            return;
        }
        // SAFETY: the block has `layout.size()` bytes.
        unsafe { p.write_bytes(blocks.len() as u8, layout.size()) };
        blocks.push((p, layout));
    }
}

fn assert_intact(blocks: &[(*mut u8, Layout)]) {
    for (i, &(p, layout)) in blocks.iter().enumerate() {
        // SAFETY: each block is live with `layout.size()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p, layout.size()) };
        assert!(bytes.iter().all(|&b| b == i as u8), "block {i} was overwritten");
    }
}

fn free_all(heap: &dyn GlobalAlloc, blocks: &mut Vec<(*mut u8, Layout)>) {
    for (p, layout) in blocks.drain(..) {
        // SAFETY: live with this layout; freed once.
        unsafe { heap.dealloc(p, layout) };
    }
}

/// Small slots, a mid-size class and runs, in turn.
fn mixed_layouts() -> [Layout; 3] {
    [
        Layout::from_size_align(24, 8).unwrap(),
        Layout::from_size_align(3000, 8).unwrap(),
        Layout::from_size_align(40_000, 16).unwrap(),
    ]
}

#[wasm_bindgen_test]
fn secondary_instances_stop_at_every_cap() {
    for extra in [0, 1, 2, 3, 5, 16, 40] {
        let mut blocks = Vec::with_capacity(100_000);
        let cap = memory_size(0) + extra;
        let alloc = WasmAllocator::with_memory(Capped::new(WasmMemory::secondary(), cap));
        fill(&alloc, &mixed_layouts(), &mut blocks);
        let full = blocks.len();
        let stats = alloc.stats();
        assert!(memory_size(0) <= cap, "cap {cap}: memory grew to {} pages", memory_size(0));
        assert_eq!(stats.max_memory_bytes, Some(cap * PAGE_SIZE));
        assert!(stats.memory_bytes <= cap * PAGE_SIZE);
        assert!(stats.obtained_bytes <= extra * PAGE_SIZE);
        // A run needs 10 units: what is left below the cap is less than a page more.
        assert!(cap * PAGE_SIZE - stats.memory_bytes < 2 * PAGE_SIZE, "cap {cap}: stopped early");
        if extra == 0 {
            assert_eq!(full, 0, "nothing may be grown at a cap of the current size");
        }
        assert_intact(&blocks);
        assert_eq!(alloc.check_invariants(), Ok(()));

        // Freed, everything serves again: the same blocks fit under the cap once more.
        free_all(&alloc, &mut blocks);
        assert_eq!(alloc.stats().in_use_bytes, 0);
        fill(&alloc, &mixed_layouts(), &mut blocks);
        assert_eq!(blocks.len(), full, "cap {cap}: freed memory did not all serve again");
        assert_intact(&blocks);
        assert!(memory_size(0) <= cap);
        free_all(&alloc, &mut blocks);
        assert_eq!(alloc.check_invariants(), Ok(()));
    }
}

#[wasm_bindgen_test]
fn the_global_allocator_stops_at_its_cap() {
    let stats = ALLOC.stats();
    assert_eq!(stats.max_memory_bytes, Some(GLOBAL_CAP * PAGE_SIZE));
    assert_eq!(stats.memory_bytes, memory_size(0) * PAGE_SIZE);

    // 1 MiB vectors until one cannot be had.
    let mut vectors: Vec<Vec<u8>> = Vec::with_capacity(GLOBAL_CAP / 16);
    loop {
        let mut v = Vec::new();
        if v.try_reserve_exact(1 << 20).is_err() {
            break;
        }
        v.resize(1 << 20, vectors.len() as u8);
        vectors.push(v);
        assert!(vectors.len() < GLOBAL_CAP / 16, "memory never ran out: is the cap in force?");
    }
    let full_at = memory_size(0);
    // Straight through the trait, too: null, not a trap.
    let layout = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: a non-zero size.
    let null = unsafe { ALLOC.alloc(layout) }.is_null();
    let headroom = {
        let stats = ALLOC.stats();
        stats.max_memory_bytes.unwrap() - stats.memory_bytes
    };
    // Free some before asserting, so that a failure can be reported.
    let kept = vectors.len() - 2;
    vectors.truncate(kept);
    assert!(null);
    assert!(full_at <= GLOBAL_CAP && full_at + 17 > GLOBAL_CAP, "stopped at {full_at} pages of {GLOBAL_CAP}");
    assert!(headroom < 17 * PAGE_SIZE, "{headroom} bytes below the cap");
    assert!(kept > 8, "only {kept} MiB fitted in {GLOBAL_CAP} pages");
    for (i, v) in vectors.iter().enumerate() {
        assert!(v.iter().all(|&b| b == i as u8), "vector {i} was overwritten");
    }
    // What was freed serves the same request again, without growing.
    let again = vec![9u8; 1 << 20];
    assert!(again.iter().all(|&b| b == 9));
    assert_eq!(memory_size(0), full_at);
    assert_eq!(ALLOC.check_invariants(), Ok(()));
}
