//! Regression test for issue 7, item 1: dlmalloc as the `#[global_allocator]` plus a
//! `WasmAllocator` as `&dyn GlobalAlloc`.
//!
//! A `no_std` crate may hold a `WasmAllocator` over memory 0 as a `&dyn GlobalAlloc`
//! beside whatever global allocator the binary has. Rust's default on wasm32 is dlmalloc,
//! which starts with the module's initial heap, `__heap_base..__heap_end`, then grows
//! memory. Before the fix, the `WasmAllocator` took `__heap_base .. memory.size()` at its
//! first slow path: dlmalloc's initial heap and every page dlmalloc had grown by then, so
//! the two allocators handed out the same bytes. `WasmAllocator::secondary()` uses only
//! pages its own `memory.grow` calls return.
//!
//! `build.rs` links this binary with a 4 MiB initial memory, so that dlmalloc's first
//! segment is the initial heap (it is skipped when too small for that segment), as it is
//! in programs linked with a large `--initial-memory`.
//!
//! Run in Node and in headless Chromium by `bash .ci/test`:
//! `cargo test -p wasm-alloc-coexist --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

#[global_allocator]
static GLOBAL: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The allocator under test, as a library would keep it: not the global allocator.
static LOCAL: WasmAllocator = WasmAllocator::secondary();

extern "C" {
    /// Defined by the linker: the first byte after the stack and static data.
    static __heap_base: u8;
    /// Defined by the linker: the end of the module's initial memory.
    static __heap_end: u8;
}

/// The module's initial heap, as byte addresses.
fn initial_heap() -> Range<usize> {
    core::ptr::addr_of!(__heap_base) as usize..core::ptr::addr_of!(__heap_end) as usize
}

/// A deterministic byte for position `i` of a block seeded by `seed`.
fn byte(seed: usize, i: usize) -> u8 {
    seed.wrapping_mul(2654435761).wrapping_add(i.wrapping_mul(40503)).to_le_bytes()[1]
}

/// A block from `LOCAL`, to be filled with the pattern of `seed`.
struct LocalBlock {
    ptr: *mut u8,
    layout: Layout,
    seed: usize,
}

impl LocalBlock {
    /// Allocates `layout` from `heap`, writing nothing into it yet: where two allocators
    /// overlap, a write would corrupt the other's blocks (and the harness's) before the
    /// overlap could be reported.
    fn new(heap: &dyn GlobalAlloc, layout: Layout, seed: usize) -> Self {
        // SAFETY: every layout used has a non-zero size.
        let ptr = unsafe { heap.alloc(layout) };
        assert!(!ptr.is_null(), "{layout:?}: out of memory");
        assert_eq!(ptr as usize % layout.align(), 0, "{layout:?} misaligned");
        LocalBlock { ptr, layout, seed }
    }

    fn fill(&self) {
        for i in 0..self.layout.size() {
            // SAFETY: within the block, which is live.
            unsafe { self.ptr.add(i).write(byte(self.seed, i)) };
        }
    }

    fn intact(&self) -> bool {
        // SAFETY: a live block of `layout.size()` bytes, filled before this is called.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr, self.layout.size()) };
        bytes.iter().enumerate().all(|(i, &b)| b == byte(self.seed, i))
    }

    fn range(&self) -> Range<usize> {
        self.ptr as usize..self.ptr as usize + self.layout.size()
    }

    fn free(self, heap: &dyn GlobalAlloc) {
        // SAFETY: allocated from `heap` with this layout; `self` is consumed, so once.
        unsafe { heap.dealloc(self.ptr, self.layout) };
    }
}

/// A global block's contents, by its index.
fn global_vec(k: usize) -> Vec<u8> {
    let len = [1, 24, 200, 3000, 40_000, 70_000, 200_000][k % 7] + k % 13;
    (0..len).map(|i| byte(k + 1_000_000, i)).collect()
}

/// Checks a global `Vec` against [`global_vec`], naming the first byte that differs.
fn assert_global_vec(k: usize, v: &[u8]) {
    let expected = global_vec(k);
    assert_eq!(v.len(), expected.len(), "global vec {k}: length");
    if let Some(i) = (0..v.len()).find(|&i| v[i] != expected[i]) {
        panic!(
            "global vec {k} at {:p} overwritten: byte {i} is {:#x}, not {:#x}",
            v.as_ptr(),
            v[i],
            expected[i]
        );
    }
}

fn global_string(k: usize) -> String {
    format!("global string {k}: {}", "x".repeat(k * 37 % 500))
}

/// The live blocks of both allocators.
#[derive(Default)]
struct Blocks {
    vecs: Vec<(usize, Vec<u8>)>,
    strings: Vec<(usize, String)>,
    locals: Vec<LocalBlock>,
}

impl Blocks {
    /// A new global `Vec` and `String`, and a new local block (not filled), number `k`.
    fn add(&mut self, heap: &dyn GlobalAlloc, k: usize) {
        const SIZES: [usize; 13] =
            [1, 7, 8, 24, 100, 512, 1000, 4096, 20_000, 32 * 1024, 40_000, PAGE_SIZE, 3 * PAGE_SIZE + 5];
        const ALIGNS: [usize; 7] = [1, 8, 16, 256, 4096, PAGE_SIZE, 2 * PAGE_SIZE];
        self.vecs.push((k, global_vec(k)));
        self.strings.push((k, global_string(k)));
        let layout = Layout::from_size_align(SIZES[k % SIZES.len()], ALIGNS[k / 3 % ALIGNS.len()]).unwrap();
        self.locals.push(LocalBlock::new(heap, layout, k));
    }

    /// Drops a global `Vec` chosen by `k`, checking its contents first.
    fn drop_a_global(&mut self, k: usize) {
        let (j, v) = self.vecs.swap_remove(k * 3 % self.vecs.len());
        assert_global_vec(j, &v);
    }

    /// No block overlaps another: above all, no local block overlaps a global one.
    fn assert_disjoint(&self) {
        let mut ranges: Vec<(Range<usize>, &str, usize)> = Vec::new();
        let start = |p: *const u8| p as usize;
        ranges.extend(
            self.vecs
                .iter()
                .map(|(k, v)| (start(v.as_ptr())..start(v.as_ptr()) + v.capacity(), "global vec", *k)),
        );
        ranges.extend(
            self.strings
                .iter()
                .map(|(k, s)| (start(s.as_ptr())..start(s.as_ptr()) + s.capacity(), "global string", *k)),
        );
        ranges.extend(self.locals.iter().map(|b| (b.range(), "local block", b.seed)));
        ranges.sort_by_key(|(r, _, _)| r.start);
        for pair in ranges.windows(2) {
            let ((a, a_kind, a_k), (b, b_kind, b_k)) = (&pair[0], &pair[1]);
            assert!(a.end <= b.start, "{a_kind} {a_k} at {a:#x?} overlaps {b_kind} {b_k} at {b:#x?}");
        }
    }

    /// Every block of both allocators holds what was written into it.
    fn assert_intact(&self) {
        for (k, v) in &self.vecs {
            assert_global_vec(*k, v);
        }
        for (k, s) in &self.strings {
            assert!(*s == global_string(*k), "global string {k} at {:p} overwritten", s.as_ptr());
        }
        for b in &self.locals {
            assert!(b.intact(), "local block {} ({:?}) at {:p} overwritten", b.seed, b.layout, b.ptr);
        }
    }
}

/// Interleaves blocks from dlmalloc (the global allocator: `Vec`s and `String`s) and
/// from a `WasmAllocator::secondary()` used through `&dyn GlobalAlloc`, so both grow
/// memory in turn, freeing some of each on the way. Before the fix the `WasmAllocator`
/// handed out dlmalloc's pages: its blocks overlapped dlmalloc's, and writing them
/// overwrote dlmalloc's blocks and the harness's.
#[wasm_bindgen_test]
fn dlmalloc_as_global_allocator_and_a_wasm_allocator_as_dyn_global_alloc_never_overlap() {
    let heap: &dyn GlobalAlloc = &LOCAL;
    let mut blocks = Blocks::default();
    // First nothing is written into the local blocks, so that an overlap is reported
    // here rather than as a crash of whatever it corrupted.
    for k in 0..300 {
        blocks.add(heap, k);
        if k % 5 == 4 {
            blocks.drop_a_global(k);
        }
    }
    blocks.assert_disjoint();
    for b in &blocks.locals {
        b.fill();
    }
    // Then more of both, each local block filled at once, and some of each freed.
    for k in 300..600 {
        blocks.add(heap, k);
        blocks.locals.last().unwrap().fill();
        if k % 5 == 4 {
            blocks.drop_a_global(k);
            let gone = blocks.locals.swap_remove(k * 7 % blocks.locals.len());
            assert!(gone.intact(), "local block {} overwritten before it was freed", gone.seed);
            gone.free(heap);
        }
    }
    blocks.assert_disjoint();
    blocks.assert_intact();
    for b in blocks.locals.drain(..) {
        b.free(heap);
    }
}

/// The initial heap is the global allocator's: dlmalloc's first blocks lie in it, and
/// the secondary `WasmAllocator` never hands out a byte of it. Before the fix its first
/// slow path took the initial heap, and its first blocks came from there.
#[wasm_bindgen_test]
fn the_initial_heap_is_the_global_allocators_not_the_secondary_wasm_allocators() {
    let heap: &dyn GlobalAlloc = &LOCAL;
    let initial = initial_heap();
    assert!(
        initial.len() > PAGE_SIZE,
        "build.rs should give this binary a large initial heap, got {initial:#x?}"
    );
    let globals: Vec<Vec<u8>> = (0..200).map(|k| vec![k as u8; 1 + k * 97 % 5000]).collect();
    let in_initial_heap = globals.iter().filter(|v| initial.contains(&(v.as_ptr() as usize))).count();
    assert!(in_initial_heap > 0, "no dlmalloc block lies in the initial heap {initial:#x?}");

    let mut locals = Vec::new();
    for k in 0..400 {
        let layout =
            Layout::from_size_align([8, 100, 4000, 30_000, 100_000][k % 5], [1, 8, 4096][k % 3]).unwrap();
        let block = LocalBlock::new(heap, layout, k);
        let range = block.range();
        assert!(
            range.end <= initial.start || initial.end <= range.start,
            "local block {k} ({layout:?}) at {range:#x?} lies in the initial heap {initial:#x?}"
        );
        block.fill();
        locals.push(block);
    }
    for (k, v) in globals.iter().enumerate() {
        assert!(v.iter().all(|&b| b == k as u8), "global vec {k} overwritten");
    }
    for b in locals {
        assert!(b.intact(), "local block {} overwritten", b.seed);
        b.free(heap);
    }
}
