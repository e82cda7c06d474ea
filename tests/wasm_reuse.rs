//! Memory reuse with the allocator as the test binary's `#[global_allocator]`: running
//! the same allocations again must not grow memory. A binary of its own, so that no other
//! test's blocks change the layout between rounds.
#![cfg(target_arch = "wasm32")]

use core::arch::wasm32::memory_size;

use wasm_alloc::WasmAllocator;
use wasm_bindgen_test::wasm_bindgen_test;

#[global_allocator]
static ALLOC: WasmAllocator = WasmAllocator::new();

/// Allocates `n` blocks of `size(i)` bytes, freeing one soon after every third
/// allocation, then frees the rest; returns the bytes live at the end, as a check.
fn mix(n: usize, size: fn(usize) -> usize) -> usize {
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(n);
    for i in 0..n {
        blocks.push(vec![i as u8; size(i)]);
        if i % 3 == 0 {
            let gone = blocks.swap_remove(i % blocks.len());
            assert!(gone.iter().all(|&b| b == gone[0]));
        }
    }
    blocks.iter().map(|b| b.len()).sum()
}

fn small(i: usize) -> usize {
    [8 + i % 200, 1000 + i, 20_000 + i][i % 3]
}

/// 2 pages, or 4 to 5 pages: the whole mix stays under the 2048 pages of the
/// conventional bitmap, so the extended bitmap (which takes a page) is not involved.
fn big(i: usize) -> usize {
    [70_000 + 13 * i, 200_000 + 50 * i][i % 2]
}

fn mixed(i: usize) -> usize {
    if i % 5 < 3 {
        small(i)
    } else {
        big(i)
    }
}

/// Allocate and free the same mix twice: the second round fits in the memory the first
/// left behind, so memory does not grow (nothing leaked).
#[wasm_bindgen_test]
fn the_same_mix_twice_does_not_grow_memory() {
    for size in [small as fn(usize) -> usize, big] {
        let first = mix(600, size);
        let after_first = memory_size(0);
        assert_eq!(mix(600, size), first);
        assert_eq!(memory_size(0), after_first, "the second round grew memory");
    }
}

/// Small and big blocks together: a page a size class takes stays with the class, so the
/// second round can find class pages where the first found free pages for big blocks,
/// and grow memory a little. From then on the layout repeats: the third round does not
/// grow memory.
#[wasm_bindgen_test]
fn a_mix_of_small_and_big_blocks_reaches_a_steady_state() {
    let first = mix(1200, mixed);
    let after_first = memory_size(0);
    assert_eq!(mix(1200, mixed), first);
    let after_second = memory_size(0);
    assert_eq!(mix(1200, mixed), first);
    assert_eq!(memory_size(0), after_second, "the third round grew memory");
    assert!(after_second - after_first <= after_first / 20, "{after_first} pages, then {after_second}");
}
