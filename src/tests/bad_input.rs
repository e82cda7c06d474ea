//! Rows of the README's bad-input table that a region on the host can show: realloc
//! across every class boundary, big blocks at the top of memory, and exhausted memory at
//! every cap from 1 to 64 pages. (Sizes and alignments up to 2^31 are in
//! tests/wasm_bad_input.rs, on real wasm32.)

use super::*;

/// Every class boundary, from 8 bytes to past the page size, up and back down; the
/// contents survive each move.
#[test]
fn realloc_across_every_class_boundary_and_back() {
    let alloc = allocator(64);
    let mut edges: Vec<usize> = (3..=18).map(|k| 1 << k).collect();
    edges.push(3 * PAGE_SIZE);
    for align in [1, 8, 64, 4096, PAGE_SIZE, 4 * PAGE_SIZE] {
        let mut layout = Layout::from_size_align(1, align).unwrap();
        // SAFETY: non-zero size.
        let mut ptr = unsafe { alloc.alloc(layout) };
        write_pattern(ptr, 1, 1);
        let mut path: Vec<usize> = edges.iter().flat_map(|&e| [e - 1, e, e + 1]).collect();
        path.extend(path.clone().into_iter().rev());
        let mut fill = 1u8;
        for new_size in path {
            // SAFETY: the block is live with `layout`; `new_size` is non-zero.
            let new = unsafe { alloc.realloc(ptr, layout, new_size) };
            assert!(!new.is_null(), "realloc {layout:?} -> {new_size}");
            assert_eq!(new.addr() % align, 0);
            check_pattern_prefix(new, layout.size(), new_size, fill);
            fill = fill.wrapping_add(1);
            layout = Layout::from_size_align(new_size, align).unwrap();
            write_pattern(new, new_size, fill);
            ptr = new;
        }
        // SAFETY: live with `layout`.
        unsafe { alloc.dealloc(ptr, layout) };
    }
}

/// A big block at the top of memory grows in place until the memory's cap, then
/// realloc returns null and the block is intact; shrinking and growing again stays in
/// place.
#[test]
fn realloc_of_a_big_block_at_the_top_of_memory() {
    // Checked mode takes its tag page first, below the block.
    let alloc = allocator(12);
    let mut layout = Layout::from_size_align(2 * PAGE_SIZE, 8).unwrap();
    // SAFETY: non-zero sizes; the block is live with `layout` throughout.
    unsafe {
        let ptr = alloc.alloc(layout);
        write_pattern(ptr, layout.size(), 9);
        for pages in [3, 7, 12] {
            assert_eq!(alloc.realloc(ptr, layout, pages * PAGE_SIZE), ptr, "grow to {pages} pages in place");
            check_pattern_prefix(ptr, layout.size(), pages * PAGE_SIZE, 9);
            layout = Layout::from_size_align(pages * PAGE_SIZE, 8).unwrap();
            write_pattern(ptr, layout.size(), 9);
        }
        assert!(alloc.realloc(ptr, layout, 13 * PAGE_SIZE).is_null(), "past the cap");
        check_pattern(ptr, layout.size(), 9);
        assert_eq!(alloc.realloc(ptr, layout, PAGE_SIZE), ptr, "shrink in place");
        layout = Layout::from_size_align(PAGE_SIZE, 8).unwrap();
        assert_eq!(alloc.realloc(ptr, layout, 12 * PAGE_SIZE), ptr, "and grow back");
        alloc.dealloc(ptr, Layout::from_size_align(12 * PAGE_SIZE, 8).unwrap());
    }
}

/// Memory exhausted at every cap from 1 to 64 pages: a mix of requests until the first
/// null, every block intact; after freeing everything, every 4 KiB unit not held by a
/// size class's one kept span (free, or not yet grown) is served again.
#[test]
fn exhausted_memory_at_every_cap_from_1_to_64_pages() {
    // Under Miri, where filling each memory costs minutes, a few caps of each kind.
    let caps: Vec<usize> = if cfg!(miri) { std::vec![1, 2, 3, 16, 17, 64] } else { (1..=64).collect() };
    for cap in caps {
        let alloc = allocator(cap);
        let mut rng = Rng::new(cap as u64);
        let mut live: Vec<Block> = Vec::new();
        loop {
            let size = match rng.below(3) {
                0 => 1 + rng.below(100),
                1 => 1 + rng.below(MAX_SLOT),
                _ => 1 + rng.below(3 * PAGE_SIZE),
            };
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size.
            let ptr = unsafe { alloc.alloc(layout) };
            if ptr.is_null() {
                break;
            }
            write_pattern(ptr, size, live.len() as u8);
            live.push(Block { ptr, layout, fill: live.len() as u8 });
        }
        for block in live.drain(..) {
            check_pattern(block.ptr, block.layout.size(), block.fill);
            // SAFETY: live with this layout.
            unsafe { alloc.dealloc(block.ptr, block.layout) };
        }
        let stats = alloc.stats();
        let room = (cap + TAG_PAGES) * PAGE_SIZE;
        assert!(stats.obtained_bytes <= room);
        assert!(stats.classes.iter().all(|c| c.spans == c.empty_spans && c.spans <= 1), "cap {cap}");
        // Aligned to a unit: a run of one unit, never a class slot.
        let unit = Layout::from_size_align(UNIT, UNIT).unwrap();
        // SAFETY: non-zero size; never freed (the allocator is dropped with its region).
        let served = (0..).take_while(|_| !unsafe { alloc.alloc(unit) }.is_null()).count();
        let not_grown = room - stats.obtained_bytes;
        assert_eq!(served * UNIT, stats.free_bytes + not_grown, "cap {cap}");
    }
}

/// Regression: `Region::grow` asserted the base's alignment while the allocator's lock
/// was held; as a host's `#[global_allocator]`, the panic machinery then allocated, spun
/// on the held lock and hung. Now the allocator refuses a memory that is not aligned
/// (`RunHeap::start`) before it asks it for anything: every allocation is null, nothing
/// panics, and the lock is free after each call (a second call and
/// `stats` would spin forever otherwise).
#[test]
fn a_misaligned_region_returns_null_and_never_panics_under_the_lock() {
    let buffer = OwnedRegion::new(4);
    // SAFETY: 8 bytes into a buffer of 4 pages that nothing else uses while `alloc`
    // lives; valid for 3 pages, as many as it may grow to.
    let region = unsafe { Region::new(buffer.ptr(0).wrapping_add(8), 3) };
    assert!(!region.is_aligned());
    let alloc = WasmAllocator::with_memory(region);
    for layout in [Layout::new::<u64>(), Layout::from_size_align(2 * PAGE_SIZE, 8).unwrap()] {
        for _ in 0..2 {
            // SAFETY: a non-zero size.
            assert!(unsafe { alloc.alloc(layout) }.is_null(), "{layout:?}");
        }
    }
    assert_eq!(alloc.stats().obtained_bytes, 0);
    // `alloc` is dropped before `buffer`, which outlives it.
}
