//! The size-class layer (Zig's `std.heap.WasmAllocator`): slots of 8 B to 32 KiB in
//! powers of two, each class with an intrusive free list and a bump cursor in its
//! current page.
//!
//! A free slot holds the list's next pointer in its first word. Unlike Zig, a slot in
//! use holds no footer: `dealloc` is given the layout, so the class is known, and a
//! 2^k-byte request fits a 2^k-byte slot. Slots are aligned to their size because
//! pages are 64 KiB aligned and slot sizes divide 64 KiB.

use core::ops::Range;
use core::ptr::{self, NonNull};

use crate::memory::{Memory, PAGE_SIZE};
use crate::page::PageMap;

/// The smallest slot: 8 bytes, room for the free-list pointer on wasm32 and on 64-bit
/// hosts, and the alignment of every slot.
pub(crate) const MIN_SLOT: usize = 8;

/// The largest slot: 32 KiB, half a page. A bigger request takes whole pages, where it
/// wastes less than a page; a 32 KiB slot in a 64 KiB page wastes nothing.
pub(crate) const MAX_SLOT: usize = PAGE_SIZE / 2;

/// The number of classes: 8, 16, …, 32768.
pub const CLASSES: usize = (MAX_SLOT.trailing_zeros() - MIN_SLOT.trailing_zeros() + 1) as usize;

/// The class serving `size` bytes aligned to `align` (a power of two), or `None` when the
/// request takes whole pages (bigger than [`MAX_SLOT`], or aligned to more).
#[inline]
pub(crate) fn class_of(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align);
    if need > MAX_SLOT {
        return None;
    }
    let need = need.max(MIN_SLOT);
    // ceil(log2(need)) - log2(MIN_SLOT); `need - 1` cannot underflow as need >= 8.
    Some((usize::BITS - (need - 1).leading_zeros() - MIN_SLOT.trailing_zeros()) as usize)
}

/// The slot size of class `class`.
#[inline]
pub(crate) const fn slot_size(class: usize) -> usize {
    MIN_SLOT << class
}

/// A free slot: its first word links to the next free slot of the class.
struct FreeSlot {
    next: *mut FreeSlot,
}

/// What one class holds, for [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// The slot size of the class in bytes.
    pub slot_size: usize,
    /// Bytes of memory the class has taken: its pages, and its share of the initial heap.
    pub held_bytes: usize,
    /// Of those, bytes not in use: slots in its free list and the unused rest of its
    /// current page.
    pub free_bytes: usize,
}

/// The free lists and bump cursors of all classes.
#[derive(Debug)]
pub(crate) struct SizeClasses {
    /// Head of each class's free list (null when empty).
    free: [*mut FreeSlot; CLASSES],
    /// Each class's next never-used slot in its current page. Page-aligned (or null)
    /// means the page is used up: the cursor moved past its last slot.
    bump: [*mut u8; CLASSES],
    /// The part of the initial heap before its first page boundary, carved into slots on
    /// demand.
    fragment: Range<*mut u8>,
    /// Debug builds: the whole fragment as adopted (addresses), for [`SizeClasses::check`].
    #[cfg(debug_assertions)]
    adopted: Range<usize>,
    /// Bytes each class has taken from pages and the fragment (slow paths only).
    held: [usize; CLASSES],
}

// SAFETY: the pointers point into memory the allocator owns; the classes move between
// threads only inside an allocator's lock.
unsafe impl Send for SizeClasses {}

impl SizeClasses {
    pub(crate) const fn new() -> Self {
        SizeClasses {
            free: [ptr::null_mut(); CLASSES],
            bump: [ptr::null_mut(); CLASSES],
            fragment: ptr::null_mut()..ptr::null_mut(),
            #[cfg(debug_assertions)]
            adopted: 0..0,
            held: [0; CLASSES],
        }
    }

    /// A slot from the free list or the bump cursor: the fast path. `None` when the class
    /// needs a new page ([`SizeClasses::refill`]).
    #[inline(always)]
    pub(crate) fn pop(&mut self, class: usize) -> Option<NonNull<u8>> {
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: a non-null head is a free slot of this class, pushed by `push`,
            // which wrote its `next` word; nobody else uses a free slot.
            self.free[class] = unsafe { (*head).next };
            return NonNull::new(head.cast());
        }
        let next = self.bump[class];
        if next.addr() % PAGE_SIZE == 0 {
            return None;
        }
        self.bump[class] = next.wrapping_add(slot_size(class));
        NonNull::new(next)
    }

    /// The head of `class`'s free list (null when empty), for the checked mode.
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) fn head(&self, class: usize) -> *mut u8 {
        self.free[class].cast()
    }

    /// Forgets `class`'s free list (its slots leak): the checked mode found it corrupt.
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) fn forget_list(&mut self, class: usize) {
        self.free[class] = ptr::null_mut();
    }

    /// Returns a slot to its class's free list.
    ///
    /// # Safety
    /// `slot` was handed out for `class` by this `SizeClasses` and is not in use.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, class: usize, slot: NonNull<u8>) {
        let slot = slot.cast::<FreeSlot>();
        // SAFETY: the slot is ours, free, at least 8 bytes and 8-byte aligned (the
        // caller's contract and the class layout), so it can hold a `FreeSlot`.
        unsafe { slot.write(FreeSlot { next: self.free[class] }) };
        self.free[class] = slot.as_ptr();
    }

    /// The slow path of an allocation in `class`: a slot carved from the initial heap's
    /// fragment, else the first slot of a fresh page (the rest goes to the bump cursor).
    /// `None` when memory is exhausted.
    pub(crate) fn refill<M: Memory>(
        &mut self,
        memory: &M,
        pages: &mut PageMap,
        class: usize,
    ) -> Option<NonNull<u8>> {
        if let Some(slot) = self.carve_fragment(class) {
            return Some(slot);
        }
        let run = pages.alloc(memory, 1, 1)?;
        let page = memory.ptr(run.start * PAGE_SIZE);
        self.held[class] += PAGE_SIZE;
        self.bump[class] = page.wrapping_add(slot_size(class));
        NonNull::new(page)
    }

    /// Takes the initial heap's bytes before its first page boundary, to carve slots
    /// from before any page is taken.
    pub(crate) fn adopt_fragment(&mut self, fragment: Range<*mut u8>) {
        if fragment.start.addr() < fragment.end.addr() {
            #[cfg(debug_assertions)]
            {
                self.adopted = fragment.start.addr()..fragment.end.addr();
            }
            self.fragment = fragment;
        }
    }

    /// A slot of `class` from the fragment. The bytes skipped to align it, and the whole
    /// rest of the fragment once no slot of this size fits, go to smaller classes' free
    /// lists, so no byte of the fragment is lost.
    fn carve_fragment(&mut self, class: usize) -> Option<NonNull<u8>> {
        if self.fragment.is_empty() {
            return None;
        }
        let size = slot_size(class);
        let (start, end) = (self.fragment.start.addr(), self.fragment.end.addr());
        let slot = start.next_multiple_of(size);
        if slot > end || end - slot < size {
            let rest = self.fragment.clone();
            self.fragment = ptr::null_mut()..ptr::null_mut();
            self.give_to_classes(rest);
            return None;
        }
        let slot = self.fragment.start.wrapping_add(slot - start);
        self.give_to_classes(self.fragment.start..slot);
        self.fragment.start = slot.wrapping_add(size);
        self.held[class] += size;
        NonNull::new(slot)
    }

    /// Splits free bytes into the largest aligned power-of-two slots they hold and
    /// pushes each onto its class's free list. Bytes before the first 8-byte boundary and
    /// after the last are too small for any slot and stay unused.
    fn give_to_classes(&mut self, bytes: Range<*mut u8>) {
        let mut at = bytes.start.wrapping_add(bytes.start.addr().wrapping_neg() % MIN_SLOT);
        while at.addr() < bytes.end.addr() && bytes.end.addr() - at.addr() >= MIN_SLOT {
            let room = bytes.end.addr() - at.addr();
            let aligned: usize = 1 << at.addr().trailing_zeros().min(MAX_SLOT.trailing_zeros());
            let size = aligned.min(1 << room.ilog2());
            // `size` is a power of two from MIN_SLOT to MAX_SLOT: its class is its log2
            // less MIN_SLOT's (no lookup that could fail under the lock).
            let class = (size.trailing_zeros() - MIN_SLOT.trailing_zeros()) as usize;
            self.held[class] += size;
            // SAFETY: the bytes are ours and unused (the initial heap's fragment), and
            // the piece is aligned to its size, so it is a valid free slot of `class`.
            unsafe { self.push(class, NonNull::new_unchecked(at)) };
            at = at.wrapping_add(size);
        }
    }

    /// Debug builds: the first of the size classes' invariants that does not hold. Every
    /// free-list entry is a slot of its class: aligned to the slot size, inside the
    /// initial heap's fragment or in a page handed out by the page layer (so never in a
    /// free page); no list has a cycle; each bump cursor is in such a page too.
    #[cfg(debug_assertions)]
    pub(crate) fn check<M: Memory>(&self, memory: &M, pages: &PageMap) -> Result<(), &'static str> {
        let in_use = |slot: *mut u8, size: usize| {
            let offset = memory.offset(slot);
            let in_fragment = self.adopted.start <= slot.addr() && slot.addr() + size <= self.adopted.end;
            offset % size == 0
                && offset / PAGE_SIZE == (offset + size - 1) / PAGE_SIZE
                && (in_fragment || pages.may_be_in_use(memory, offset / PAGE_SIZE))
        };
        let memory_bytes = memory.size() * PAGE_SIZE;
        for class in 0..CLASSES {
            let size = slot_size(class);
            let mut slot = self.free[class];
            let mut count = 0;
            while !slot.is_null() {
                if !in_use(slot.cast(), size) {
                    return Err("size classes: a free-list entry is not a slot of its class in use memory");
                }
                count += 1;
                if count > memory_bytes / size {
                    return Err("size classes: a free list has a cycle");
                }
                // SAFETY: the entry passed the check above: a free slot of this class in
                // memory the allocator holds, whose first word `push` wrote.
                slot = unsafe { (*slot).next };
            }
            let bump = self.bump[class];
            if bump.addr() % PAGE_SIZE != 0 && !in_use(bump.wrapping_sub(size), size) {
                return Err("size classes: a bump cursor is not in a page of its class");
            }
        }
        Ok(())
    }

    /// What each class holds and how much of it is free (walks the free lists).
    pub(crate) fn stats(&self) -> [ClassStats; CLASSES] {
        core::array::from_fn(|class| {
            let mut free_bytes = 0;
            let mut slot = self.free[class];
            while !slot.is_null() {
                free_bytes += slot_size(class);
                // SAFETY: free-list entries are free slots whose `next` word `push` wrote.
                slot = unsafe { (*slot).next };
            }
            let bump = self.bump[class].addr();
            if bump % PAGE_SIZE != 0 {
                free_bytes += PAGE_SIZE - bump % PAGE_SIZE;
            }
            ClassStats { slot_size: slot_size(class), held_bytes: self.held[class], free_bytes }
        })
    }
}

// Host tests over a region; the wasm tests are in tests/.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
