//! `GlobalAlloc` over a heap behind the allocator's lock: what both allocators of the
//! crate share. Failures are nulls; what the checked mode found is reported once the lock
//! is released (nothing may panic while it is held); `realloc` copies outside the lock,
//! so other threads are not held up by a large copy.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::checked::{self, Misuse};
use crate::lock::Lock;

/// What sits behind the lock: a heap that hands out and takes back blocks. Its methods
/// run under the lock and never panic (see `crate::heap` for the two heaps).
pub(crate) trait Heap {
    /// A block of at least `layout.size()` bytes aligned to `layout.align()`, or `None`
    /// when memory is exhausted.
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>>;

    /// Whether the block the last `alloc` handed out for `layout` is known to be zero
    /// already (memory fresh from `memory.grow`). Asked only by `alloc_zeroed`, so that
    /// `alloc` returns a bare pointer, in a register.
    fn last_zeroed(&self, layout: Layout) -> bool;

    /// Takes back a block.
    ///
    /// # Safety
    /// `ptr` was handed out by this heap for `layout` and is not used any more (the
    /// checked mode verifies this instead of trusting it).
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout);

    /// Resizes a block to `new_size` bytes (same alignment) without moving it, if it can:
    /// `false` leaves it as it was.
    ///
    /// # Safety
    /// `ptr` was handed out by this heap for `layout` and is live.
    unsafe fn resize_in_place(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> bool;

    /// What the checked mode found during the last call, if anything (always `None`
    /// without the `checked` feature).
    fn take_misuse(&mut self) -> Option<Misuse>;
}

/// A heap behind the lock, with `GlobalAlloc`'s four methods.
pub(crate) struct Locked<H> {
    heap: Lock<H>,
}

impl<H: Heap> Locked<H> {
    pub(crate) const fn new(heap: H) -> Self {
        Locked { heap: Lock::new(heap) }
    }

    /// Runs `f` on the heap under the lock (for `stats` and the invariant checks).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        self.heap.with(f)
    }

    /// [`core::alloc::GlobalAlloc::alloc`]; reports a misuse the checked mode found (a
    /// write after free) once the lock is released. The locked section returns a bare
    /// pointer (without the feature, the misuse is a constant `None`), so that it inlines
    /// into the caller with nothing passed through memory.
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout) -> *mut u8 {
        let (block, misuse) = self.heap.with(|heap| (heap.alloc(layout), heap.take_misuse()));
        if let (true, Some(misuse)) = (checked::ENABLED, misuse) {
            checked::report(misuse, "alloc", None, layout);
        }
        block.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// [`core::alloc::GlobalAlloc::alloc_zeroed`]: fresh memory from `memory.grow` is
    /// zero already, and is not written again.
    #[inline]
    pub(crate) fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (block, is_zero, misuse) = self.heap.with(|heap| {
            let block = heap.alloc(layout);
            (block, heap.last_zeroed(layout), heap.take_misuse())
        });
        if let (true, Some(misuse)) = (checked::ENABLED, misuse) {
            checked::report(misuse, "alloc", None, layout);
        }
        let Some(block) = block else {
            return ptr::null_mut();
        };
        if !is_zero {
            // SAFETY: the block was just allocated with at least `layout.size()` bytes.
            unsafe { block.as_ptr().write_bytes(0, layout.size()) };
        }
        block.as_ptr()
    }

    /// [`core::alloc::GlobalAlloc::dealloc`]; a null `ptr` is ignored.
    ///
    /// # Safety
    /// The trait's: `ptr` came from this allocator with `layout` and is not used again.
    #[inline]
    pub(crate) unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(ptr) else { return };
        let misuse = self.heap.with(|heap| {
            // SAFETY: the caller's contract.
            unsafe { heap.dealloc(block, layout) };
            heap.take_misuse()
        });
        if let (true, Some(misuse)) = (checked::ENABLED, misuse) {
            checked::report(misuse, "dealloc", Some(ptr.addr()), layout);
        }
    }

    /// [`core::alloc::GlobalAlloc::realloc`]: in place when the heap can, else a new
    /// block, the bytes copied outside the lock, and the old block freed. Null (the old
    /// block intact) for a null `ptr`, a size no `Layout` can hold, or no memory.
    ///
    /// # Safety
    /// The trait's: `ptr` came from this allocator with `layout` and is live.
    pub(crate) unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some(old), Ok(new_layout)) =
            (NonNull::new(ptr), Layout::from_size_align(new_size, layout.align()))
        else {
            return ptr::null_mut();
        };
        let (in_place, misuse) = self.heap.with(|heap| {
            // SAFETY: the caller's contract.
            (unsafe { heap.resize_in_place(old, layout, new_size) }, heap.take_misuse())
        });
        if let (true, Some(misuse)) = (checked::ENABLED, misuse) {
            checked::report(misuse, "realloc", Some(ptr.addr()), layout);
        }
        if in_place {
            return ptr;
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the caller's contract: `ptr` is live with `layout`; the bytes were
            // copied and the old block is not used again.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
