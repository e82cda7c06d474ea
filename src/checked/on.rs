//! Checked mode on: a tag per page says who holds it, and freed slots are poisoned.
//!
//! The tags live in one page taken from the page layer on the first slow path: one
//! byte per page, for pages `0..TAGGED_PAGES` (all of wasm32's memory; on 64-bit hosts
//! the first 4 GiB of a region, beyond which pointers are not checked).

use core::mem::size_of;
use core::ops::Range;
use core::ptr::{self, NonNull};

use super::Misuse;
use crate::class::{slot_size, SizeClasses};
use crate::memory::{Memory, PAGE_LIMIT, PAGE_SIZE};
use crate::page::PageMap;

/// Pages with a tag: one byte each in one page.
const TAGGED_PAGES: usize = if PAGE_LIMIT < PAGE_SIZE { PAGE_LIMIT } else { PAGE_SIZE };

/// Tags: 0 for pages not handed out, `1 + class` for a class's page, and these.
const UNTAGGED: u8 = 0;
const FRAGMENT: u8 = 0xFD;
const BIG_START: u8 = 0xFE;
const BIG_REST: u8 = 0xFF;

/// Pages the tag table takes (counted in `stats`).
pub(crate) const TAG_PAGES: usize = 1;

/// The byte freed slots are filled with, after their free-list link.
pub(super) const POISON: u8 = 0xD9;

/// How many entries of a class's free list `dealloc` looks through for the slot it is
/// given, to catch a double free: the most recently freed slots. Bounded, so that a
/// free costs the same however long the list is.
const DOUBLE_FREE_WINDOW: usize = 16;

/// The tag table, and the first misuse found (reported once the lock is released).
pub(crate) struct Checks {
    tags: *mut u8,
    /// The initial heap's bytes before its first page boundary (offsets): the only
    /// bytes of the page tagged [`FRAGMENT`] that slots are carved from. Remembered from
    /// the start, as the tag page may not exist yet when the fragment is claimed.
    fragment: Range<usize>,
    found: Option<Misuse>,
}

// SAFETY: `tags` points into a page the allocator owns; used only behind its lock.
unsafe impl Send for Checks {}

impl Checks {
    pub(crate) const fn new() -> Self {
        Checks { tags: ptr::null_mut(), fragment: 0..0, found: None }
    }

    /// Takes the tag page on the first slow path; `false` when memory is exhausted.
    pub(crate) fn prepare<M: Memory>(&mut self, memory: &M, pages: &mut PageMap) -> bool {
        if !self.tags.is_null() {
            return true;
        }
        let Some(run) = pages.alloc(memory, TAG_PAGES, 1) else {
            return false;
        };
        self.tags = memory.ptr(run.start * PAGE_SIZE);
        // SAFETY: the page was just handed out to us, and holds `TAGGED_PAGES` bytes.
        unsafe { self.tags.write_bytes(UNTAGGED, TAGGED_PAGES) };
        self.tag_fragment();
        true
    }

    pub(crate) fn take_misuse(&mut self) -> Option<Misuse> {
        self.found.take()
    }

    /// Before popping `class`'s free list: the head is still poisoned and links to a
    /// slot of the same class. `false` (and the misuse recorded) otherwise; the caller
    /// then drops the list rather than follow a corrupted link.
    pub(crate) fn list_is_sound<M: Memory>(
        &mut self,
        memory: &M,
        classes: &SizeClasses,
        class: usize,
    ) -> bool {
        let Some(head) = NonNull::new(classes.head(class)) else {
            return true;
        };
        // SAFETY: a free slot of `class`: `slot_size(class)` bytes the allocator owns.
        let next = unsafe { head.cast::<*mut u8>().read() };
        let next_ok = next.is_null() || self.slot_misuse(memory.offset(next), class).is_none();
        let poisoned =
            self.tag_of(memory.offset(head.as_ptr()) / PAGE_SIZE) == FRAGMENT || poison_intact(head, class);
        if !next_ok || !poisoned {
            return self.found(Misuse::UseAfterFree { slot: head.as_ptr().addr() });
        }
        true
    }

    /// A slot was handed out: a fresh page for a class gets its tag. The slot's bytes
    /// are the caller's from now on: no check reads them until it is freed.
    pub(crate) fn took_slot<M: Memory>(&mut self, memory: &M, slot: NonNull<u8>, class: usize) {
        let offset = memory.offset(slot.as_ptr());
        if offset % PAGE_SIZE == 0 {
            self.tag(offset / PAGE_SIZE..offset / PAGE_SIZE + 1, 1 + class as u8);
        }
    }

    /// The initial heap's fragment serves slots of every class. Its page is tagged as
    /// soon as the tag page exists (now, or when [`Checks::prepare`] makes it).
    pub(crate) fn took_fragment(&mut self, fragment: Range<usize>) {
        if !fragment.is_empty() {
            self.fragment = fragment;
            self.tag_fragment();
        }
    }

    fn tag_fragment(&mut self) {
        if !self.fragment.is_empty() {
            let page = self.fragment.start / PAGE_SIZE;
            self.tag(page..page + 1, FRAGMENT);
        }
    }

    /// Before a slot goes back on its list: it is a slot of `class`, and not among the
    /// last [`DOUBLE_FREE_WINDOW`] slots freed in its class. Reads only the free list
    /// (bytes the allocator wrote), never the slot: a live slot's bytes are the caller's,
    /// and may be uninitialised (a struct's padding).
    pub(crate) fn may_free_slot<M: Memory>(
        &mut self,
        memory: &M,
        classes: &SizeClasses,
        slot: NonNull<u8>,
        class: usize,
    ) -> bool {
        if let Some(misuse) = self.slot_misuse(memory.offset(slot.as_ptr()), class) {
            return self.found(misuse);
        }
        let mut free = classes.head(class);
        for _ in 0..DOUBLE_FREE_WINDOW {
            if free.is_null() {
                break;
            }
            if free == slot.as_ptr() {
                return self.found(Misuse::DoubleFree);
            }
            // SAFETY: `free` is on the free list of `class` and passed `slot_misuse` (or is
            // the head): a free slot of at least a word, whose first word `push` wrote.
            let next = unsafe { free.cast::<*mut u8>().read() };
            if !next.is_null() && self.slot_misuse(memory.offset(next), class).is_some() {
                break;
            }
            free = next;
        }
        true
    }

    /// A slot went back on its list: poison all but its link.
    pub(crate) fn freed_slot(&mut self, slot: NonNull<u8>, class: usize) {
        let link = size_of::<*mut u8>();
        // SAFETY: the slot is free and ours, `slot_size(class)` >= `link` bytes long.
        unsafe { slot.as_ptr().add(link).write_bytes(POISON, slot_size(class) - link) };
    }

    pub(crate) fn took_pages(&mut self, pages: Range<usize>) {
        self.tag(pages.start..pages.start + 1, BIG_START);
        self.tag(pages.start + 1..pages.end, BIG_REST);
    }

    /// Before whole pages are freed or resized: `ptr` starts a big block of `count` pages.
    /// Only pages below [`TAGGED_PAGES`] have tags, as in [`Checks::took_pages`]: the
    /// part of a block above them is not checked.
    pub(crate) fn may_free_pages<M: Memory>(&mut self, memory: &M, ptr: NonNull<u8>, count: usize) -> bool {
        let offset = memory.offset(ptr.as_ptr());
        let start = offset / PAGE_SIZE;
        let misuse = if offset % PAGE_SIZE != 0 {
            Some(if self.tag_of(start) == UNTAGGED { Misuse::Foreign } else { Misuse::Misaligned })
        } else {
            match self.tag_of(start) {
                BIG_START => {
                    let end = start.saturating_add(count);
                    let tagged_end = end.min(TAGGED_PAGES);
                    let body = (start + 1..tagged_end).all(|p| self.tag_of(p) == BIG_REST);
                    let ends = end >= TAGGED_PAGES || self.tag_of(end) != BIG_REST;
                    (!body || !ends).then_some(Misuse::Foreign)
                }
                BIG_REST => Some(Misuse::Misaligned),
                UNTAGGED if start < TAGGED_PAGES => Some(Misuse::Foreign),
                UNTAGGED => None,
                _ => Some(Misuse::Foreign),
            }
        };
        match misuse {
            Some(misuse) => self.found(misuse),
            None => true,
        }
    }

    pub(crate) fn freed_pages(&mut self, pages: Range<usize>) {
        self.tag(pages, UNTAGGED);
    }

    /// Why `offset` cannot be a slot of `class`, if it cannot.
    fn slot_misuse(&self, offset: usize, class: usize) -> Option<Misuse> {
        let page = offset / PAGE_SIZE;
        let tag = self.tag_of(page);
        if page >= TAGGED_PAGES {
            return None;
        }
        let in_fragment = tag == FRAGMENT && self.fragment.contains(&offset);
        if tag != 1 + class as u8 && !in_fragment {
            return Some(Misuse::Foreign);
        }
        (offset % slot_size(class) != 0).then_some(Misuse::Misaligned)
    }

    fn found(&mut self, misuse: Misuse) -> bool {
        self.found.get_or_insert(misuse);
        false
    }

    fn tag_of(&self, page: usize) -> u8 {
        if page >= TAGGED_PAGES || self.tags.is_null() {
            return UNTAGGED;
        }
        // SAFETY: `tags` has `TAGGED_PAGES` bytes, and `page` is below that.
        unsafe { *self.tags.add(page) }
    }

    fn tag(&mut self, pages: Range<usize>, tag: u8) {
        let end = pages.end.min(TAGGED_PAGES);
        if self.tags.is_null() || pages.start >= end {
            return;
        }
        // SAFETY: `pages.start..end` lies within the `TAGGED_PAGES` bytes of `tags`.
        unsafe { self.tags.add(pages.start).write_bytes(tag, end - pages.start) };
    }
}

/// Whether every byte of a free slot after its link still holds the poison that
/// [`Checks::freed_slot`] wrote. Only for free slots: their bytes are the allocator's.
fn poison_intact(slot: NonNull<u8>, class: usize) -> bool {
    let link = size_of::<*mut u8>();
    // SAFETY: the slot is free, ours and `slot_size(class)` bytes long, and every byte
    // after its link was written by `freed_slot` (or, for a fragment slot, which callers
    // do not pass here, zeroed); only read here.
    let bytes = unsafe { core::slice::from_raw_parts(slot.as_ptr().add(link), slot_size(class) - link) };
    bytes.iter().all(|&b| b == POISON)
}
