//! The size-class layer: slots of 8 B to 14 KiB in 39 classes, each slot in a span (a
//! run of 4 KiB units from the page layer) that keeps its own free list. From Zig's
//! `std.heap.WasmAllocator`, with classes four to a doubling instead of powers of two,
//! and spans that go back to the page layer when they empty.
//!
//! - Classes: 8-byte steps up to 64 B (a request wastes at most 7 bytes), then four per
//!   doubling (80, 96, 112, 128, 160, …: a request wastes less than a fifth of its slot).
//!   An alignment of 16 to 64 first rounds the size up to a multiple of it. The largest,
//!   16 KiB, is served as a run of 4 units instead: no span, no waste.
//! - Spans: 1 to 16 units, aligned to their own size, so `dealloc` (which is given the
//!   layout, hence the class, hence the span size) finds a slot's span by masking its
//!   address. A 64-byte header at the start holds the span's free list, its never-used
//!   cursor, its count of slots in use and its links; the slots follow, each aligned to
//!   64 or to its size if smaller. No slot in use holds a header or footer.
//! - Each class keeps a list of its spans with a free slot; allocation takes from the
//!   first. A span that fills leaves the list when an allocation finds it full (lazily,
//!   as in mimalloc: a span that fills and at once gets a slot back is never unlinked);
//!   one that gets a slot back rejoins it. A span whose last slot is freed goes back to
//!   the page layer, where it merges with free neighbours and serves any size, unless its
//!   class has no empty span yet: then it stays in the list as the class's one empty
//!   span, and serves the class's next allocations as it is (so a class whose use goes
//!   up and down does not take and return a span each time). At most one empty span per
//!   class, and none for the classes of 2 KiB and more, whose spans are 32 or 64 KiB.

use core::ops::Range;
use core::ptr::{self, NonNull};

use crate::checked::LINK_KEY;
use crate::memory::Memory;
use crate::page::{PageMap, UNIT};

/// The smallest slot: 8 bytes, room for the free-list pointer on wasm32 and on 64-bit
/// hosts.
pub(crate) const MIN_SLOT: usize = 8;

/// The largest class size: 16 KiB. Above it, a run of 4 KiB units wastes less than a
/// quarter of a block (an eighth above 32 KiB).
pub(crate) const MAX_SLOT: usize = 16 * 1024;

/// The alignment every slot has at least, when its size is a multiple of it: the span
/// header's size. A request aligned to more takes a run of units.
pub(crate) const MAX_CLASS_ALIGN: usize = HEADER;

/// Bytes of a span's header, and the offset of its first slot: a cache line, so slots
/// of 64 bytes and more are 64-byte aligned. 1.6% of a one-unit span.
const HEADER: usize = 64;

/// Size steps of 8 bytes up to this size; four classes per doubling above it.
const LINEAR_MAX: usize = 64;

/// The number of classes, including those served as runs: 8 linear ones, then four
/// per doubling from 64 B to 16 KiB.
pub const CLASSES: usize = LINEAR_MAX / MIN_SLOT + 4 * (MAX_SLOT.ilog2() - LINEAR_MAX.ilog2()) as usize;

/// The slot size of class `class`.
#[inline]
pub(crate) const fn slot_size(class: usize) -> usize {
    if class < LINEAR_MAX / MIN_SLOT {
        return (class + 1) * MIN_SLOT;
    }
    let doubling = (class - LINEAR_MAX / MIN_SLOT) / 4;
    let step = (class - LINEAR_MAX / MIN_SLOT) % 4;
    let base = LINEAR_MAX << doubling;
    base + (step + 1) * (base / 4)
}

/// The span size of each class in units; 0 for a class served as runs (above
/// [`RUN_FROM`]). See [`span_units_for`].
const SPAN_UNITS: [u8; CLASSES] = {
    let mut units = [0u8; CLASSES];
    let mut class = 0;
    while class < CLASSES {
        let size = slot_size(class);
        if size <= RUN_FROM {
            units[class] = span_units_for(size);
        }
        class += 1;
    }
    units
};

/// Classes above this size are served as runs of units: 16 KiB, the largest, is a
/// whole number of units, and a span of it would lose a quarter to its header. (Every
/// class below is a span class: a run would waste nothing for 4 KiB or 8 KiB, but each
/// run is a search of the bitmap, where a slot is a pop.)
const RUN_FROM: usize = 14 * 1024;

/// The fewest slots a span should hold: every span a class takes or gives back is a
/// trip to the page layer, so a span of 3 slots (1280 B in one unit) would make every
/// third allocation a slow one. 8 keeps slow paths rare without taking 64 KiB for a
/// single 2 KiB block.
const MIN_SLOTS: usize = 8;

/// The largest span: 16 units (64 KiB), for slots of 4 KiB and more.
const MAX_SPAN_UNITS: usize = 16;

/// The largest span a class keeps as its empty span when it empties: 4 units. A bigger
/// span holds slots of 2 KiB and more, whose class gives spans back rarely enough that
/// a trip to the page layer costs little, while keeping 32 or 64 KiB per class costs a
/// lot of peak memory.
const KEPT_SPAN_MAX: usize = 4;

/// The smallest span of 1, 2, 4, 8 or 16 units that holds [`MIN_SLOTS`] slots of
/// `size` and wastes at most 1/16 of itself (header and tail); failing that, 4 slots
/// and 1/8; failing that, the largest.
const fn span_units_for(size: usize) -> u8 {
    let rules = [(MIN_SLOTS, 16), (4, 8)];
    let mut r = 0;
    while r < rules.len() {
        let (min_slots, tolerance) = rules[r];
        let mut units = 1;
        while units <= MAX_SPAN_UNITS {
            let bytes = units * UNIT;
            let slots = (bytes - HEADER) / size;
            if slots >= min_slots && (bytes - slots * size) * tolerance <= bytes {
                return units as u8;
            }
            units *= 2;
        }
        r += 1;
    }
    MAX_SPAN_UNITS as u8
}

/// Slots in a span of `class` (a span class): what follows the header, in whole slots.
#[inline]
const fn capacity(class: usize) -> u32 {
    ((span_bytes(class) - HEADER) / slot_size(class)) as u32
}

/// Slots in a span of each class, for the checks and `stats` (the fast paths read a
/// span's own `end` and `size`, so that this table stays out of the allocation code).
const CAPACITY: [u32; CLASSES] = {
    let mut table = [0u32; CLASSES];
    let mut class = 0;
    while class < CLASSES {
        if SPAN_UNITS[class] != 0 {
            table[class] = capacity(class);
        }
        class += 1;
    }
    table
};

/// The bytes of a span of class `class`.
#[inline]
const fn span_bytes(class: usize) -> usize {
    SPAN_UNITS[class] as usize * UNIT
}

/// The class serving `size` bytes aligned to `align` (a power of two), or `None` when the
/// request takes a run of units: bigger than [`MAX_SLOT`], aligned to more than
/// [`MAX_CLASS_ALIGN`], or of the class served as runs. O(1): a table lookup up to
/// [`TABLE_MAX`] bytes, else a log2 and a shift.
#[inline(always)]
pub(crate) fn class_of(size: usize, align: usize) -> Option<usize> {
    let class = class_index(size, align);
    (class < CLASSES).then_some(class)
}

/// Requests up to this many bytes (after rounding up to their alignment) find their class
/// in [`SMALL_CLASS`]: most requests, in a load instead of a log2 and a shift. 1 KiB keeps
/// the table at 129 bytes.
const TABLE_MAX: usize = 1024;

/// The class of `bytes` bytes, for `bytes` up to [`TABLE_MAX`], at index `bytes.div_ceil(8)`
/// (every class size up to it is a multiple of 8; index 0, a zero size, is the smallest
/// class).
static SMALL_CLASS: [u8; TABLE_MAX / MIN_SLOT + 1] = {
    let mut table = [0u8; TABLE_MAX / MIN_SLOT + 1];
    let (mut index, mut class) = (1, 0);
    while index < table.len() {
        while slot_size(class) < index * MIN_SLOT {
            class += 1;
        }
        table[index] = class as u8;
        index += 1;
    }
    table
};

/// [`class_of`] with `CLASSES` for `None`: returned in a register.
#[inline]
fn class_index(size: usize, align: usize) -> usize {
    if size > MAX_SLOT || align > MAX_CLASS_ALIGN {
        return CLASSES;
    }
    // The bytes needed: the size rounded up to the alignment, when it is above the
    // table's 8-byte steps (a zero size then needs `align` bytes, so that blocks stay
    // unique; at 8 or less it takes the smallest class).
    let bytes = if align <= MIN_SLOT { size } else { (size.max(1) + align - 1) & !(align - 1) };
    if bytes <= TABLE_MAX {
        return SMALL_CLASS[bytes.div_ceil(MIN_SLOT)] as usize;
    }
    let last = bytes - 1;
    let doubling = last.ilog2() as usize;
    let step = (last >> (doubling - 2)) & 3;
    let class = LINEAR_MAX / MIN_SLOT + (doubling - LINEAR_MAX.ilog2() as usize) * 4 + step;
    // The classes below the last are span classes (`SPAN_UNITS[class] != 0`, asserted
    // below); `class <= CLASSES - 1` here, but the compiler cannot tell, and a table
    // lookup would keep a bounds check.
    if class < CLASSES - 1 {
        class
    } else {
        CLASSES
    }
}

const _: () = {
    let mut class = 0;
    while class < CLASSES - 1 {
        assert!(SPAN_UNITS[class] != 0);
        class += 1;
    }
    assert!(SPAN_UNITS[CLASSES - 1] == 0);
    // `refill` hands out a span's first slot and leaves it in the list, with room.
    let mut class = 0;
    while class < CLASSES - 1 {
        assert!(capacity(class) >= 2);
        class += 1;
    }
};

/// A free slot: its first word links to the next free slot of its span, the address
/// XORed with [`LINK_KEY`] (without the checked mode, the key is 0: the address itself).
struct FreeSlot {
    link: *mut FreeSlot,
}

impl FreeSlot {
    /// The next free slot after `slot` (null at the end of the list).
    ///
    /// # Safety
    /// `slot` is a free slot, its link written by [`FreeSlot::write`].
    #[inline(always)]
    unsafe fn next(slot: *mut FreeSlot) -> *mut FreeSlot {
        // SAFETY: the caller's contract.
        unsafe { (*slot).link }.map_addr(|addr| addr ^ LINK_KEY)
    }

    /// Makes `slot` a free slot whose next is `next`.
    ///
    /// # Safety
    /// `slot` is a slot nothing uses, at least a word long and aligned to one.
    #[inline(always)]
    unsafe fn write(slot: *mut FreeSlot, next: *mut FreeSlot) {
        // SAFETY: the caller's contract.
        unsafe { slot.write(FreeSlot { link: next.map_addr(|addr| addr ^ LINK_KEY) }) }
    }
}

/// The free slot after `slot` on its span's free list, for the checked mode.
///
/// # Safety
/// `slot` is on a free list.
#[cfg_attr(not(feature = "checked"), allow(dead_code))]
pub(crate) unsafe fn next_free(slot: NonNull<u8>) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { FreeSlot::next(slot.cast().as_ptr()) }.cast()
}

/// A span's header, at its start. The invariants below are checked, for every span,
/// by [`SizeClasses::check`]; the fast paths rely on those marked so, with a
/// `debug_assert!`. Every field is written by the one thread that holds the allocator.
#[repr(C)]
struct Span {
    /// The span's free slots (null when none). Every entry is a slot of this span below
    /// `bump`, at most once, and the list has `capacity - used - never-used` entries.
    free: *mut FreeSlot,
    /// The next never-used slot: slots from here to `end` have never been handed out.
    /// `span + HEADER <= bump <= end`, on a slot boundary.
    bump: *mut u8,
    /// One past the span's last slot (`span + HEADER + CAPACITY[class] * slot_size`): the
    /// span is full when its free list is empty and `bump == end`.
    end: *mut u8,
    /// The slot size (`slot_size(class)`), here so the fast path need not compute it.
    size: u32,
    /// Slots in use: `used <= CAPACITY[class]` (relied on by `push`, which never frees
    /// into an empty span).
    used: u32,
    /// The class, for the checks and `stats`: `class < CLASSES - 1`.
    class: u32,
    /// Whether the span is in its class's list (1) or not (0: full).
    listed: u32,
    /// Links of the class's list of spans. A span with room is in the list; so may be a
    /// full one, until an allocation finds it full (lazily, as mimalloc does: a span
    /// that fills and gets a slot back at once is not unlinked and linked again). The
    /// only empty span in the list is the class's `empty` one. Both links are null when
    /// it is not in the list, or alone in it.
    next: *mut Span,
    prev: *mut Span,
}

const _: () = assert!(core::mem::size_of::<Span>() <= HEADER);

/// What the checked mode reads of a span's header ([`SizeClasses::span_header`]).
#[cfg(feature = "checked")]
pub(crate) struct SpanHeader {
    /// The class the span serves.
    pub(crate) class: usize,
    /// The end of the slots it has handed out so far (its never-used cursor).
    pub(crate) handed_out_end: *mut u8,
    /// The head of its free list (null when empty).
    pub(crate) free: *mut u8,
    /// Its slots in use.
    pub(crate) used: u32,
}

/// What one class holds, for [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// The slot size of the class in bytes.
    pub slot_size: usize,
    /// Spans the class holds.
    pub spans: usize,
    /// Of those, spans with no slot in use (at most one is kept).
    pub empty_spans: usize,
    /// Bytes of memory its spans take.
    pub held_bytes: usize,
    /// Bytes of slots in use.
    pub used_bytes: usize,
}

/// The lists of spans with free slots of all classes.
#[derive(Debug)]
pub(crate) struct SizeClasses {
    /// Head of each class's list of spans with a free slot and a slot in use (null when
    /// it has none).
    avail: [*mut Span; CLASSES],
    /// Each class's one empty span, kept in its list (null when it has none): the first
    /// allocation from it makes it an ordinary span again.
    empty: [*mut Span; CLASSES],
    /// Spans each class holds (counted on slow paths only).
    spans: [u32; CLASSES],
}

// SAFETY: the pointers point into memory the allocator owns; the classes move between
// threads only inside an allocator's lock.
unsafe impl Send for SizeClasses {}

impl SizeClasses {
    pub(crate) const fn new() -> Self {
        SizeClasses {
            avail: [ptr::null_mut(); CLASSES],
            empty: [ptr::null_mut(); CLASSES],
            spans: [0; CLASSES],
        }
    }

    /// A slot from the class's first span: the fast path. `None` when the class has no
    /// span in its list, or the first is full: then [`SizeClasses::drop_full`] takes it
    /// out, or [`SizeClasses::refill`] gives the class a span.
    #[inline(always)]
    pub(crate) fn pop(&mut self, class: usize) -> Option<NonNull<u8>> {
        let span = self.avail[class];
        if span.is_null() {
            return None;
        }
        // SAFETY: a span in the list is a live span of this class: its header was
        // written by `refill`.
        unsafe {
            if (*span).used == 0 {
                // The class's empty span serves again.
                self.empty[class] = ptr::null_mut();
            }
            let head = (*span).free;
            let slot = if head.is_null() {
                let slot = (*span).bump;
                if slot == (*span).end {
                    return None;
                }
                (*span).bump = slot.wrapping_add((*span).size as usize);
                slot
            } else {
                (*span).free = FreeSlot::next(head);
                head.cast()
            };
            (*span).used += 1;
            NonNull::new(slot)
        }
    }

    /// Takes the class's first span out of its list, where [`SizeClasses::pop`] found it
    /// full; `false` when the list is empty. A free into it links it again.
    #[cold]
    pub(crate) fn drop_full(&mut self, class: usize) -> bool {
        let span = self.avail[class];
        if span.is_null() {
            return false;
        }
        // SAFETY: the first span of the list is live and in the list.
        unsafe {
            debug_assert!((*span).free.is_null() && (*span).bump == (*span).end);
            self.unlink(class, span);
        }
        true
    }

    /// Returns a slot to its span, which rejoins the list if it was out of it (full);
    /// when that empties the span, keeps it as the class's empty span or returns it to
    /// the page layer, and then says so (`true`: its units went back).
    ///
    /// # Safety
    /// `slot` was handed out for `class` by this `SizeClasses` and is not in use.
    #[inline(always)]
    pub(crate) unsafe fn push<M: Memory>(
        &mut self,
        memory: &M,
        pages: &mut PageMap,
        class: usize,
        slot: NonNull<u8>,
    ) -> bool {
        let span = span_of(slot, class);
        // SAFETY: the caller's contract: the slot is ours and free, in the span its
        // address masks to (spans are aligned to their size), whose header is live.
        unsafe {
            debug_assert!((*span).used > 0, "a slot freed into an empty span");
            let slot = slot.cast::<FreeSlot>().as_ptr();
            FreeSlot::write(slot, (*span).free);
            (*span).free = slot;
            (*span).used -= 1;
            if (*span).listed == 0 {
                // It was full and out of the list: it has room again. (Every span holds
                // at least 2 slots, so it has a slot in use still.)
                self.link(class, span);
            } else if (*span).used == 0 {
                return self.retire(memory, pages, class, span);
            }
        }
        false
    }

    /// A span has emptied: it stays in the list as the class's empty span if the class
    /// has none (`false`), or else leaves the list and goes back to the page layer
    /// (`true`).
    ///
    /// # Safety
    /// `span` is a live, empty span of `class`, in the list.
    #[cold]
    unsafe fn retire<M: Memory>(
        &mut self,
        memory: &M,
        pages: &mut PageMap,
        class: usize,
        span: *mut Span,
    ) -> bool {
        if self.empty[class].is_null() && SPAN_UNITS[class] as usize <= KEPT_SPAN_MAX {
            self.empty[class] = span;
            return false;
        }
        // SAFETY: the caller's contract.
        unsafe { self.unlink(class, span) };
        self.spans[class] -= 1;
        let start = memory.offset(span.cast()) / UNIT;
        let units = start..start + SPAN_UNITS[class] as usize;
        // SAFETY: the span's units came from `pages`, and its last slot was just freed:
        // nothing uses them.
        unsafe { pages.release(memory, units) };
        true
    }

    /// The slow path of an allocation in `class`, whose list is empty: a new span from
    /// the page layer hands out its first slot and goes in the class's list. `None` when
    /// memory is exhausted.
    pub(crate) fn refill<M: Memory>(
        &mut self,
        memory: &M,
        pages: &mut PageMap,
        class: usize,
    ) -> Option<NonNull<u8>> {
        debug_assert!(self.avail[class].is_null() && self.empty[class].is_null());
        let units = SPAN_UNITS[class] as usize;
        let span = pages.alloc(memory, units, units)?.as_ptr().cast::<Span>();
        self.spans[class] += 1;
        let first = span.cast::<u8>().wrapping_add(HEADER);
        let size = slot_size(class);
        // SAFETY: the span is ours, `units` units long and aligned to its size, so to
        // `Span`'s alignment, and its header may be written. Every span holds at least 2
        // slots, so with one in use it has room.
        unsafe {
            span.write(Span {
                free: ptr::null_mut(),
                bump: first.wrapping_add(size),
                end: first.wrapping_add(capacity(class) as usize * size),
                size: size as u32,
                used: 1,
                class: class as u32,
                listed: 0,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
            });
            self.link(class, span);
        }
        NonNull::new(first)
    }

    /// Puts `span` at the head of its class's list.
    ///
    /// # Safety
    /// `span` is a live span of `class`, not in the list.
    unsafe fn link(&mut self, class: usize, span: *mut Span) {
        let head = self.avail[class];
        // SAFETY: the caller's contract; `head`, if not null, is a live span in the list.
        unsafe {
            (*span).next = head;
            (*span).prev = ptr::null_mut();
            (*span).listed = 1;
            if !head.is_null() {
                (*head).prev = span;
            }
        }
        self.avail[class] = span;
    }

    /// Takes `span` out of its class's list.
    ///
    /// # Safety
    /// `span` is a live span of `class`, in the list.
    unsafe fn unlink(&mut self, class: usize, span: *mut Span) {
        // SAFETY: the caller's contract; its neighbours are live spans in the list.
        unsafe {
            let (next, prev) = ((*span).next, (*span).prev);
            if prev.is_null() {
                self.avail[class] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*span).next = ptr::null_mut();
            (*span).prev = ptr::null_mut();
            (*span).listed = 0;
        }
    }

    /// The head of the free list that the next allocation in `class` takes from (that of
    /// its first span; null when it has none), for the checked mode.
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) fn head(&self, class: usize) -> *mut u8 {
        let span = self.avail[class];
        if span.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: spans in the list are live.
        unsafe { (*span).free.cast() }
    }

    /// The head of the free list of the span that `slot` (a slot of `class`) lies in, for
    /// the checked mode.
    ///
    /// # Safety
    /// `slot` lies in a live span of `class`.
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) unsafe fn span_head(&self, slot: NonNull<u8>, class: usize) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { (*span_of(slot, class)).free.cast() }
    }

    /// Forgets the free list that [`SizeClasses::head`] returns the head of (its slots
    /// leak): the checked mode found it corrupt. The leaked slots count as in use, so the
    /// span is no longer the class's empty one, and once its never-used slots are gone
    /// it is full (the next allocation drops it, as any full span).
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) fn forget_list(&mut self, class: usize) {
        let span = self.avail[class];
        if span.is_null() {
            return;
        }
        // SAFETY: spans in the list are live.
        unsafe {
            let leaked = CAPACITY[class]
                - (*span).used
                - ((*span).end.addr() - (*span).bump.addr()) as u32 / (*span).size;
            (*span).free = ptr::null_mut();
            (*span).used += leaked;
            if self.empty[class] == span && (*span).used != 0 {
                self.empty[class] = ptr::null_mut();
            }
        }
    }

    /// The first slot of a span, and its bytes: for the checked mode and the
    /// invariants, which ask whether an address is a slot of a class.
    #[cfg_attr(not(any(feature = "checked", debug_assertions)), allow(dead_code))]
    pub(crate) fn slots_of(span_start: usize, class: usize) -> Range<usize> {
        let first = span_start + HEADER;
        first..first + CAPACITY[class] as usize * slot_size(class)
    }

    /// What a span's header says, for the checked mode.
    ///
    /// # Safety
    /// `span` is the start of a live span.
    #[cfg(feature = "checked")]
    pub(crate) unsafe fn span_header(span: *mut u8) -> SpanHeader {
        // SAFETY: the caller's contract: a header `refill` wrote.
        let header = unsafe { &*span.cast::<Span>() };
        SpanHeader {
            class: header.class as usize,
            handed_out_end: header.bump,
            free: header.free.cast(),
            used: header.used,
        }
    }

    /// The span size of `class` in units (0 for a class served as runs).
    #[cfg_attr(not(feature = "checked"), allow(dead_code))]
    pub(crate) fn span_units(class: usize) -> usize {
        SPAN_UNITS[class] as usize
    }

    /// Debug builds: the first of the size classes' invariants that does not hold. Every
    /// span in a class's list is a span of that class in units the page layer handed
    /// out, marked as listed; its count of slots in use agrees with its free list and
    /// cursor, and is zero only for the class's one empty span, which is in the list; its
    /// free slots are slots of the span it has handed out; no list has a cycle.
    #[cfg(any(debug_assertions, test))]
    #[allow(clippy::needless_range_loop)] // `class` indexes several tables
    pub(crate) fn check<M: Memory>(&self, memory: &M, pages: &PageMap) -> Result<(), &'static str> {
        for class in 0..CLASSES {
            let (mut span, mut prev, mut count) = (self.avail[class], ptr::null_mut(), 0);
            let mut found_empty = false;
            while !span.is_null() {
                count += 1;
                if count > self.spans[class] {
                    return Err(
                        "size classes: a list of spans is longer than the spans held, or has a cycle",
                    );
                }
                let used = Self::check_span(memory, pages, class, span)?;
                // SAFETY: `check_span` found a live span of this class.
                let header = unsafe { &*span };
                if header.prev != prev || header.listed != 1 {
                    return Err("size classes: a span in the list is linked wrongly");
                }
                if (used == 0) != (span == self.empty[class]) {
                    return Err("size classes: an empty span in the list is not the class's empty one");
                }
                found_empty |= span == self.empty[class];
                (prev, span) = (span, header.next);
            }
            if !self.empty[class].is_null() && !found_empty {
                return Err("size classes: the class's empty span is not in its list");
            }
        }
        Ok(())
    }

    /// Debug builds: checks one span of `class`; returns its slots in use.
    #[cfg(any(debug_assertions, test))]
    fn check_span<M: Memory>(
        memory: &M,
        pages: &PageMap,
        class: usize,
        span: *mut Span,
    ) -> Result<u32, &'static str> {
        let size = slot_size(class);
        let start = memory.offset(span.cast());
        let units = start / UNIT..start / UNIT + SPAN_UNITS[class] as usize;
        if span.addr() % span_bytes(class) != 0
            || units.clone().any(|unit| !pages.may_be_in_use(memory, unit))
        {
            return Err("size classes: a span is misaligned or in units not handed out");
        }
        // SAFETY: the span is aligned and in units handed out (checked above): a live
        // span whose header `refill` wrote.
        let header = unsafe { &*span };
        let slots = Self::slots_of(start, class);
        let bump = memory.offset(header.bump);
        if header.class as usize != class
            || memory.offset(header.end) != slots.end
            || !(slots.start..=slots.end).contains(&bump)
            || (bump - slots.start) % size != 0
        {
            return Err("size classes: a span's header is corrupt");
        }
        let mut free = 0;
        let mut slot = header.free;
        while !slot.is_null() {
            let at = memory.offset(slot.cast());
            if !(slots.start..bump).contains(&at) || (at - slots.start) % size != 0 {
                return Err("size classes: a free slot is not a handed-out slot of its span");
            }
            free += 1;
            if free > CAPACITY[class] {
                return Err("size classes: a span's free list has a cycle");
            }
            // SAFETY: a free slot of this span (checked above), whose first word `push`
            // wrote.
            slot = unsafe { FreeSlot::next(slot) };
        }
        let never_used = ((slots.end - bump) / size) as u32;
        if header.used + free + never_used != CAPACITY[class] {
            return Err("size classes: a span's count of slots in use is wrong");
        }
        Ok(header.used)
    }

    /// Each class's stats when it holds no span (a page allocator's).
    pub(crate) fn empty_stats() -> [ClassStats; CLASSES] {
        core::array::from_fn(|class| ClassStats { slot_size: slot_size(class), ..ClassStats::default() })
    }

    /// What each class holds and how much of it is in use (walks the lists), for the
    /// tests; `WasmAllocator::stats` takes the counts under its lock and this after it.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn stats(&self) -> [ClassStats; CLASSES] {
        let counts = self.counts();
        core::array::from_fn(|class| counts[class].stats(class))
    }

    /// Each class's counts, for [`ClassCounts::stats`]: only reads and additions, so that
    /// under the lock nothing can overflow, even with a broken invariant (`stats` does the
    /// subtractions once the lock is released).
    pub(crate) fn counts(&self) -> [ClassCounts; CLASSES] {
        core::array::from_fn(|class| {
            let (mut listed, mut listed_used) = (0, 0);
            let mut span = self.avail[class];
            while !span.is_null() {
                // SAFETY: spans in the list are live.
                let header = unsafe { &*span };
                listed += 1;
                listed_used += header.used as usize;
                span = header.next;
            }
            let empty_spans = usize::from(!self.empty[class].is_null());
            ClassCounts { spans: self.spans[class] as usize, empty_spans, listed, listed_used }
        })
    }
}

/// What [`SizeClasses::counts`] reads of a class under the lock.
#[derive(Clone, Copy)]
pub(crate) struct ClassCounts {
    /// Spans the class holds.
    spans: usize,
    /// Of those, its empty span (0 or 1), which is in its list.
    empty_spans: usize,
    /// Spans in its list, and their slots in use.
    listed: usize,
    listed_used: usize,
}

impl ClassCounts {
    /// The class's [`ClassStats`]: spans not in the list are full.
    pub(crate) fn stats(self, class: usize) -> ClassStats {
        let capacity = CAPACITY[class] as usize;
        let free_slots = self.listed * capacity - self.listed_used;
        ClassStats {
            slot_size: slot_size(class),
            spans: self.spans,
            empty_spans: self.empty_spans,
            held_bytes: self.spans * span_bytes(class),
            used_bytes: (self.spans * capacity - free_slots) * slot_size(class),
        }
    }
}

/// The span a slot of `class` lies in: its address masked to the span size.
#[inline(always)]
fn span_of(slot: NonNull<u8>, class: usize) -> *mut Span {
    span_start(slot, class).cast()
}

/// The start of the span of `class` that `slot` lies in (or would, for the checked mode,
/// which asks of any pointer): its address masked to the span size, as spans are aligned
/// to their size.
#[inline(always)]
pub(crate) fn span_start(slot: NonNull<u8>, class: usize) -> *mut u8 {
    let slot = slot.as_ptr();
    slot.wrapping_sub(slot.addr() & (span_bytes(class) - 1))
}

// Host tests over a region; the wasm tests are in tests/.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
