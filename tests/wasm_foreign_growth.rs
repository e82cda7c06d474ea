//! Regression test for issue 7, item 1: JavaScript grows memory before the first
//! allocation.
//!
//! Pages that other code grows (JavaScript's `memory.grow`, another allocator) belong to
//! that code. Before the fix, the allocator took `__heap_base .. memory.size()` as its
//! initial heap at its first slow path, so pages grown before that point were handed out
//! as its own, and as already zero, while their owner was still using them.
//!
//! Here the `#[global_allocator]` is a thin wrapper around `WasmAllocator::new()` that, on
//! its very first call, grows memory 0 by [`FOREIGN_PAGES`] pages itself (the same
//! `memory.grow` instruction JavaScript's `WebAssembly.Memory.grow` runs), fills them with
//! [`FOREIGN_BYTE`], and records where they are; then it delegates. Every block it hands
//! out, including all of the test harness's own allocations, is checked against those
//! pages. Run in Node and in headless Chromium by `bash .ci/test`.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_grow;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

/// Pages grown by "foreign" code before the allocator's first allocation.
const FOREIGN_PAGES: usize = 8;
/// What the foreign code wrote into its pages.
const FOREIGN_BYTE: u8 = 0xA5;

/// Byte address of the first foreign page; 0 until the first call grew them.
static FOREIGN_START: AtomicUsize = AtomicUsize::new(0);
/// Non-null blocks handed out so far (the check below is live, not vacuous).
static BLOCKS_CHECKED: AtomicUsize = AtomicUsize::new(0);
/// Blocks handed out that overlap the foreign pages, and the first such address.
static BLOCKS_IN_FOREIGN_PAGES: AtomicUsize = AtomicUsize::new(0);
static FIRST_BLOCK_IN_FOREIGN_PAGES: AtomicUsize = AtomicUsize::new(0);

/// `WasmAllocator::new()`, after foreign code grew memory on the very first call.
struct GrownFirst(WasmAllocator);

#[global_allocator]
static ALLOC: GrownFirst = GrownFirst(WasmAllocator::new());

/// The foreign pages, as byte addresses.
fn foreign_pages() -> Range<usize> {
    let start = FOREIGN_START.load(Relaxed);
    assert_ne!(start, 0, "the foreign pages were never grown");
    start..start + FOREIGN_PAGES * PAGE_SIZE
}

impl GrownFirst {
    /// On the first call only: grows the foreign pages, fills them, records them. No
    /// panics here (a panic allocates); a failed grow traps.
    fn grow_foreign_pages_once(&self) {
        if FOREIGN_START.load(Relaxed) != 0 {
            return;
        }
        let old = memory_grow(0, FOREIGN_PAGES);
        if old == usize::MAX {
            core::arch::wasm32::unreachable();
        }
        let start = old * PAGE_SIZE;
        let pages: *mut u8 = core::ptr::with_exposed_provenance_mut(start);
        // SAFETY: `memory.grow` just added these pages to memory 0; nothing else knows
        // of them yet, so this is the only code writing them.
        unsafe { pages.write_bytes(FOREIGN_BYTE, FOREIGN_PAGES * PAGE_SIZE) };
        FOREIGN_START.store(start, Relaxed);
    }

    /// Records whether a block handed out overlaps the foreign pages (grown by now).
    fn check(&self, block: *mut u8, size: usize) -> *mut u8 {
        if !block.is_null() {
            BLOCKS_CHECKED.fetch_add(1, Relaxed);
            let start = FOREIGN_START.load(Relaxed);
            if overlaps(block as usize, size, &(start..start + FOREIGN_PAGES * PAGE_SIZE)) {
                BLOCKS_IN_FOREIGN_PAGES.fetch_add(1, Relaxed);
                let _ = FIRST_BLOCK_IN_FOREIGN_PAGES.compare_exchange(0, block as usize, Relaxed, Relaxed);
            }
        }
        block
    }
}

/// Whether bytes `start..start + size` (at least one byte) meet `range`.
fn overlaps(start: usize, size: usize, range: &Range<usize>) -> bool {
    start < range.end && range.start < start + size.max(1)
}

// SAFETY: every call is delegated unchanged to `WasmAllocator`, a sound `GlobalAlloc`;
// the wrapper only grows memory it then keeps for itself, and reads addresses.
unsafe impl GlobalAlloc for GrownFirst {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.grow_foreign_pages_once();
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.grow_foreign_pages_once();
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.grow_foreign_pages_once();
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.grow_foreign_pages_once();
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.realloc(ptr, layout, new_size) }, new_size)
    }
}

/// Sizes from the smallest slot to multi-page blocks, with their alignments.
fn layouts() -> Vec<Layout> {
    let mut layouts = Vec::new();
    for size in
        [1, 8, 24, 100, 1000, 4096, 20_000, 32 * 1024, 32 * 1024 + 1, PAGE_SIZE, 3 * PAGE_SIZE + 5, 1 << 20]
    {
        for align in [1, 8, 64, 4096, 2 * PAGE_SIZE] {
            layouts.push(Layout::from_size_align(size, align).unwrap());
        }
    }
    layouts
}

/// Allocates every layout of [`layouts`] `copies` times through the global allocator.
fn allocate_many(copies: usize, zeroed: bool) -> Vec<(*mut u8, Layout)> {
    let mut blocks = Vec::new();
    for _ in 0..copies {
        for layout in layouts() {
            // SAFETY: every layout has a non-zero size.
            let p = unsafe {
                if zeroed {
                    ALLOC.alloc_zeroed(layout)
                } else {
                    ALLOC.alloc(layout)
                }
            };
            assert!(!p.is_null(), "{layout:?}: out of memory");
            blocks.push((p, layout));
        }
    }
    blocks
}

fn free_all(blocks: Vec<(*mut u8, Layout)>) {
    for (p, layout) in blocks {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { ALLOC.dealloc(p, layout) };
    }
}

/// Before the fix the first class page and the first big blocks came straight from the
/// foreign pages: the initial heap reached up to `memory.size()`, which included them.
#[wasm_bindgen_test]
fn no_block_lies_in_pages_js_grew_before_the_first_allocation() {
    let foreign = foreign_pages();
    let blocks = allocate_many(4, false);
    let mut boxes: Vec<Box<[u64]>> =
        (0..2000).map(|i| vec![i as u64; 1 + i % 40].into_boxed_slice()).collect();
    boxes.retain(|b| b[0] % 3 != 0);
    for &(p, layout) in &blocks {
        assert!(
            !overlaps(p as usize, layout.size(), &foreign),
            "{layout:?} block at {p:?} lies in the pages JS grew, {foreign:x?}"
        );
    }
    free_all(blocks);
    // Everything else, the harness's allocations and the boxes above included.
    assert!(BLOCKS_CHECKED.load(Relaxed) > 2000);
    assert_eq!(
        BLOCKS_IN_FOREIGN_PAGES.load(Relaxed),
        0,
        "the first block in the pages JS grew ({foreign:x?}) is at {:#x}",
        FIRST_BLOCK_IN_FOREIGN_PAGES.load(Relaxed)
    );
}

/// Before the fix the allocator wrote its blocks (and free-list nodes) over the bytes JS
/// had put into its pages.
#[wasm_bindgen_test]
fn pages_js_grew_before_the_first_allocation_keep_their_bytes() {
    let blocks = allocate_many(4, false);
    for &(p, layout) in &blocks {
        // SAFETY: a live block of `layout.size()` bytes.
        unsafe { p.write_bytes(0x3C, layout.size()) };
    }
    free_all(blocks);
    let foreign = foreign_pages();
    let pages: *const u8 = core::ptr::with_exposed_provenance(foreign.start);
    // SAFETY: the foreign pages are part of memory 0 (memory never shrinks) and, if the
    // allocator is right, used by no one: reading them races with nothing.
    let bytes = unsafe { core::slice::from_raw_parts(pages, foreign.len()) };
    let changed = bytes.iter().filter(|&&b| b != FOREIGN_BYTE).count();
    let first = bytes.iter().position(|&b| b != FOREIGN_BYTE).map(|i| foreign.start + i);
    assert_eq!(changed, 0, "{changed} bytes of the pages JS grew were overwritten, the first at {first:x?}");
}

/// Before the fix the allocator believed the foreign pages were fresh from its own
/// `memory.grow`, hence zero, and returned them from `alloc_zeroed` without zeroing.
#[wasm_bindgen_test]
fn alloc_zeroed_is_zero_after_js_grew_memory_before_the_first_allocation() {
    let blocks = allocate_many(4, true);
    for &(p, layout) in &blocks {
        // SAFETY: a live block of `layout.size()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p, layout.size()) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!("alloc_zeroed({layout:?}) at {p:?}: byte {i} is {:#x}", bytes[i]);
        }
    }
    free_all(blocks);
}
