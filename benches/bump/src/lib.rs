//! A leaking bump allocator: the benchmark's reference point (fastest possible
//! allocation, no reuse at all). Single-threaded wasm32 only.
#![no_std]
#![cfg(target_arch = "wasm32")]
use core::{
    alloc::{GlobalAlloc, Layout},
    arch::wasm32,
    cell::Cell,
};

/// Next free address; 0 until the first allocation.
#[derive(Default)]
pub struct Bump(Cell<usize>);
unsafe impl Sync for Bump {}
impl Bump {
    pub const fn new() -> Self {
        Bump(Cell::new(0))
    }
}
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let top = wasm32::memory_size(0) << 16;
        let next = if self.0.get() == 0 { top } else { self.0.get() };
        let start = match next.checked_add(l.align() - 1) {
            Some(s) => s & !(l.align() - 1),
            None => return core::ptr::null_mut(),
        };
        let end = match start.checked_add(l.size()) {
            Some(e) if e < usize::MAX => e,
            _ => return core::ptr::null_mut(),
        };
        if end > top && wasm32::memory_grow(0, (end - top + 0xFFFF) >> 16) == usize::MAX {
            return core::ptr::null_mut();
        }
        self.0.set(end);
        start as *mut u8
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}
