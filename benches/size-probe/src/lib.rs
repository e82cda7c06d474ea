//! Code-size probe: a `no_std` cdylib whose exports allocate, reallocate and free through
//! the global allocator, so the allocator's code is kept and little else. Built once per
//! allocator feature with `--profile wasm-size` (opt-level "z", LTO, one codegen unit,
//! panic = "abort", stripped), then `wasm-opt -Oz` when binaryen is installed.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![cfg(target_arch = "wasm32")]

extern crate alloc;
use alloc::alloc::{alloc, dealloc, realloc, Layout};

#[cfg(feature = "wasm-alloc")]
#[global_allocator]
static A: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

#[cfg(feature = "dlmalloc")]
#[global_allocator]
static A: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[cfg(feature = "wasmalloc")]
#[global_allocator]
static A: wasmalloc::WasmAlloc = wasmalloc::WasmAlloc::new();

#[cfg(feature = "talc")]
#[global_allocator]
static A: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(feature = "rlsf")]
#[global_allocator]
static A: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

// SAFETY: wasm32 without atomics: one thread.
#[cfg(feature = "lol_alloc")]
#[global_allocator]
static A: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(feature = "wee_alloc")]
#[global_allocator]
static A: wee_alloc::WeeAlloc<'static> = wee_alloc::WeeAlloc::INIT;

#[cfg(feature = "bump")]
#[global_allocator]
static A: bench_bump::Bump = bench_bump::Bump::new();

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// # Safety
/// `align` is a power of two and `size` rounded up to it does not overflow.
#[no_mangle]
pub unsafe extern "C" fn probe_alloc(size: usize, align: usize) -> *mut u8 {
    alloc(Layout::from_size_align_unchecked(size, align))
}

/// # Safety
/// `ptr` came from `probe_alloc`/`probe_realloc` with this `size` and `align`.
#[no_mangle]
pub unsafe extern "C" fn probe_realloc(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
    realloc(ptr, Layout::from_size_align_unchecked(size, align), new_size)
}

/// # Safety
/// `ptr` came from `probe_alloc`/`probe_realloc` with this `size` and `align`.
#[no_mangle]
pub unsafe extern "C" fn probe_dealloc(ptr: *mut u8, size: usize, align: usize) {
    dealloc(ptr, Layout::from_size_align_unchecked(size, align))
}
