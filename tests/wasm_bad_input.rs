//! Bad and extreme input on real wasm32, where usize is 32 bits and the address space is
//! the memory: every size near a power of two up to 2^31, every alignment up to 2^31,
//! the largest sizes a `Layout` can hold. Each returns null or a valid block; nothing traps and
//! nothing is corrupted. The rows of the README's bad-input table point here.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

#[global_allocator]
static ALLOC: WasmAllocator = WasmAllocator::new();

/// A sentinel block whose contents must survive everything below.
fn sentinel() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7) as u8).collect()
}

fn sentinel_intact(v: &[u8]) -> bool {
    v.iter().enumerate().all(|(i, &b)| b == (i as u32 * 7) as u8)
}

/// Allocates `layout`; if it succeeds, checks the block is aligned and writable at both
/// ends, then frees it. Returns whether it succeeded.
fn try_block(layout: Layout) -> bool {
    // SAFETY: the trait's contract, except that size 0 is allowed here on purpose.
    let p = unsafe { ALLOC.alloc(layout) };
    if p.is_null() {
        return false;
    }
    assert_eq!(p as usize % layout.align(), 0, "{layout:?} misaligned");
    let last = layout.size().saturating_sub(1);
    assert!((p as usize).checked_add(layout.size()).is_some(), "{layout:?} wraps the address space");
    // SAFETY: the block has `layout.size()` bytes (at least one is written only if size > 0).
    unsafe {
        if layout.size() > 0 {
            p.add(last).write(0x5A);
            p.write(0xA5);
            assert_eq!((p.read(), p.add(last).read()), (0xA5, if last == 0 { 0xA5 } else { 0x5A }));
        }
        ALLOC.dealloc(p, layout);
    }
    true
}

/// Sizes 2^k - 1, 2^k and 2^k + 1 for k up to 31, where a `Layout` can describe them
/// (a size over `isize::MAX` cannot be asked for).
#[wasm_bindgen_test]
fn every_power_of_two_plus_and_minus_one_up_to_2_31() {
    let keep = sentinel();
    let mut served = 0;
    for k in 0..=31u32 {
        for size in [(1usize << k) - 1, 1 << k, (1usize << k).wrapping_add(1)] {
            match Layout::from_size_align(size, 1) {
                Ok(layout) => served += try_block(layout) as usize,
                Err(_) => assert!(size > isize::MAX as usize),
            }
        }
    }
    // Everything up to 1 GiB fits in a wasm32 memory in Node and Chromium.
    assert!(served >= 3 * 30, "only {served} sizes served");
    assert!(sentinel_intact(&keep));
}

/// Alignments 1 to 2^31 with small sizes (a `Layout` with align 2^31 has size 0).
#[wasm_bindgen_test]
fn every_alignment_up_to_2_31() {
    let keep = sentinel();
    for k in 0..=31u32 {
        let align = 1usize << k;
        for size in [0, 1, 100, PAGE_SIZE + 1] {
            if let Ok(layout) = Layout::from_size_align(size, align) {
                let ok = try_block(layout);
                assert!(ok || k >= 29, "{layout:?} refused");
            }
        }
    }
    assert!(sentinel_intact(&keep));
}

/// The largest sizes a `Layout` can hold, with alignments whose rounding ends exactly at
/// `isize::MAX`: served whole (wasm32 has room for 2 GiB blocks) or null, never a short
/// block. A `realloc` to a size no `Layout` can hold (the pages for it would overflow
/// `usize` on a 32-bit target): null, and the old block is intact.
#[wasm_bindgen_test]
fn sizes_at_the_edge_of_the_address_space() {
    let keep = sentinel();
    let max = isize::MAX as usize;
    for (size, align) in
        [(max, 1), (max - 1, 2), (max - (PAGE_SIZE - 1), PAGE_SIZE), (max - (1 << 20) + 1, 1 << 20)]
    {
        try_block(Layout::from_size_align(size, align).unwrap());
    }
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: a non-zero size; the block is freed with its layout. The realloc is
    // outside the trait's contract on purpose, and must give null.
    unsafe {
        let p = ALLOC.alloc(layout);
        p.write_bytes(3, 64);
        assert!(ALLOC.realloc(p, layout, usize::MAX - 3).is_null());
        assert!(core::slice::from_raw_parts(p, 64).iter().all(|&b| b == 3));
        ALLOC.dealloc(p, layout);
    }
    assert!(try_block(Layout::from_size_align(100, 8).unwrap()));
    assert!(sentinel_intact(&keep));
}
