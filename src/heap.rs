//! The two heaps behind the allocators' lock. [`RunHeap`] is the page layer as a heap:
//! every block is a run of whole 4 KiB units ([`crate::PageAllocator`]). [`ClassHeap`]
//! serves small blocks from size classes and hands the rest to a `RunHeap`
//! ([`crate::WasmAllocator`]). Both call the checked mode's hooks, which compile to
//! nothing without the `checked` feature: one before a block is taken back (it may stop
//! the operation), one after anything changed hands.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::checked::{Checks, Misuse};
use crate::class::{class_of, span_start, SizeClasses};
use crate::global::Heap;
use crate::memory::{Memory, PAGE_SIZE};
use crate::page::{align_in_units, units_for, PageMap, UNIT};

/// Every block a run of whole units from the page layer.
pub(crate) struct RunHeap<M> {
    pub(crate) memory: M,
    pub(crate) pages: PageMap,
    pub(crate) checks: Checks,
    /// Whether the last run handed out was fresh from `memory.grow` (so zero).
    zeroed: bool,
}

impl<M: Memory> RunHeap<M> {
    pub(crate) const fn new(memory: M) -> Self {
        RunHeap { memory, pages: PageMap::new(), checks: Checks::new(), zeroed: false }
    }

    /// Every slow path starts here. The first time, the initial heap's whole units go to
    /// the page layer, and the checked mode takes its tag pages. `None` when memory is
    /// exhausted, or is not aligned as [`Memory`] requires (byte 0 at a multiple of
    /// [`PAGE_SIZE`]): spans are found by masking addresses, and blocks aligned in units,
    /// so over such a memory nothing is ever handed out. Wasm's memory 0 starts at
    /// address 0, and the check folds away.
    pub(crate) fn start(&mut self) -> Option<()> {
        if self.memory.ptr(0).addr() % PAGE_SIZE != 0 {
            return None;
        }
        self.pages.claim_initial_heap(&self.memory);
        self.checks.prepare(&self.memory, &mut self.pages).then_some(())
    }

    /// The unit a block starts in.
    fn unit_of(&self, ptr: NonNull<u8>) -> usize {
        self.memory.offset(ptr.as_ptr()) / UNIT
    }

    /// Resizes the run at `ptr` from `old` units to fit `new_size` bytes, in place.
    ///
    /// # Safety
    /// `ptr` starts a live run of `old` units that this heap handed out; if it shrinks,
    /// the bytes past `new_size` rounded up to a unit are not used any more.
    unsafe fn resize_run(&mut self, ptr: NonNull<u8>, old: usize, new_size: usize) -> bool {
        let start = self.unit_of(ptr);
        let new = units_for(new_size);
        // SAFETY: the caller's contract.
        if !unsafe { self.pages.resize(&self.memory, start, old, new) } {
            return false;
        }
        self.checks.freed_units(start..start + old);
        self.checks.took_run(start..start + new);
        true
    }
}

impl<M: Memory> Heap for RunHeap<M> {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.start()?;
        let count = units_for(layout.size());
        let fresh = self.pages.fresh_from();
        let ptr = self.pages.alloc(&self.memory, count, align_in_units(layout.align()))?;
        let start = self.unit_of(ptr);
        self.checks.took_run(start..start + count);
        self.zeroed = start >= fresh;
        Some(ptr)
    }

    fn last_zeroed(&self, _: Layout) -> bool {
        self.zeroed
    }

    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let count = units_for(layout.size());
        if self.checks.may_free_run(&self.memory, ptr, count) {
            let start = self.unit_of(ptr);
            let units = start..start + count;
            // SAFETY: the caller's contract: the run's units are not used any more.
            unsafe { self.pages.release(&self.memory, units.clone()) };
            self.checks.freed_units(units);
        }
    }

    unsafe fn resize_in_place(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> bool {
        let count = units_for(layout.size());
        // SAFETY: the caller's contract: a live run of `count` units.
        self.checks.may_free_run(&self.memory, ptr, count) && unsafe { self.resize_run(ptr, count, new_size) }
    }

    fn take_misuse(&mut self) -> Option<Misuse> {
        self.checks.take_misuse()
    }
}

/// Size classes for blocks up to 14 KiB aligned to at most 64 bytes, runs for the rest.
pub(crate) struct ClassHeap<M> {
    pub(crate) runs: RunHeap<M>,
    pub(crate) classes: SizeClasses,
}

impl<M: Memory> ClassHeap<M> {
    pub(crate) const fn new(memory: M) -> Self {
        ClassHeap { runs: RunHeap::new(memory), classes: SizeClasses::new() }
    }

    /// A run for a request no class serves. Out of line, so that the class path stays
    /// small enough to inline into its callers.
    #[inline(never)]
    fn alloc_run(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.runs.alloc(layout)
    }

    /// Frees a run; out of line, as [`ClassHeap::alloc_run`].
    ///
    /// # Safety
    /// As [`Heap::dealloc`].
    #[inline(never)]
    unsafe fn dealloc_run(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { self.runs.dealloc(ptr, layout) }
    }

    /// `class` has no span in its list: a new one goes in it, and gives a slot.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, class: usize) -> Option<NonNull<u8>> {
        let runs = &mut self.runs;
        runs.start()?;
        let slot = self.classes.refill(&runs.memory, &mut runs.pages, class)?;
        runs.checks.took_span(&runs.memory, slot, class);
        Some(slot)
    }
}

impl<M: Memory> Heap for ClassHeap<M> {
    #[inline]
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            return self.alloc_run(layout);
        };
        loop {
            // The checked mode looks at the free list of the span the slot comes from.
            if !self.runs.checks.list_is_sound(&self.runs.memory, &self.classes, class) {
                self.classes.forget_list(class);
            }
            if let Some(slot) = self.classes.pop(class) {
                return Some(slot);
            }
            // The first span is full (found so lazily, on the allocation after its last
            // slot was taken): it leaves the list, and the next one serves. Or there is
            // none.
            if !self.classes.drop_full(class) {
                return self.refill(class);
            }
        }
    }

    /// A slot is never known to be zero; a run asks the run heap.
    fn last_zeroed(&self, layout: Layout) -> bool {
        class_of(layout.size(), layout.align()).is_none() && self.runs.zeroed
    }

    #[inline]
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            // SAFETY: the caller's contract.
            return unsafe { self.dealloc_run(ptr, layout) };
        };
        let runs = &mut self.runs;
        // SAFETY: the caller's contract: `ptr` is a slot of `class` (the layout gives the
        // class) that is not used any more.
        if !unsafe { runs.checks.free_slot(&runs.memory, &self.classes, ptr, class) } {
            return;
        }
        // SAFETY: as above.
        if unsafe { self.classes.push(&runs.memory, &mut runs.pages, class, ptr) } {
            let start = runs.memory.offset(span_start(ptr, class)) / UNIT;
            runs.checks.freed_units(start..start + SizeClasses::span_units(class));
        }
    }

    /// In place when the block need not move: the same class, or a run that stays a run
    /// and that the page layer can shrink or extend.
    unsafe fn resize_in_place(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> bool {
        let runs = &mut self.runs;
        match (class_of(layout.size(), layout.align()), class_of(new_size, layout.align())) {
            (Some(old), new) => {
                runs.checks.may_free_slot(&runs.memory, &self.classes, ptr, old) && new == Some(old)
            }
            (None, new) => {
                let count = units_for(layout.size());
                // SAFETY: the caller's contract: a live run of `count` units.
                runs.checks.may_free_run(&runs.memory, ptr, count)
                    && new.is_none()
                    && unsafe { runs.resize_run(ptr, count, new_size) }
            }
        }
    }

    fn take_misuse(&mut self) -> Option<Misuse> {
        self.runs.checks.take_misuse()
    }
}
