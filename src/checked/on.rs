//! Checked mode on: a tag per 4 KiB unit says what holds it, span headers say which
//! class a span serves, freed slots are poisoned, and free-list links are stored XORed
//! with a key.
//!
//! The tags live in [`TAG_PAGES`] pages taken from the page layer on the first slow
//! path: two bits per unit, for every unit below `UNIT_LIMIT` (all of wasm32's memory).

use core::mem::size_of;
use core::ops::Range;
use core::ptr::{self, NonNull};

use super::Misuse;
use crate::class::{next_free, slot_size, span_start, SizeClasses};
use crate::memory::{Memory, PAGE_SIZE};
use crate::page::{PageMap, UNIT, UNITS_PER_PAGE, UNIT_LIMIT};

/// Tags, two bits per unit: not handed out, the first unit of a span (the one its
/// header is in), the first unit of a run, or a later unit of either. Only a unit tagged
/// [`SPAN_START`] is ever read as a span header.
const UNTAGGED: u8 = 0;
const SPAN_START: u8 = 1;
const RUN_START: u8 = 2;
const REST: u8 = 3;

/// Units per tag byte.
const TAGS_PER_BYTE: usize = 4;

/// Pages the tag table takes: 4 on wasm32 (counted in `stats`).
pub(crate) const TAG_PAGES: usize = UNIT_LIMIT.div_ceil(TAGS_PER_BYTE).div_ceil(PAGE_SIZE);

/// The byte freed slots are filled with, after their free-list link.
pub(super) const POISON: u8 = 0xD9;

/// What free-list links are XORed with: a word of [`POISON`]. A program that writes a
/// pointer over a freed slot's link (a field of a struct it freed) writes an address,
/// which then decodes to none of the allocator's slots and is caught, where a plain link
/// would be followed to whatever block it names. And the last slot of a list reads as
/// poison throughout.
pub(crate) const LINK_KEY: usize = usize::from_ne_bytes([POISON; size_of::<usize>()]);

/// How many entries of a span's free list `dealloc` looks through for the slot it is
/// given, to catch a double free: the most recently freed slots of the span. Bounded, so
/// that a free costs the same however long the list is.
const DOUBLE_FREE_WINDOW: usize = 16;

/// The tag table, and the first misuse found (reported once the lock is released).
pub(crate) struct Checks {
    tags: *mut u8,
    found: Option<Misuse>,
}

// SAFETY: `tags` points into pages the allocator owns; used only behind its lock.
unsafe impl Send for Checks {}

impl Checks {
    pub(crate) const fn new() -> Self {
        Checks { tags: ptr::null_mut(), found: None }
    }

    /// Takes the tag pages on the first slow path; `false` when memory is exhausted.
    pub(crate) fn prepare<M: Memory>(&mut self, memory: &M, pages: &mut PageMap) -> bool {
        if !self.tags.is_null() {
            return true;
        }
        let Some(tags) = pages.alloc(memory, TAG_PAGES * UNITS_PER_PAGE, 1) else {
            return false;
        };
        self.tags = tags.as_ptr();
        // SAFETY: the units were just handed out to us, `TAG_PAGES` pages of them.
        unsafe { self.tags.write_bytes(0, TAG_PAGES * PAGE_SIZE) };
        true
    }

    /// Units the tag table takes, once it has been taken.
    pub(crate) fn tag_units(&self) -> usize {
        if self.tags.is_null() {
            0
        } else {
            TAG_PAGES * UNITS_PER_PAGE
        }
    }

    pub(crate) fn take_misuse(&mut self) -> Option<Misuse> {
        self.found.take()
    }

    /// Before popping `class`'s first span with room: the head of its free list is still
    /// poisoned and links to a handed-out slot of the same span. `false` (and the misuse
    /// recorded) otherwise; the caller then drops the list rather than follow a corrupted
    /// link.
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
        let next = unsafe { next_free(head) };
        let same_span = |next: NonNull<u8>| span_start(next, class) == span_start(head, class);
        let next_ok = NonNull::new(next)
            .is_none_or(|next| same_span(next) && self.slot_misuse(memory, next, class).is_none());
        if !next_ok || !poison_intact(head, class) {
            return self.found(Misuse::UseAfterFree { slot: head.as_ptr().addr() });
        }
        true
    }

    /// A class took a new span and handed out `first`, its first slot, which lies in the
    /// span's first unit.
    pub(crate) fn took_span<M: Memory>(&mut self, memory: &M, first: NonNull<u8>, class: usize) {
        let start = memory.offset(first.as_ptr()) / UNIT;
        self.tag(start..start + 1, SPAN_START);
        self.tag(start + 1..start + SizeClasses::span_units(class), REST);
    }

    /// Before a slot goes back to its span: it is a slot of `class`, and not among the
    /// last [`DOUBLE_FREE_WINDOW`] slots freed in its span. Reads only tags, the span's
    /// header and its free list (bytes the allocator wrote), never the slot: a live
    /// slot's bytes are the caller's, and may be uninitialised (a struct's padding).
    pub(crate) fn may_free_slot<M: Memory>(
        &mut self,
        memory: &M,
        classes: &SizeClasses,
        slot: NonNull<u8>,
        class: usize,
    ) -> bool {
        if let Some(misuse) = self.slot_misuse(memory, slot, class) {
            return self.found(misuse);
        }
        // SAFETY: `slot_misuse` found `slot` at a slot of a live span of `class`.
        let mut free = unsafe { classes.span_head(slot, class) };
        for _ in 0..DOUBLE_FREE_WINDOW {
            let Some(entry) = NonNull::new(free) else { break };
            if entry == slot {
                return self.found(Misuse::DoubleFree);
            }
            // SAFETY: `entry` is on a free list of `class` and passed `slot_misuse` (or
            // is the head): a free slot of at least a word, whose first word was written
            // by the allocator.
            let next = unsafe { next_free(entry) };
            if NonNull::new(next).is_some_and(|next| self.slot_misuse(memory, next, class).is_some()) {
                break;
            }
            free = next;
        }
        true
    }

    /// Before a slot goes back to its span: [`Checks::may_free_slot`], and if it may,
    /// the slot is poisoned (all but its link), so a later write to it shows. If it is
    /// the span's last slot in use, the span's other free slots are checked too, since
    /// the span now goes back to the page layer, or stays as its class's empty span.
    ///
    /// # Safety
    /// If `slot` passes the check, it is a slot of `class` that nothing uses any more
    /// (the caller's `dealloc` contract: the check cannot tell a live slot from a free
    /// one that left the double-free window).
    pub(crate) unsafe fn free_slot<M: Memory>(
        &mut self,
        memory: &M,
        classes: &SizeClasses,
        slot: NonNull<u8>,
        class: usize,
    ) -> bool {
        if !self.may_free_slot(memory, classes, slot, class) {
            return false;
        }
        let link = size_of::<*mut u8>();
        // SAFETY: a slot of `class`, ours and unused (the caller's contract), at least
        // `slot_size(class)` >= `link` bytes long.
        unsafe { slot.as_ptr().add(link).write_bytes(POISON, slot_size(class) - link) };
        let span = span_start(slot, class);
        // SAFETY: `may_free_slot` found the slot in a live span of `class`.
        if unsafe { SizeClasses::span_header(span) }.used == 1 {
            if let Some(misuse) = empty_span_misuse(memory, span, class, 1) {
                return self.found(misuse);
            }
        }
        true
    }

    /// A run of units was handed out.
    pub(crate) fn took_run(&mut self, units: Range<usize>) {
        self.tag(units.start..units.start + 1, RUN_START);
        self.tag(units.start + 1..units.end, REST);
    }

    /// Before a run is freed or resized: `ptr` starts a run of `count` units.
    pub(crate) fn may_free_run<M: Memory>(&mut self, memory: &M, ptr: NonNull<u8>, count: usize) -> bool {
        let offset = memory.offset(ptr.as_ptr());
        let start = offset / UNIT;
        let misuse = match self.tag_of(start) {
            _ if offset % UNIT != 0 && self.tag_of(start) == UNTAGGED => Some(Misuse::Foreign),
            _ if offset % UNIT != 0 => Some(Misuse::Misaligned),
            RUN_START => {
                // The unit after the run must not continue a block: a run freed with a
                // smaller size would leave its tail handed out.
                let end = start.saturating_add(count);
                let body = (start + 1..end).all(|u| self.tag_of(u) == REST);
                (!body || self.tag_of(end) == REST).then_some(Misuse::Foreign)
            }
            REST => Some(Misuse::Misaligned),
            _ => Some(Misuse::Foreign),
        };
        match misuse {
            Some(misuse) => self.found(misuse),
            None => true,
        }
    }

    /// Units went back to the page layer (a run, or a span that emptied).
    pub(crate) fn freed_units(&mut self, units: Range<usize>) {
        self.tag(units, UNTAGGED);
    }

    /// Why `slot` cannot be a slot of `class`, if it cannot: the address masked to
    /// `class`'s span size is not the first unit of a span, that span is not one of
    /// `class` (so the slot, within a span's size of its start, lies in it), or the slot
    /// is not at a slot's start.
    fn slot_misuse<M: Memory>(&self, memory: &M, slot: NonNull<u8>, class: usize) -> Option<Misuse> {
        let offset = memory.offset(slot.as_ptr());
        let span = memory.offset(span_start(slot, class));
        if self.tag_of(span / UNIT) != SPAN_START {
            return Some(Misuse::Foreign);
        }
        // SAFETY: the unit is tagged as a span's first: a live span, its header written.
        let header = unsafe { SizeClasses::span_header(memory.ptr(span)) };
        if header.class != class {
            return Some(Misuse::Foreign);
        }
        let slots = SizeClasses::slots_of(span, class);
        if !(slots.start..memory.offset(header.handed_out_end)).contains(&offset) {
            return Some(if slots.contains(&offset) { Misuse::Foreign } else { Misuse::Misaligned });
        }
        ((offset - slots.start) % slot_size(class) != 0).then_some(Misuse::Misaligned)
    }

    fn found(&mut self, misuse: Misuse) -> bool {
        self.found.get_or_insert(misuse);
        false
    }

    fn tag_of(&self, unit: usize) -> u8 {
        if unit >= UNIT_LIMIT || self.tags.is_null() {
            return UNTAGGED;
        }
        // SAFETY: `tags` has a byte for every `TAGS_PER_BYTE` units below `UNIT_LIMIT`.
        let byte = unsafe { *self.tags.add(unit / TAGS_PER_BYTE) };
        byte >> (unit % TAGS_PER_BYTE * 2) & 3
    }

    fn tag(&mut self, units: Range<usize>, tag: u8) {
        if self.tags.is_null() {
            return;
        }
        for unit in units.start..units.end.min(UNIT_LIMIT) {
            let shift = unit % TAGS_PER_BYTE * 2;
            // SAFETY: as in `tag_of`; `&mut self` makes this the only access.
            unsafe {
                let byte = self.tags.add(unit / TAGS_PER_BYTE);
                *byte = *byte & !(3 << shift) | tag << shift;
            }
        }
    }
}

/// Whether the empty span at `span` of `class` is intact: every slot it handed out,
/// but for `unlisted` (the one being freed, already poisoned), is on its free list once,
/// with its poison. A write after free into one of them is reported with the slot written
/// to (or the slot whose link was written over). Reads only free slots: with no slot in
/// use, every slot the span handed out is free.
fn empty_span_misuse<M: Memory>(memory: &M, span: *mut u8, class: usize, unlisted: usize) -> Option<Misuse> {
    // SAFETY: the caller's: a live span of `class`.
    let header = unsafe { SizeClasses::span_header(span) };
    let size = slot_size(class);
    let slots = SizeClasses::slots_of(memory.offset(span), class);
    let handed_out = slots.start..memory.offset(header.handed_out_end);
    // Saturating: a check must not overflow under the lock, even over a corrupt header.
    let expected = (handed_out.end.saturating_sub(handed_out.start) / size).saturating_sub(unlisted);
    let (mut entry, mut listed) = (header.free, 0);
    let mut written_over = span;
    while let Some(slot) = NonNull::new(entry) {
        let at = memory.offset(entry);
        if listed == expected || !handed_out.contains(&at) || (at - handed_out.start) % size != 0 {
            break;
        }
        if !poison_intact(slot, class) {
            return Some(Misuse::UseAfterFree { slot: entry.addr() });
        }
        listed += 1;
        written_over = entry;
        // SAFETY: a free slot of this span (checked above), its link written by `push`.
        entry = unsafe { next_free(slot) };
    }
    (!entry.is_null() || listed != expected).then_some(Misuse::UseAfterFree { slot: written_over.addr() })
}

/// Whether every byte of a free slot after its link still holds the poison that
/// [`Checks::free_slot`] wrote. Only for free slots: their bytes are the allocator's.
fn poison_intact(slot: NonNull<u8>, class: usize) -> bool {
    let link = size_of::<*mut u8>();
    // SAFETY: the slot is free, ours and `slot_size(class)` bytes long, and every byte
    // after its link was written by `free_slot`; only read here.
    let bytes = unsafe { core::slice::from_raw_parts(slot.as_ptr().add(link), slot_size(class) - link) };
    bytes.iter().all(|&b| b == POISON)
}
