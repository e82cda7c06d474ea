//! Out of memory with the allocator as the `#[global_allocator]`: this binary is linked
//! with a memory maximum (`--max-memory`), so `memory.grow` really fails. It is built
//! only with `--cfg wasm_alloc_capped` and that link flag (the README's test command
//! does it, in a target directory of its own); without them it contains no tests.
#![cfg(all(target_arch = "wasm32", wasm_alloc_capped))]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_size;

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

#[global_allocator]
static ALLOC: WasmAllocator = WasmAllocator::new();

/// The `--max-memory` this binary is linked with, in pages.
const MAX_PAGES: usize = 512;

/// Fills memory with blocks from `alloc` until it returns `None`, checking the contents
/// of every block, and returns them.
fn fill_until_full(mut alloc: impl FnMut(usize) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut blocks = Vec::with_capacity(4096);
    while let Some(block) = alloc(blocks.len()) {
        blocks.push(block);
        assert!(blocks.len() < 4096, "memory never ran out: is the binary capped?");
    }
    for (i, block) in blocks.iter().enumerate() {
        assert!(block.iter().all(|&b| b == i as u8), "block {i} was overwritten");
    }
    blocks
}

fn try_vec(len: usize, fill: u8) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, fill);
    Some(v)
}

/// One test, in this order: big blocks fill memory, then small slots do, then, once the
/// slots are freed, their spans serve big blocks again.
#[wasm_bindgen_test]
fn out_of_memory_returns_null_and_the_allocator_keeps_working() {
    big_blocks_run_out_cleanly();
    small_slots_run_out_cleanly();
    let blocks = fill_until_full(|i| try_vec(1 << 20, i as u8));
    assert!(
        blocks.len() * (1 << 20) > (MAX_PAGES - 64) * PAGE_SIZE,
        "{} MiB: the slots' spans came back",
        blocks.len()
    );
}

fn big_blocks_run_out_cleanly() {
    let mut blocks = fill_until_full(|i| try_vec(1 << 20, i as u8));
    let full_at = memory_size(0);
    // Straight through the trait: null, not a trap.
    let layout = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: a non-zero size.
    let null = unsafe { ALLOC.alloc(layout) }.is_null();
    // Requests too large for any wasm32 memory fail cleanly too.
    let mut v: Vec<u8> = Vec::new();
    let huge_fails = v.try_reserve(usize::MAX / 2).is_err() && v.try_reserve(3 << 30).is_err();

    // Free half (the checks below need memory to report a failure), then check.
    let kept = blocks.len() / 2;
    blocks.truncate(kept);
    assert!(full_at <= MAX_PAGES && full_at + 17 > MAX_PAGES, "stopped at {full_at} pages of {MAX_PAGES}");
    assert!(null, "alloc did not return null with memory full");
    assert!(huge_fails);

    // Freeing made room again for exactly the request that failed, and small
    // allocations work.
    let again = try_vec(1 << 20, 9).expect("the freed pages serve the same request");
    assert!(again.iter().all(|&b| b == 9));
    assert_eq!(format!("{kept} blocks"), kept.to_string() + " blocks");
    for (i, block) in blocks.iter().enumerate() {
        assert!(block.iter().all(|&b| b == i as u8), "block {i} was overwritten");
    }
    assert!(memory_size(0) <= MAX_PAGES);
}

/// Small slots until the pages run out: null from the size classes as well, then the
/// freed slots serve again.
fn small_slots_run_out_cleanly() {
    let layout = Layout::from_size_align(3000, 8).unwrap();
    let mut slots = Vec::with_capacity(MAX_PAGES * PAGE_SIZE / layout.size());
    loop {
        // SAFETY: a non-zero size.
        let p = unsafe { ALLOC.alloc(layout) };
        if p.is_null() {
            break;
        }
        // SAFETY: the block has `layout.size()` bytes.
        unsafe { p.write_bytes(slots.len() as u8, layout.size()) };
        slots.push(p);
        assert!(slots.len() < slots.capacity(), "memory never ran out: is the binary capped?");
    }
    assert!(slots.len() > 1000);
    for (i, &p) in slots.iter().enumerate() {
        // SAFETY: each slot is live with `layout.size()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p, layout.size()) };
        assert!(bytes.iter().all(|&b| b == i as u8), "slot {i} was overwritten");
    }
    let last = slots.pop().unwrap();
    // SAFETY: live with this layout; freed once.
    unsafe { ALLOC.dealloc(last, layout) };
    // SAFETY: a non-zero size.
    assert_eq!(unsafe { ALLOC.alloc(layout) }, last, "the freed slot serves the next request");
    slots.push(last);
    for p in slots {
        // SAFETY: live with this layout; freed once.
        unsafe { ALLOC.dealloc(p, layout) };
    }
}
