//! Memory that goes back, with the allocator as the test binary's `#[global_allocator]`:
//! spans emptied at one size serve another, and mid-size blocks cost about their size.
//! A binary of its own, so that no other test's blocks change the memory's size.
#![cfg(target_arch = "wasm32")]

use core::arch::wasm32::memory_size;

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

#[global_allocator]
static ALLOC: WasmAllocator = WasmAllocator::new();

/// Bytes of live blocks each phase fills memory with.
const FILL: usize = 16 << 20;

/// Fills `FILL` bytes with boxes of `size` bytes, each holding its index; checks and
/// frees them all. Returns the pages memory grew by.
fn fill_and_free(size: usize) -> usize {
    let before = memory_size(0);
    let blocks: Vec<Box<[u8]>> = (0..FILL / size).map(|i| vec![i as u8; size].into_boxed_slice()).collect();
    for (i, block) in blocks.iter().enumerate() {
        assert!(block.iter().all(|&b| b == i as u8), "block {i} of {size} B changed");
    }
    drop(blocks);
    memory_size(0) - before
}

/// The first version kept every page a size class took: memory filled with 48-byte
/// blocks served nothing else once they were freed. Now each 16 MiB phase of another
/// size (small, mid-size, big) reuses the memory the one before it freed.
#[wasm_bindgen_test]
fn memory_freed_at_one_size_serves_another() {
    fill_and_free(48);
    assert!(memory_size(0) * PAGE_SIZE >= FILL, "the first phase fits in memory");
    for size in [200, 3000, 40_000, 48, 1 << 20] {
        let grew = fill_and_free(size);
        assert!(grew * PAGE_SIZE <= FILL / 20, "{size} B blocks grew memory by {grew} pages");
    }
    let stats = ALLOC.stats();
    assert!(stats.classes.iter().all(|c| c.empty_spans <= 1), "at most one empty span per class");
}

/// 200 blocks of 40,000 bytes: whole 64 KiB pages cost 12.8 MiB for 7.6 MiB of data;
/// runs of 4 KiB units cost 40 KiB each, 7.8 MiB (plus what memory grows ahead).
#[wasm_bindgen_test]
fn mid_size_blocks_cost_about_their_size() {
    let mut blocks: Vec<Box<[u8]>> = Vec::with_capacity(200);
    let before = ALLOC.stats();
    blocks.extend((0..200).map(|i| vec![i as u8; 40_000].into_boxed_slice()));
    let after = ALLOC.stats();
    let taken = (after.obtained_bytes - after.free_bytes) - (before.obtained_bytes - before.free_bytes);
    assert_eq!(taken, 200 * 40 * 1024, "each block takes 10 units");
    assert!(blocks.iter().enumerate().all(|(i, b)| b.iter().all(|&x| x == i as u8)));
}
