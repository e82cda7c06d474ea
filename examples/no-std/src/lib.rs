//! wasm-alloc as the `#[global_allocator]` of a `no_std` wasm module: no wasm-bindgen,
//! no imports, plain C exports that use `alloc`. `run.mjs` instantiates it in Node and
//! checks the results. See README.md.
//!
//! On wasm32 the crate links only `core` and `alloc`. Host builds (`cargo build
//! --workspace`, `cargo test --workspace`) link `std` instead of the panic handler and
//! the allocator below, so the workspace still builds there.
#![no_std]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

// wasm32-unknown-unknown aborts on panic: a trap, and no formatting code in the module.
// (Not under cfg(test), where libtest links std and its handler: `clippy --all-targets`
// checks the library as a test even though the manifest says `test = false`.)
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// 1² + 2² + … + n², summed from a `Vec` of the squares (8·n bytes). The sum fits in a
/// `u64` for n up to 3 000 000.
#[no_mangle]
pub extern "C" fn sum_of_squares(n: u32) -> u64 {
    let squares: Vec<u64> = (1..=u64::from(n)).map(|i| i * i).collect();
    squares.iter().sum()
}

/// Builds a `BTreeMap` of `n` entries, key `i · 2654435761 mod 2³²` (distinct for
/// distinct `i`) to value `i`, removes the entries with an odd value, and returns a
/// checksum of the rest in key order: `sum = sum · 31 + (key ^ value)`, mod 2³².
#[no_mangle]
pub extern "C" fn btree_checksum(n: u32) -> u32 {
    let mut map = BTreeMap::new();
    for i in 0..n {
        map.insert(i.wrapping_mul(2_654_435_761), i);
    }
    map.retain(|_, value| *value % 2 == 0);
    map.iter().fold(0u32, |sum, (key, value)| sum.wrapping_mul(31).wrapping_add(key ^ value))
}

/// Bytes the allocator has obtained from wasm memory (0 on a host build).
#[no_mangle]
pub extern "C" fn heap_obtained_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return ALLOC.stats().obtained_bytes;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Of those, bytes free in its page layer: memory freed blocks gave back (0 on a host
/// build).
#[no_mangle]
pub extern "C" fn heap_free_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return ALLOC.stats().free_bytes;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// `memory.grow` calls the allocator has made (0 on a host build). The first small
/// blocks come from the module's initial heap, without one.
#[no_mangle]
pub extern "C" fn heap_grow_calls() -> usize {
    #[cfg(target_arch = "wasm32")]
    return ALLOC.stats().grow_calls;
    #[cfg(not(target_arch = "wasm32"))]
    0
}
