//! `Capped`: a cap on a memory's size, at several caps, over a region larger than the cap.

use core::alloc::{GlobalAlloc, Layout};
use std::vec::Vec;

use crate::checked::TAG_PAGES;
use crate::testing::OwnedRegion;
use crate::{Capped, Memory, Region, WasmAllocator, WasmMemory, PAGE_SIZE};

/// Allocates the layouts in turn until one is null, writing a pattern into each block.
fn fill(alloc: &dyn GlobalAlloc, layouts: &[Layout]) -> Vec<(*mut u8, Layout)> {
    let mut blocks = Vec::new();
    loop {
        let layout = layouts[blocks.len() % layouts.len()];
        // SAFETY: a non-zero size.
        let p = unsafe { alloc.alloc(layout) };
        if p.is_null() {
            return blocks;
        }
        // SAFETY: the block has `layout.size()` bytes.
        unsafe { p.write_bytes(blocks.len() as u8, layout.size()) };
        blocks.push((p, layout));
        assert!(blocks.len() < 1 << 20, "memory never ran out");
    }
}

/// Checks every block's pattern (under Miri, which is slow at it, its ends only), then
/// frees them all.
fn check_and_free(alloc: &dyn GlobalAlloc, blocks: Vec<(*mut u8, Layout)>) {
    for (i, &(p, layout)) in blocks.iter().enumerate() {
        // SAFETY: each block is live with `layout.size()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p, layout.size()) };
        let checked = if cfg!(miri) { [bytes[0], bytes[bytes.len() - 1]].to_vec() } else { bytes.to_vec() };
        assert!(checked.iter().all(|&b| b == i as u8), "block {i} was overwritten");
    }
    for (p, layout) in blocks {
        // SAFETY: live with this layout; freed once.
        unsafe { alloc.dealloc(p, layout) };
    }
}

#[test]
fn a_capped_memory_stops_at_every_cap_and_serves_again() {
    let layouts = [
        Layout::from_size_align(24, 8).unwrap(),
        Layout::from_size_align(3000, 8).unwrap(),
        Layout::from_size_align(40_000, 16).unwrap(),
    ];
    let caps: &[usize] = if cfg!(miri) { &[0, 2] } else { &[0, 1, 2, 3, 5, 8] };
    for &extra in caps {
        let cap = TAG_PAGES + extra;
        let alloc = WasmAllocator::with_memory(Capped::new(OwnedRegion::new(cap + 8), cap));
        let blocks = fill(&alloc, &layouts);
        let full = blocks.len();
        let stats = alloc.stats();
        assert_eq!(stats.max_memory_bytes, Some(cap * PAGE_SIZE));
        assert!(stats.memory_bytes <= cap * PAGE_SIZE, "cap {cap}: {} B", stats.memory_bytes);
        assert!(cap * PAGE_SIZE - stats.memory_bytes < PAGE_SIZE, "cap {cap}: stopped early");
        assert_eq!(alloc.check_invariants(), Ok(()));
        if extra == 0 {
            assert_eq!(full, 0);
        }
        check_and_free(&alloc, blocks);
        assert_eq!(alloc.stats().in_use_bytes, 0);
        let again = fill(&alloc, &layouts);
        assert_eq!(again.len(), full, "cap {cap}: freed memory did not all serve again");
        check_and_free(&alloc, again);
        assert_eq!(alloc.check_invariants(), Ok(()));
    }
}

#[test]
fn the_cap_reported_is_the_lower_of_the_cap_and_the_memorys_own() {
    let region = OwnedRegion::new(4);
    // SAFETY: the region's buffer is 64 KiB aligned, 4 pages, and used by nothing else
    // while `inner` lives (it is never grown).
    let inner = unsafe { Region::new(region.ptr(0), 4) };
    assert_eq!(inner.max_pages(), Some(4));
    assert_eq!(Capped::new(inner, 9).max_pages(), Some(4));
    assert_eq!(Capped::new(WasmMemory::secondary(), 9).max_pages(), Some(9));
    assert_eq!(Capped::new(WasmMemory::secondary(), usize::MAX).max_pages(), Some(crate::PAGE_LIMIT));
    assert_eq!(WasmMemory::secondary().max_pages(), None);
    assert_eq!(WasmAllocator::with_memory(WasmMemory::secondary()).stats().max_memory_bytes, None);
}
