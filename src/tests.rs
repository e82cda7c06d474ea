//! Tests of the whole allocator through `GlobalAlloc`, over a region on the host: a
//! randomized model-checked run, out of memory, bad input, and the departures from Zig.

use core::alloc::{GlobalAlloc, Layout};
use std::vec::Vec;

use crate::checked::TAG_PAGES;
use crate::class::{class_of, slot_size, MAX_SLOT, MIN_SLOT};
use crate::page::UNITS_PER_PAGE;
use crate::page::{units_for, EXTENDED_PAGES, UNIT};
use crate::testing::{OwnedRegion, Rng, ShadowHeap};
use crate::{Memory, PageAllocator, Region, WasmAllocator, PAGE_SIZE};

type Alloc = WasmAllocator<OwnedRegion>;

/// An allocator over a region of `pages` pages, plus the checked mode's tag pages when
/// it is on, so that tests see the same room either way.
fn allocator(pages: usize) -> Alloc {
    WasmAllocator::with_memory(OwnedRegion::new(pages + TAG_PAGES))
}

/// A live block of the model test: where it is, its layout, and the seed of the bytes
/// written into it.
struct Block {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

/// Writes a pattern derived from `fill` into the first bytes and the last byte; the
/// check reads them back. Cheap enough for blocks of megabytes.
const PATTERN_BYTES: usize = 64;

fn pattern_at(fill: u8, i: usize) -> u8 {
    fill.wrapping_add(i as u8).wrapping_mul(31)
}

fn pattern_positions(len: usize) -> impl Iterator<Item = usize> {
    (0..len.min(PATTERN_BYTES)).chain((len > PATTERN_BYTES).then(|| len - 1))
}

fn write_pattern(ptr: *mut u8, len: usize, fill: u8) {
    for i in pattern_positions(len) {
        // SAFETY: `i < len`, and the block is live with at least `len` bytes.
        unsafe { ptr.add(i).write(pattern_at(fill, i)) };
    }
}

fn check_pattern(ptr: *const u8, len: usize, fill: u8) {
    check_pattern_prefix(ptr, len, len, fill);
}

/// Checks the pattern of a block of `len` bytes, of which only the first `kept` remain
/// (after realloc to a smaller size).
fn check_pattern_prefix(ptr: *const u8, len: usize, kept: usize, fill: u8) {
    for i in pattern_positions(len).filter(|&i| i < kept) {
        // SAFETY: as in `write_pattern`.
        let byte = unsafe { ptr.add(i).read() };
        assert_eq!(byte, pattern_at(fill, i), "byte {i} of block {ptr:p} (len {len}) changed");
    }
}

fn check_zero(ptr: *const u8, len: usize) {
    // SAFETY: the block is live with `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    // Miri spends ~100 µs a byte here: it checks the ends and every 509th byte.
    let stride = if cfg!(miri) { 509 } else { 1 };
    let mut sampled = bytes.iter().step_by(stride).chain(&bytes[len.saturating_sub(64)..]);
    assert!(sampled.all(|&b| b == 0), "alloc_zeroed block {ptr:p} (len {len}) not zero");
}

/// Sizes from 1 byte to a few MiB, most of them small as in real programs.
fn random_size(rng: &mut Rng, max: usize) -> usize {
    let size = match rng.below(10) {
        0..=5 => 1 + rng.below(256),
        6..=7 => 1 + rng.below(MAX_SLOT * 2),
        8 => 1 + rng.below(PAGE_SIZE * 8),
        _ => 1 + rng.below(max),
    };
    size.min(max)
}

fn random_align(rng: &mut Rng, max_log2: usize) -> usize {
    match rng.below(8) {
        0 => 1 << rng.below(max_log2 + 1),
        _ => 1 << rng.below(4),
    }
}

struct ModelRun {
    ops: usize,
    pages: usize,
    max_size: usize,
    max_align_log2: usize,
    live_target: usize,
}

/// Runs `ops` random operations against the allocator and a shadow model, checking
/// after every operation: pointers aligned, blocks inside the region, no overlap,
/// contents kept through realloc, zeroed memory zero; out of memory leaves everything
/// as it was, and the same request succeeds once enough is freed. Returns how many
/// requests failed for lack of memory.
fn model_test(seed: u64, run: &ModelRun) -> usize {
    let alloc = allocator(run.pages);
    let region = alloc.heap.with(|h| h.runs.memory.addresses());
    let mut rng = Rng::new(seed);
    let mut shadow = ShadowHeap::default();
    let mut live: Vec<Block> = Vec::new();
    let mut ooms = 0;
    let mut fill = 0u8;

    let admit = |shadow: &mut ShadowHeap, ptr: *mut u8, layout: Layout| {
        let addr = ptr.addr();
        assert_eq!(addr % layout.align(), 0, "{ptr:p} misaligned for {layout:?}");
        assert!(region.start <= addr && addr + layout.size() <= region.end, "{ptr:p} outside region");
        shadow.insert(addr, layout.size());
    };

    for op in 0..run.ops {
        // After every operation (the previous iteration's), the structures' invariants;
        // under Miri, where each check of the bitmap costs seconds, after every 16th.
        if !cfg!(miri) || op % 16 == 0 {
            if let Err(broken) = alloc.check_invariants() {
                panic!("{broken}");
            }
        }
        if op % 64 == 0 {
            assert_in_use_bytes(&alloc, &live);
        }
        fill = fill.wrapping_add(1);
        let grow_heap = live.len() < run.live_target;
        match rng.below(8) {
            0..=3 if grow_heap || live.is_empty() || rng.below(2) == 0 => {
                let size = random_size(&mut rng, run.max_size);
                let align = random_align(&mut rng, run.max_align_log2);
                let layout = Layout::from_size_align(size, align).unwrap();
                let zeroed = rng.below(4) == 0;
                // SAFETY: `layout` has a non-zero size.
                let ptr = unsafe {
                    if zeroed {
                        alloc.alloc_zeroed(layout)
                    } else {
                        alloc.alloc(layout)
                    }
                };
                if ptr.is_null() {
                    ooms += 1;
                    retry_after_freeing(&alloc, &mut live, &mut shadow, layout);
                    continue;
                }
                admit(&mut shadow, ptr, layout);
                if zeroed {
                    check_zero(ptr, size);
                }
                write_pattern(ptr, size, fill);
                live.push(Block { ptr, layout, fill });
            }
            4..=5 if !live.is_empty() => {
                let i = rng.below(live.len());
                let block = &mut live[i];
                let new_size = if rng.below(2) == 0 {
                    random_size(&mut rng, run.max_size)
                } else {
                    // Near the old size, to cross class and page edges often.
                    block.layout.size().saturating_add_signed(rng.below(64) as isize - 32).max(1)
                };
                check_pattern(block.ptr, block.layout.size(), block.fill);
                // SAFETY: the block is live with this layout; `new_size` is non-zero
                // and fits `isize` when rounded to the alignment.
                let ptr = unsafe { alloc.realloc(block.ptr, block.layout, new_size) };
                if ptr.is_null() {
                    // The old block must be untouched.
                    check_pattern(block.ptr, block.layout.size(), block.fill);
                    ooms += 1;
                    continue;
                }
                shadow.remove(block.ptr.addr());
                check_pattern_prefix(ptr, block.layout.size(), new_size, block.fill);
                let layout = Layout::from_size_align(new_size, block.layout.align()).unwrap();
                admit(&mut shadow, ptr, layout);
                write_pattern(ptr, new_size, fill);
                *block = Block { ptr, layout, fill };
            }
            _ if !live.is_empty() => {
                let block = live.swap_remove(rng.below(live.len()));
                check_pattern(block.ptr, block.layout.size(), block.fill);
                shadow.remove(block.ptr.addr());
                // SAFETY: the block is live with this layout.
                unsafe { alloc.dealloc(block.ptr, block.layout) };
            }
            _ => {}
        }
    }
    for block in live.drain(..) {
        check_pattern(block.ptr, block.layout.size(), block.fill);
        // SAFETY: the block is live with this layout.
        unsafe { alloc.dealloc(block.ptr, block.layout) };
    }
    if let Err(broken) = alloc.check_invariants() {
        panic!("{broken}");
    }
    let stats = alloc.stats();
    assert!(stats.free_bytes <= stats.obtained_bytes);
    ooms
}

/// `stats().in_use_bytes` is what the live blocks take (a slot at its class's size, a
/// run at its whole units), plus, at most, the page layer's own pages.
fn assert_in_use_bytes(alloc: &Alloc, live: &[Block]) {
    let taken = |layout: &Layout| match class_of(layout.size(), layout.align()) {
        Some(class) => slot_size(class),
        None => units_for(layout.size()) * UNIT,
    };
    let expected: usize = live.iter().map(|block| taken(&block.layout)).sum();
    let stats = alloc.stats();
    assert_eq!(stats.in_use_bytes, expected, "in use, against the live blocks");
    assert!(stats.overhead_bytes <= (TAG_PAGES + EXTENDED_PAGES) * PAGE_SIZE);
}

/// After a failed allocation: free blocks until the same request succeeds, which it
/// must once everything is freed (if it fits in the region at all).
fn retry_after_freeing(alloc: &Alloc, live: &mut Vec<Block>, shadow: &mut ShadowHeap, layout: Layout) {
    while let Some(block) = live.pop() {
        check_pattern(block.ptr, block.layout.size(), block.fill);
        shadow.remove(block.ptr.addr());
        // SAFETY: the block is live with this layout.
        unsafe { alloc.dealloc(block.ptr, block.layout) };
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: just allocated with this layout.
            unsafe { alloc.dealloc(ptr, layout) };
            return;
        }
    }
}

/// Operations per seed: 100,000 normally; Miri is ~1000x slower.
const OPS: usize = if cfg!(miri) { 300 } else { 100_000 };
const SEEDS: u64 = if cfg!(miri) { 2 } else { 8 };

#[test]
fn model_test_plenty_of_memory() {
    // Under Miri, every byte checked costs microseconds: smaller blocks, same shape.
    let run = if cfg!(miri) {
        ModelRun { ops: OPS, pages: 96, max_size: 256 << 10, max_align_log2: 18, live_target: 50 }
    } else {
        ModelRun { ops: OPS, pages: 4096, max_size: 4 << 20, max_align_log2: 20, live_target: 200 }
    };
    for seed in 0..SEEDS {
        model_test(seed, &run);
    }
}

#[test]
fn model_test_out_of_memory_often() {
    let run = if cfg!(miri) {
        ModelRun { ops: OPS, pages: 12, max_size: 128 << 10, max_align_log2: 17, live_target: 100 }
    } else {
        ModelRun { ops: OPS, pages: 48, max_size: 1 << 20, max_align_log2: 18, live_target: 400 }
    };
    let mut ooms = 0;
    for seed in 100..100 + SEEDS {
        ooms += model_test(seed, &run);
    }
    assert!(ooms > 0, "the page cap never caused an out-of-memory");
}

/// The long run behind the README's reliability table, not part of CI:
/// `WASM_ALLOC_LONG_OPS` operations (default 10^8) in runs of a million, alternating the
/// two configurations above, with every check of the model test (the invariants after
/// every operation among them). `cargo test --lib model_test_long -- --ignored
/// --nocapture`.
#[test]
#[ignore = "takes tens of minutes: run it with --ignored"]
fn model_test_long() {
    const PER_SEED: usize = 1_000_000;
    let total: usize =
        std::env::var("WASM_ALLOC_LONG_OPS").ok().and_then(|ops| ops.parse().ok()).unwrap_or(100_000_000);
    let plenty =
        ModelRun { ops: PER_SEED, pages: 4096, max_size: 4 << 20, max_align_log2: 20, live_target: 200 };
    let scarce =
        ModelRun { ops: PER_SEED, pages: 48, max_size: 1 << 20, max_align_log2: 18, live_target: 400 };
    let (mut ops, mut ooms) = (0, 0);
    for seed in 1000.. {
        if ops >= total {
            break;
        }
        ooms += model_test(seed, if seed % 2 == 0 { &plenty } else { &scarce });
        ops += PER_SEED;
    }
    std::println!("model_test_long: {ops} operations, {ooms} out-of-memory results, no failure");
}

/// `&dyn GlobalAlloc` callers may ask for zero bytes (outside the trait's contract): they
/// get distinct, aligned pointers.
#[test]
fn zero_size_requests_get_unique_aligned_pointers() {
    let alloc = allocator(64);
    let dynamic: &dyn GlobalAlloc = &alloc;
    let mut seen = ShadowHeap::default();
    for align in [1, 8, 64, MAX_SLOT, PAGE_SIZE, 4 * PAGE_SIZE] {
        let layout = Layout::from_size_align(0, align).unwrap();
        for _ in 0..3 {
            // SAFETY: deliberately outside the contract (size 0); must still be defined.
            let ptr = unsafe { dynamic.alloc(layout) };
            assert!(!ptr.is_null() && ptr.addr() % align == 0);
            seen.insert(ptr.addr(), 1);
        }
    }
}

#[test]
fn sizes_beyond_the_address_space_return_null() {
    let alloc = allocator(16);
    let max = isize::MAX as usize;
    for (size, align) in [(max, 1), (max - PAGE_SIZE + 1, PAGE_SIZE), (1 << 40, 8), (PAGE_SIZE * 17, 1)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        assert!(unsafe { alloc.alloc(layout) }.is_null(), "{layout:?}");
    }
    let align = 1 << (usize::BITS - 2);
    let layout = Layout::from_size_align(1, align).unwrap();
    // SAFETY: non-zero size.
    assert!(unsafe { alloc.alloc(layout) }.is_null());
    // Nothing was taken by the failures: the whole region is still there.
    let all = Layout::from_size_align(16 * PAGE_SIZE, 8).unwrap();
    // SAFETY: non-zero size.
    assert!(!unsafe { alloc.alloc(all) }.is_null());
}

#[test]
fn realloc_to_an_overflowing_size_returns_null_and_keeps_the_block() {
    let alloc = allocator(4);
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero size.
    let ptr = unsafe { alloc.alloc(layout) };
    write_pattern(ptr, 100, 7);
    // SAFETY: the block is live; the new size is out of the contract (overflows isize
    // when rounded), and must give null.
    assert!(unsafe { alloc.realloc(ptr, layout, usize::MAX - 3) }.is_null());
    check_pattern(ptr, 100, 7);
}

#[test]
fn realloc_within_a_slot_or_over_free_pages_stays_in_place() {
    let alloc = allocator(64);
    let layout = Layout::from_size_align(20, 4).unwrap();
    // SAFETY: non-zero sizes; each block is live with the layout passed.
    unsafe {
        let small = alloc.alloc(layout);
        assert_eq!(alloc.realloc(small, layout, 24), small, "same 24-byte slot");
        let layout = Layout::from_size_align(24, 4).unwrap();
        assert_ne!(alloc.realloc(small, layout, 25), small, "next class");

        let big = Layout::from_size_align(3 * PAGE_SIZE, 8).unwrap();
        let block = alloc.alloc(big);
        let grown = alloc.realloc(block, big, 10 * PAGE_SIZE);
        assert_eq!(grown, block, "the last block grows memory in place");
        let big = Layout::from_size_align(10 * PAGE_SIZE, 8).unwrap();
        assert_eq!(alloc.realloc(grown, big, PAGE_SIZE + 1), block, "shrinks in place");
    }
}

/// Big blocks take exactly the 4 KiB units they need, and freed neighbours merge by
/// themselves: two freed 3-page blocks serve one 6-page request without growing.
#[test]
fn big_blocks_take_exact_units_and_freed_neighbours_merge() {
    let alloc = allocator(64);
    let three = Layout::from_size_align(3 * PAGE_SIZE, 8).unwrap();
    let six = Layout::from_size_align(6 * PAGE_SIZE, 8).unwrap();
    // SAFETY: non-zero sizes; blocks freed with the layout they were allocated with.
    unsafe {
        let a = alloc.alloc(three);
        let b = alloc.alloc(three);
        let fence = alloc.alloc(three);
        assert_eq!(b.addr() - a.addr(), 3 * PAGE_SIZE);
        let obtained = alloc.stats().obtained_bytes;
        alloc.dealloc(a, three);
        alloc.dealloc(b, three);
        assert_eq!(alloc.alloc(six), a);
        assert_eq!(alloc.stats().obtained_bytes, obtained, "no growth");
        let _ = fence;
    }
}

/// The mid-size blocks that whole pages served badly: 200 blocks of 40,000 bytes take
/// 40 KiB each (10 units), not 64 KiB, and a 33 KiB block 36 KiB.
#[test]
fn mid_size_blocks_cost_about_their_size() {
    let alloc = allocator(256);
    let layout = Layout::from_size_align(40_000, 8).unwrap();
    // SAFETY: non-zero sizes; never freed (the allocator is dropped with its region).
    let blocks: Vec<_> = (0..200).map(|_| unsafe { alloc.alloc(layout) }).collect();
    assert!(blocks.iter().all(|b| !b.is_null()));
    let stats = alloc.stats();
    let used = stats.obtained_bytes - stats.free_bytes - TAG_PAGES * PAGE_SIZE;
    assert_eq!(used, 200 * 10 * 4096);
    // SAFETY: as above.
    let a = unsafe { alloc.alloc(Layout::from_size_align(33 << 10, 8).unwrap()) };
    // SAFETY: as above.
    let b = unsafe { alloc.alloc(Layout::from_size_align(8, 8).unwrap()) };
    assert!(!a.is_null() && !b.is_null());
    let after = alloc.stats();
    assert_eq!(after.obtained_bytes - after.free_bytes - TAG_PAGES * PAGE_SIZE - used, (36 << 10) + 4096);
}

#[test]
fn alignment_above_a_page_is_honoured() {
    let alloc = allocator(1024);
    for log2 in 16..=21 {
        let layout = Layout::from_size_align(100, 1 << log2).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(ptr.addr() % (1 << log2), 0, "align 2^{log2}");
    }
}

#[test]
fn alloc_zeroed_clears_recycled_memory() {
    let alloc = allocator(16);
    for size in [8, 100, 4096, MAX_SLOT, 3 * PAGE_SIZE] {
        let layout = Layout::from_size_align(size, MIN_SLOT).unwrap();
        // SAFETY: non-zero size; freed with its own layout.
        unsafe {
            let ptr = alloc.alloc(layout);
            ptr.write_bytes(0xAB, size);
            alloc.dealloc(ptr, layout);
            let again = alloc.alloc_zeroed(layout);
            assert_eq!(again, ptr, "recycled");
            check_zero(again, size);
        }
    }
}

/// Small programs live in the initial heap: its whole 4 KiB units after `__heap_base`,
/// and only then does memory grow.
#[test]
fn the_initial_heap_is_used_before_memory_grows() {
    let heap_start = PAGE_SIZE / 2 + 40;
    let initial = 2 + TAG_PAGES;
    let alloc = WasmAllocator::with_memory(OwnedRegion::with_initial_heap(8, initial, heap_start));
    let mut used = 0;
    let layout = Layout::from_size_align(1000, 8).unwrap();
    while used < PAGE_SIZE {
        // SAFETY: non-zero size; never freed (the allocator is dropped with its region).
        let ptr = unsafe { alloc.alloc(layout) };
        assert!(alloc.heap.with(|h| h.runs.memory.offset(ptr)) >= heap_start);
        used += layout.size();
    }
    let stats = alloc.stats();
    let whole_units = initial * PAGE_SIZE - heap_start.next_multiple_of(UNIT);
    assert_eq!((stats.grow_calls, stats.obtained_bytes), (0, whole_units));
}

#[test]
fn stats_account_for_every_page() {
    let alloc = allocator(64);
    let small = Layout::from_size_align(24, 8).unwrap();
    let big = Layout::from_size_align(2 * PAGE_SIZE, 8).unwrap();
    // SAFETY: non-zero sizes; freed with their own layouts.
    unsafe {
        let ptrs: Vec<_> = (0..10).map(|_| alloc.alloc(small)).collect();
        let block = alloc.alloc(big);
        for &ptr in &ptrs[..4] {
            alloc.dealloc(ptr, small);
        }
        alloc.dealloc(block, big);
    }
    let stats = alloc.stats();
    assert_eq!(stats.obtained_bytes, (3 + TAG_PAGES) * PAGE_SIZE);
    assert_eq!(stats.free_bytes, stats.obtained_bytes - UNIT - TAG_PAGES * PAGE_SIZE, "all but the span");
    let class = &stats.classes[2];
    assert_eq!((class.slot_size, class.spans, class.empty_spans, class.held_bytes), (24, 1, 0, UNIT));
    assert_eq!(class.used_bytes, 6 * 24);
    assert_eq!((stats.in_use_bytes, stats.overhead_bytes), (6 * 24, TAG_PAGES * PAGE_SIZE));
}

#[test]
fn a_page_allocators_stats_count_its_runs() {
    let alloc = PageAllocator::with_memory(OwnedRegion::new(64));
    let layouts = [(1, 1), (4097, 8), (3 * PAGE_SIZE, 4096), (100, 1 << 16)]
        .map(|(s, a)| Layout::from_size_align(s, a).unwrap());
    // SAFETY: non-zero sizes.
    let ptrs = layouts.map(|layout| unsafe { alloc.alloc(layout) });
    let stats = alloc.stats();
    let units = 1 + 2 + 3 * UNITS_PER_PAGE + 1;
    assert_eq!((stats.in_use_bytes, stats.overhead_bytes), (units * UNIT, TAG_PAGES * PAGE_SIZE));
    assert_eq!(stats.obtained_bytes - stats.free_bytes, stats.in_use_bytes + stats.overhead_bytes);
    assert!(stats
        .classes
        .iter()
        .all(|class| class.spans == 0 && class.held_bytes == 0 && class.slot_size > 0));
    for (ptr, layout) in ptrs.into_iter().zip(layouts) {
        // SAFETY: live with this layout.
        unsafe { alloc.dealloc(ptr, layout) };
    }
    assert_eq!(alloc.stats().in_use_bytes, 0);
}

/// A [`Memory`] that breaks the alignment the allocator needs: its byte 0 lies 64 bytes
/// past a 4 KiB boundary (otherwise it keeps every promise: one more page of the region
/// under it makes the last page whole).
struct SkewedMemory {
    inner: OwnedRegion,
}

/// How far [`SkewedMemory`]'s byte 0 lies past a 64 KiB boundary.
const SKEW: usize = 64;

impl SkewedMemory {
    fn new(pages: usize) -> Self {
        let inner = OwnedRegion::new(pages + 1);
        assert_eq!(inner.grow(1), Some(0));
        SkewedMemory { inner }
    }
}

// SAFETY: page `k` is bytes `k * PAGE_SIZE + SKEW ..` of the region, which has one page
// more than this memory, so every page is valid, zero when grown, and ours alone.
unsafe impl Memory for SkewedMemory {
    fn size(&self) -> usize {
        self.inner.size() - 1
    }
    fn grow(&self, delta: usize) -> Option<usize> {
        self.inner.grow(delta).map(|old| old - 1)
    }
    fn ptr(&self, offset: usize) -> *mut u8 {
        self.inner.ptr(offset + SKEW)
    }
    fn offset(&self, ptr: *const u8) -> usize {
        self.inner.offset(ptr) - SKEW
    }
    fn take_initial_heap(&self) -> Option<core::ops::Range<usize>> {
        None
    }
}

/// Regression: over a memory whose byte 0 is not 64 KiB aligned, blocks broke their
/// layout's alignment (a 4 KiB-aligned request came back at an address 64 past a 4 KiB
/// boundary) and frees masked to the wrong span header. Now every allocation returns
/// null, and nothing panics.
#[test]
fn a_memory_whose_start_is_misaligned_gives_only_nulls() {
    let layouts = [(8, 8), (100, 8), (4096, 4096), (3 * PAGE_SIZE, 8), (64, 1 << 16)]
        .map(|(size, align)| Layout::from_size_align(size, align).unwrap());
    let classes = WasmAllocator::with_memory(SkewedMemory::new(16 + TAG_PAGES));
    let pages = PageAllocator::with_memory(SkewedMemory::new(16 + TAG_PAGES));
    let heaps: [&dyn GlobalAlloc; 2] = [&classes, &pages];
    for (heap, layout) in heaps.into_iter().flat_map(|heap| layouts.map(|layout| (heap, layout))) {
        // SAFETY: non-zero sizes; a block handed out (the bug) is at least not freed.
        let ptr = unsafe { heap.alloc(layout) };
        assert!(ptr.is_null(), "{layout:?} at {ptr:p}");
    }
    assert_eq!(classes.stats().obtained_bytes + pages.stats().obtained_bytes, 0);
}

/// `grow_calls` counts every `memory.grow` call, refused ones too.
#[test]
fn a_refused_memory_grow_is_counted() {
    let alloc = WasmAllocator::with_memory(OwnedRegion::new(4 + TAG_PAGES).refusing(1));
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: a non-zero size.
    let refused = unsafe { alloc.alloc(layout) };
    assert!(refused.is_null());
    assert_eq!(alloc.stats().grow_calls, 1);
    // SAFETY: as above; freed with its layout.
    unsafe {
        let ptr = alloc.alloc(layout);
        assert!(!ptr.is_null());
        alloc.dealloc(ptr, layout);
    }
    assert!(alloc.stats().grow_calls >= 2);
}

/// The page layer's own pages (the extended bitmap once memory passes 128 MiB; the
/// checked mode's tags) are `overhead_bytes`, not `in_use_bytes`: a leak check across
/// work that first takes memory past 128 MiB still agrees.
#[test]
#[cfg_attr(miri, ignore = "a region of 130 MiB")]
fn in_use_bytes_agree_across_the_first_growth_past_128_mib() {
    let alloc = allocator(2048 + 64);
    let small = Layout::from_size_align(24, 8).unwrap();
    let big = Layout::from_size_align(2048 * PAGE_SIZE, 8).unwrap();
    // SAFETY: non-zero sizes; each block freed once, with its layout.
    unsafe {
        let kept = alloc.alloc(small);
        let before = alloc.stats();
        assert_eq!(before.overhead_bytes, TAG_PAGES * PAGE_SIZE);
        let ptr = alloc.alloc(big);
        assert!(!ptr.is_null());
        assert_eq!(alloc.stats().in_use_bytes, before.in_use_bytes + big.size());
        alloc.dealloc(ptr, big);
        let after = alloc.stats();
        assert_eq!(after.in_use_bytes, before.in_use_bytes, "{after:?}");
        assert_eq!(after.overhead_bytes, (TAG_PAGES + EXTENDED_PAGES) * PAGE_SIZE);
        alloc.dealloc(kept, small);
    }
}

#[test]
#[should_panic(expected = "exists only on wasm32")]
fn an_allocator_over_memory_0_off_wasm32_panics_naming_the_cause() {
    let _ = WasmAllocator::new();
}

#[test]
fn threads_share_one_allocator() {
    const THREADS: usize = 4;
    let alloc = allocator(512);
    let ops = if cfg!(miri) { 50 } else { 20_000 };
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let alloc = &alloc;
            scope.spawn(move || {
                let mut rng = Rng::new(t as u64);
                let mut live: Vec<Block> = Vec::new();
                for i in 0..ops {
                    if live.len() < 64 && rng.below(2) == 0 {
                        let layout = Layout::from_size_align(random_size(&mut rng, 1 << 18), 8).unwrap();
                        // SAFETY: non-zero size.
                        let ptr = unsafe { alloc.alloc(layout) };
                        assert!(!ptr.is_null());
                        write_pattern(ptr, layout.size(), i as u8);
                        live.push(Block { ptr, layout, fill: i as u8 });
                    } else if let Some(block) = live.pop() {
                        check_pattern(block.ptr, block.layout.size(), block.fill);
                        // SAFETY: live with this layout.
                        unsafe { alloc.dealloc(block.ptr, block.layout) };
                    }
                }
                for block in live {
                    check_pattern(block.ptr, block.layout.size(), block.fill);
                    // SAFETY: live with this layout.
                    unsafe { alloc.dealloc(block.ptr, block.layout) };
                }
            });
        }
    });
    let stats = alloc.stats();
    assert!(stats.obtained_bytes <= 512 * PAGE_SIZE);
}

mod bad_input;
