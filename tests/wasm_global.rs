//! The allocator as users meet it: the `#[global_allocator]` of a wasm test binary, so
//! the test harness itself (wasm-bindgen-test's output, formatting, its futures) runs on
//! it too. Run in Node and in headless Chromium by the README's test command.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_size;

use wasm_alloc::{WasmAllocator, PAGE_SIZE};
use wasm_bindgen_test::wasm_bindgen_test;

mod common;

#[global_allocator]
static ALLOC: WasmAllocator = WasmAllocator::new();

/// A deterministic byte for position `i` of a buffer seeded by `seed`.
fn byte(seed: u32, i: usize) -> u8 {
    (seed as usize).wrapping_mul(2654435761).wrapping_add(i.wrapping_mul(40503)).to_le_bytes()[1]
}

#[wasm_bindgen_test]
fn a_vec_grows_to_64_mib_and_keeps_its_contents() {
    let mut v: Vec<u8> = Vec::new();
    for i in 0..64 << 20 {
        v.push(byte(1, i));
    }
    assert_eq!(v.len(), 64 << 20);
    assert!(v.iter().enumerate().all(|(i, &b)| b == byte(1, i)));
    drop(v);
    // The 64 MiB went back to the page layer: asking again does not grow memory.
    let before = memory_size(0);
    let v = vec![7u8; 64 << 20];
    assert_eq!(memory_size(0), before);
    assert!(v.iter().all(|&b| b == 7));
}

#[wasm_bindgen_test]
fn btreemap_and_string_churn() {
    common::btreemap_and_string_churn(20);
}

/// Boxes of over-aligned types, 16 B to 128 KiB alignment, with their contents checked.
#[wasm_bindgen_test]
fn over_aligned_boxes() {
    macro_rules! check_align {
        ($($align:literal),*) => {$({
            #[repr(C, align($align))]
            struct Aligned([u8; 24]);
            let boxes: Vec<Box<Aligned>> =
                (0..5u8).map(|k| Box::new(Aligned([k.wrapping_mul(3); 24]))).collect();
            for (k, b) in boxes.iter().enumerate() {
                let addr = &**b as *const Aligned as usize;
                assert_eq!(addr % $align, 0, "align {}", $align);
                assert!(b.0.iter().all(|&x| x == (k as u8).wrapping_mul(3)));
            }
        })*};
    }
    check_align!(16, 32, 64, 128, 256, 512, 1024, 4096, 32768, 65536, 131072);
}

#[wasm_bindgen_test]
fn realloc_within_a_slot_keeps_the_pointer() {
    let mut v: Vec<u8> = Vec::with_capacity(17);
    let p = v.as_ptr();
    v.extend_from_slice(&[1; 17]);
    v.reserve_exact(7); // 24 bytes: the same 24-byte slot
    assert_eq!(v.as_ptr(), p);
    v.shrink_to(20);
    assert_eq!(v.as_ptr(), p);
}

/// A big block at the top of memory grows by growing memory, not by copying.
#[wasm_bindgen_test]
fn growing_the_last_big_block_grows_memory_in_place() {
    // More pages than are free anywhere: it lands at the top of memory.
    let len = ALLOC.stats().free_bytes + PAGE_SIZE;
    let mut v: Vec<u8> = Vec::with_capacity(len);
    v.resize(len, 3);
    let p = v.as_ptr();
    let before = memory_size(0);
    v.reserve_exact(10 << 20);
    assert_eq!(v.as_ptr(), p, "moved instead of growing in place");
    let grown = memory_size(0) - before;
    let needed = (10 << 20) / PAGE_SIZE;
    assert!((needed..=needed + 256).contains(&grown), "grew {grown} pages");
    assert!(v.iter().all(|&b| b == 3));
}

/// A `no_std` crate holding the allocator as `&dyn GlobalAlloc`, including the zero-size
/// requests the trait's contract does not allow but a caller may still make.
#[wasm_bindgen_test]
fn usable_as_dyn_global_alloc() {
    let a: &dyn GlobalAlloc = &ALLOC;
    // SAFETY: each block is used within its layout and freed with it.
    unsafe {
        let layout = Layout::from_size_align(100, 8).unwrap();
        let p = a.alloc_zeroed(layout);
        assert!(!p.is_null());
        assert!(core::slice::from_raw_parts(p, 100).iter().all(|&b| b == 0));
        let q = a.realloc(p, layout, 5000);
        assert!(!q.is_null());
        a.dealloc(q, Layout::from_size_align(5000, 8).unwrap());
        let zero = Layout::from_size_align(0, 16).unwrap();
        let (x, y) = (a.alloc(zero), a.alloc(zero));
        assert!(!x.is_null() && !y.is_null() && x != y);
        assert_eq!(x as usize % 16, 0);
    }
}

#[wasm_bindgen_test]
fn stats_see_the_heap() {
    let v = vec![0u8; 3 * PAGE_SIZE];
    let stats = ALLOC.stats();
    assert!(stats.obtained_bytes >= 3 * PAGE_SIZE && stats.grow_calls >= 1);
    assert!(stats.free_bytes <= stats.obtained_bytes);
    assert!(stats.classes.iter().any(|c| c.held_bytes > 0), "the harness uses small slots");
    drop(v);
}

/// The leak check the README suggests for a user's own wasm-bindgen-test suite: on one
/// thread nothing else allocates between two reads of `in_use_bytes`, so work that
/// frees what it allocates leaves the figure as it was, and a leak shows by its size.
#[wasm_bindgen_test]
fn in_use_bytes_is_a_leak_check() {
    let before = ALLOC.stats().in_use_bytes;
    {
        let map: std::collections::BTreeMap<u32, String> = (0..1000).map(|i| (i, i.to_string())).collect();
        let big = vec![1u8; 100_000];
        assert_eq!(map.len() + big.len(), 101_000);
        assert!(ALLOC.stats().in_use_bytes >= before + 100_000);
    }
    assert_eq!(ALLOC.stats().in_use_bytes, before, "everything above was freed");
    let leaked = Box::leak(Box::new([7u8; 3000]));
    // A 3000-byte block takes a slot of 3072 bytes (four classes per doubling).
    assert_eq!(ALLOC.stats().in_use_bytes - before, 3072, "{}", leaked[0]);
}
