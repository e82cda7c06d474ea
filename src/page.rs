//! The page layer: a bitmap of free 4 KiB units of memory, scanned a word at a time,
//! that hands out runs of whole units with any power-of-two alignment. It started as
//! Zig's `WasmPageAllocator`, whose bits are 64 KiB wasm pages; ours are sixteenths of a
//! page, so that a block of 33 KiB costs 36 KiB rather than 64, while memory still grows
//! in wasm pages.
//!
//! A set bit means "free and ours": the unit lies in a page one of our own `grow` calls
//! returned (or in the initial heap) and is not handed out. Units of pages other code
//! grew are never set.

use core::ops::Range;
use core::ptr::NonNull;

use crate::memory::{Memory, PAGE_LIMIT, PAGE_SIZE};

/// The unit of the page layer: 4 KiB. Small enough that a run of units wastes at most
/// an eighth of a block above 32 KiB (the size classes serve up to 14 KiB), large
/// enough that the bitmap of 128 MiB fits in 4 KiB inside the allocator.
pub(crate) const UNIT: usize = 4096;

/// Units in a wasm page: memory grows by this many units at a time.
pub(crate) const UNITS_PER_PAGE: usize = PAGE_SIZE / UNIT;

/// Bits per bitmap word. 64 rather than the seed's 128: wasm has 64-bit integer
/// instructions but no 128-bit ones, so a `u64` scan is one instruction per step.
const WORD_BITS: usize = u64::BITS as usize;

/// Units covered by the bitmap stored inside the allocator: those of the first 2048
/// pages (128 MiB, 4 KiB of bits). Most programs never use more.
pub(crate) const CONVENTIONAL_UNITS: usize = 2048 * UNITS_PER_PAGE;

const CONVENTIONAL_WORDS: usize = CONVENTIONAL_UNITS / WORD_BITS;

/// Pages the extended bitmap takes (bits for every unit above the conventional ones): 2
/// pages hold 1,048,576 bits, every unit of wasm32's 4 GiB.
pub(crate) const EXTENDED_PAGES: usize = 2;

/// Units the extended bitmap takes.
const EXTENDED_UNITS: usize = EXTENDED_PAGES * UNITS_PER_PAGE;

/// Pages the two bitmaps can describe, one bit per unit: 2048 in the conventional
/// bitmap, plus what the extended one's bits cover; more than wasm32's 65,536 pages. It
/// bounds [`PAGE_LIMIT`] on 64-bit hosts.
pub(crate) const BITMAP_PAGES: usize =
    (CONVENTIONAL_UNITS + EXTENDED_PAGES * PAGE_SIZE * u8::BITS as usize) / UNITS_PER_PAGE;

// `PAGE_LIMIT`'s documentation names this number.
const _: () = assert!(BITMAP_PAGES == 67_584);

/// Units 0..`UNIT_LIMIT` are the only ones ever handed out (see [`PAGE_LIMIT`]).
pub(crate) const UNIT_LIMIT: usize = PAGE_LIMIT * UNITS_PER_PAGE;

/// Words of the extended bitmap in use: enough for every unit up to [`UNIT_LIMIT`].
const EXTENDED_WORDS: usize = UNIT_LIMIT.saturating_sub(CONVENTIONAL_UNITS).div_ceil(WORD_BITS);

const _: () = assert!(EXTENDED_WORDS * core::mem::size_of::<u64>() <= EXTENDED_PAGES * PAGE_SIZE);

/// The units a block of `bytes` bytes occupies: at least one, so zero-size blocks still
/// get a unique address. Cannot overflow.
#[inline]
pub(crate) fn units_for(bytes: usize) -> usize {
    bytes.div_ceil(UNIT).max(1)
}

/// The alignment of a block in units: 1 for any alignment up to a unit.
#[inline]
pub(crate) fn align_in_units(align: usize) -> usize {
    (align / UNIT).max(1)
}

/// Growing memory by a page costs more than the allocation that asks for it: V8 makes a
/// new `ArrayBuffer` for the memory each time, and once memory is large that can set
/// off a full garbage collection. So memory grows ahead by an eighth of the allocator's
/// own heap (the memory it has obtained: not the stack, static data and pages of other
/// code, which would make a small heap grow far ahead of its use), up to 4 MiB at a
/// time, and the extra pages wait in the bitmap. An eighth bounds what growing ahead adds
/// to peak memory to 12.5% of the heap, and 4 MiB bounds it in big heaps
/// (benches/README.md, "Growing ahead", has the sweep that chose them).
const GROW_AHEAD_SHIFT: u32 = 3;

/// The most pages grown ahead at once (4 MiB).
const GROW_AHEAD_MAX: usize = 64;

/// Pages to grow beyond a request when the allocator has obtained `heap` pages.
#[inline]
fn grow_ahead(heap: usize) -> usize {
    (heap >> GROW_AHEAD_SHIFT).min(GROW_AHEAD_MAX)
}

/// An alignment in units, of addresses rather than unit indexes: a [`Region`]'s first
/// page need only be 64 KiB aligned, so unit `i` is at address `first + i * UNIT`.
///
/// [`Region`]: crate::Region
#[derive(Clone, Copy)]
struct Alignment {
    units: usize,
    /// The unit number (address / `UNIT`) of unit index 0, modulo `units`.
    phase: usize,
}

impl Alignment {
    fn new<M: Memory>(memory: &M, units: usize) -> Self {
        Alignment { units, phase: (memory.ptr(0).addr() / UNIT) & (units - 1) }
    }

    /// The first unit index at or after `unit` whose address is aligned.
    #[inline]
    fn next_from(self, unit: usize) -> Option<usize> {
        let mask = self.units - 1;
        Some((unit.checked_add(self.phase)?.checked_add(mask)? & !mask) - self.phase)
    }
}

/// The unit bitmap and what the page layer knows about memory.
#[derive(Debug)]
pub(crate) struct PageMap {
    /// Bits for units `0..CONVENTIONAL_UNITS`.
    conventional: [u64; CONVENTIONAL_WORDS],
    /// Bits for units from `CONVENTIONAL_UNITS` on: [`EXTENDED_WORDS`] words in
    /// [`EXTENDED_PAGES`] pages taken the first time such a unit is freed; null until then
    /// (all units there read as not free).
    extended: *mut u64,
    /// One past the highest unit ever marked free: scans stop here.
    top: usize,
    /// Every unit of ours at or above this index has never been handed out, so it is
    /// still zero from `grow` (or from the initial heap).
    fresh_from: usize,
    /// `grow` calls made, refused ones included: a counter for [`crate::Stats`],
    /// touched only when growing.
    grow_calls: usize,
    /// Units obtained from memory (the pages grown, and the initial heap's whole units),
    /// for [`crate::Stats`].
    units_obtained: usize,
}

// SAFETY: `extended` points into pages this map owns; the map moves between threads only
// inside an allocator's lock.
unsafe impl Send for PageMap {}

impl PageMap {
    pub(crate) const fn new() -> Self {
        PageMap {
            conventional: [0; CONVENTIONAL_WORDS],
            extended: core::ptr::null_mut(),
            top: 0,
            fresh_from: 0,
            grow_calls: 0,
            units_obtained: 0,
        }
    }

    /// Claims the memory's initial heap, if it still has one: its whole units become free
    /// units (the bytes before the first unit boundary, less than 4 KiB, stay unused).
    /// [`Memory::take_initial_heap`] returns it at most once, so afterwards this does
    /// nothing.
    pub(crate) fn claim_initial_heap<M: Memory>(&mut self, memory: &M) {
        let Some(heap) = memory.take_initial_heap() else {
            return;
        };
        let first = heap.start.div_ceil(UNIT);
        let end = (heap.end / UNIT).max(first);
        self.units_obtained += end - first;
        // SAFETY: the memory's contract: the initial heap is ours alone, and unused.
        unsafe { self.release(memory, first..end) };
    }

    /// Hands out `count` units aligned to `align` units (a power of two): the first free
    /// run that fits, else memory grows by what is missing. Returns a pointer to the
    /// run's first unit; `None` when memory cannot grow (or, with memory that started
    /// with no pages, for a run at address 0, whose units then stay taken).
    ///
    /// A pointer rather than a unit and a flag: it comes back in a register.
    /// [`PageMap::fresh_from`] read before the call says whether the run is zeroed.
    pub(crate) fn alloc<M: Memory>(&mut self, memory: &M, count: usize, align: usize) -> Option<NonNull<u8>> {
        debug_assert!(count > 0 && align.is_power_of_two());
        if count > UNIT_LIMIT {
            return None;
        }
        let align = Alignment::new(memory, align);
        loop {
            if let Some(start) = self.find_free_run(count, align) {
                self.mark(start..start + count, false);
                self.hand_out(start..start + count);
                return NonNull::new(memory.ptr(start * UNIT));
            }
            // Memory grew: the search now finds the run at its top (or, if other code
            // grew memory in between, whatever fits in the pages we got).
            self.grow_for(memory, count, align)?;
        }
    }

    /// Marks units free. A range that is not ours is a broken contract; units at or
    /// above [`UNIT_LIMIT`] are ignored.
    ///
    /// The first time units above the conventional bitmap are freed, the last
    /// [`EXTENDED_UNITS`] of them become the extended bitmap and are never marked free
    /// again. Growth that crosses the conventional bitmap grows [`EXTENDED_PAGES`] extra
    /// for this; if a range has fewer units above it (memory other code grew in
    /// between), those units are not recorded: lost, but never handed out twice.
    ///
    /// # Safety
    /// The units are ours (handed out by this map, or obtained from `memory` for it) and
    /// nothing uses them any more: they will be handed out again, and may be written
    /// here (the extended bitmap).
    pub(crate) unsafe fn release<M: Memory>(&mut self, memory: &M, units: Range<usize>) {
        let mut end = units.end.min(UNIT_LIMIT);
        if units.start >= end {
            return;
        }
        if end > CONVENTIONAL_UNITS && self.extended.is_null() {
            if end - units.start.max(CONVENTIONAL_UNITS) >= EXTENDED_UNITS {
                end -= EXTENDED_UNITS;
                let bitmap = memory.ptr(end * UNIT).cast::<u64>();
                // SAFETY: these units are ours (callers release only units they own),
                // free (being released) and 4 KiB aligned, so they can hold
                // `EXTENDED_WORDS` words (checked at compile time above); from now on
                // nothing else uses them.
                unsafe { bitmap.write_bytes(0, EXTENDED_WORDS) };
                self.extended = bitmap;
            } else {
                end = units.start.max(CONVENTIONAL_UNITS);
                if units.start >= end {
                    return;
                }
            }
        }
        self.top = self.top.max(end);
        self.mark(units.start..end, true);
    }

    /// Resizes the run at `start` from `old` to `new` units without moving it: shrinking
    /// frees the tail; growing claims the following units when they are free, growing
    /// memory when the run reaches the top of memory. `false` when it cannot.
    ///
    /// # Safety
    /// `start..start + old` is a run this map handed out; when it shrinks, nothing uses
    /// its units past `start + new` any more.
    pub(crate) unsafe fn resize<M: Memory>(
        &mut self,
        memory: &M,
        start: usize,
        old: usize,
        new: usize,
    ) -> bool {
        if new <= old {
            // SAFETY: the caller's contract: the tail is ours and unused.
            unsafe { self.release(memory, start + new..start + old) };
            return true;
        }
        let (tail, end) = (start + old, start.saturating_add(new));
        if end > UNIT_LIMIT {
            return false;
        }
        loop {
            let used = self.first_used(tail, end);
            if used == end {
                break;
            }
            // The units after the block are not all free: grow memory if the free ones
            // reach its top, then look again. The second look ends here unless the grown
            // pages follow the block (not when other code grew memory in between) and
            // the extended bitmap took none of those it needs.
            let size = memory.size();
            if used != size * UNITS_PER_PAGE
                || self.grow_memory(memory, size, (end - used).div_ceil(UNITS_PER_PAGE)).is_none()
            {
                return false;
            }
        }
        self.mark(tail..end, false);
        self.hand_out(tail..end);
        true
    }

    /// Units free in the bitmap (walks it).
    pub(crate) fn free_units(&self) -> usize {
        (0..self.top.div_ceil(WORD_BITS)).map(|w| self.word(w).count_ones() as usize).sum()
    }

    /// `memory.grow` calls made and units obtained from memory so far.
    pub(crate) fn growth(&self) -> (usize, usize) {
        (self.grow_calls, self.units_obtained)
    }

    /// Units the page layer keeps for itself: the extended bitmap's, once it exists.
    pub(crate) fn own_units(&self) -> usize {
        if self.extended.is_null() {
            0
        } else {
            EXTENDED_UNITS
        }
    }

    /// Whether unit `unit` is free and ours.
    #[cfg(any(debug_assertions, test))]
    pub(crate) fn is_free(&self, unit: usize) -> bool {
        self.word(unit / WORD_BITS) >> (unit % WORD_BITS) & 1 == 1
    }

    /// Where the extended bitmap lives, if it exists yet.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn extended_bitmap(&self) -> *mut u64 {
        self.extended
    }

    /// Debug builds: the first of the page map's invariants that does not hold. Free
    /// bits lie below `top`, and `top` below the memory's size; free units are no more
    /// than the units obtained; the extended bitmap's units are never free.
    #[cfg(any(debug_assertions, test))]
    pub(crate) fn check<M: Memory>(&self, memory: &M) -> Result<(), &'static str> {
        if self.top > memory.size() * UNITS_PER_PAGE {
            return Err("page map: top lies above the memory's size");
        }
        let words = CONVENTIONAL_WORDS + if self.extended.is_null() { 0 } else { EXTENDED_WORDS };
        if (self.top.div_ceil(WORD_BITS)..words).any(|w| self.word(w) != 0)
            || self.top % WORD_BITS != 0 && self.word(self.top / WORD_BITS) >> (self.top % WORD_BITS) != 0
        {
            return Err("page map: a free bit at or above top");
        }
        if self.free_units() > self.units_obtained {
            return Err("page map: more units free than obtained");
        }
        if let Some(bitmap) = self.extended_units(memory) {
            if bitmap.clone().any(|unit| self.is_free(unit)) || bitmap.end > memory.size() * UNITS_PER_PAGE {
                return Err("page map: the extended bitmap's units are free, or misplaced");
            }
        }
        Ok(())
    }

    /// Debug builds: whether unit `unit` may hold a block handed out: below the memory's
    /// size, not free, not the extended bitmap, and below `fresh_from` (so it was handed
    /// out since it was obtained).
    #[cfg(any(debug_assertions, test))]
    pub(crate) fn may_be_in_use<M: Memory>(&self, memory: &M, unit: usize) -> bool {
        let bitmap = self.extended_units(memory).unwrap_or(0..0);
        unit < memory.size() * UNITS_PER_PAGE
            && !self.is_free(unit)
            && !bitmap.contains(&unit)
            && unit < self.fresh_from
    }

    #[cfg(any(debug_assertions, test))]
    fn extended_units<M: Memory>(&self, memory: &M) -> Option<Range<usize>> {
        if self.extended.is_null() {
            return None;
        }
        let start = memory.offset(self.extended.cast()) / UNIT;
        Some(start..start + EXTENDED_UNITS)
    }

    /// Records that `units` leave the allocator.
    fn hand_out(&mut self, units: Range<usize>) {
        self.fresh_from = self.fresh_from.max(units.end);
    }

    /// Units from here on have never been handed out: a run that starts at or above the
    /// value read before [`PageMap::alloc`] is still zero.
    #[inline]
    pub(crate) fn fresh_from(&self) -> usize {
        self.fresh_from
    }

    /// Grows memory for a request no free run could serve: the free run that ends at the
    /// top of memory (if any) is extended by only the missing pages. `None` when memory
    /// cannot grow that far.
    fn grow_for<M: Memory>(&mut self, memory: &M, count: usize, align: Alignment) -> Option<()> {
        let size = memory.size();
        let top = size * UNITS_PER_PAGE;
        let end = align.next_from(self.free_run_ending_at(top))?.checked_add(count)?;
        if end > UNIT_LIMIT {
            return None;
        }
        // No free run fits below the top, so the request ends above it.
        debug_assert!(end > top);
        self.grow_memory(memory, size, end.saturating_sub(top).div_ceil(UNITS_PER_PAGE))
    }

    /// Grows memory by `needed` pages, plus [`grow_ahead`] more when memory allows, and
    /// marks every grown unit free (the caller takes its own). While there is no extended
    /// bitmap, growth that reaches past the conventional bitmap grows [`EXTENDED_PAGES`]
    /// more, at the top, which [`PageMap::release`] gives to it; so does the growth
    /// without the pages ahead when those could not be had.
    ///
    /// `None` when memory cannot grow by `needed`. The pages grown need not be where the
    /// caller wants them: other code may have grown memory since it looked at the size
    /// `expected` (the pages we got are still ours, and marked free), and the extended
    /// bitmap may take some. So callers look for their units again.
    fn grow_memory<M: Memory>(&mut self, memory: &M, expected: usize, needed: usize) -> Option<()> {
        let with_bitmap = |pages: usize| {
            let crosses = expected.saturating_add(pages).saturating_mul(UNITS_PER_PAGE) > CONVENTIONAL_UNITS;
            pages.saturating_add(if self.extended.is_null() && crosses { EXTENDED_PAGES } else { 0 })
        };
        let ahead = grow_ahead(self.units_obtained / UNITS_PER_PAGE)
            .min(PAGE_LIMIT.saturating_sub(expected.saturating_add(needed)));
        let wanted = with_bitmap(needed + ahead);
        self.grow_calls += 1;
        let (old, delta) = match memory.grow(wanted) {
            Some(old) => (old, wanted),
            None if ahead > 0 => {
                self.grow_calls += 1;
                let wanted = with_bitmap(needed);
                (memory.grow(wanted)?, wanted)
            }
            None => return None,
        };
        self.units_obtained += delta * UNITS_PER_PAGE;
        let units = old * UNITS_PER_PAGE..(old + delta).min(PAGE_LIMIT) * UNITS_PER_PAGE;
        // SAFETY: `grow` returned these pages to us alone (the memory's contract).
        unsafe { self.release(memory, units) };
        Some(())
    }

    /// The first unit of the first free run of `count` units whose start is a multiple
    /// of `align`.
    fn find_free_run(&self, count: usize, align: Alignment) -> Option<usize> {
        let mut from = 0;
        loop {
            let free = self.next_free(from)?;
            let start = align.next_from(free)?;
            if start != free {
                from = start;
                continue;
            }
            let end = start.checked_add(count).filter(|&end| end <= self.top)?;
            let used = self.first_used(start, end);
            if used == end {
                return Some(start);
            }
            from = used + 1;
        }
    }

    /// The first free unit at or after `from`.
    fn next_free(&self, from: usize) -> Option<usize> {
        if from >= self.top {
            return None;
        }
        let mut w = from / WORD_BITS;
        let mut bits = self.word(w) & (u64::MAX << (from % WORD_BITS));
        loop {
            if bits != 0 {
                return Some(w * WORD_BITS + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w * WORD_BITS >= self.top {
                return None;
            }
            bits = self.word(w);
        }
    }

    /// The first unit in `from..limit` that is not free, or `limit`.
    fn first_used(&self, from: usize, limit: usize) -> usize {
        let mut w = from / WORD_BITS;
        let mut bits = !self.word(w) & (u64::MAX << (from % WORD_BITS));
        loop {
            if bits != 0 {
                return (w * WORD_BITS + bits.trailing_zeros() as usize).min(limit);
            }
            w += 1;
            if w * WORD_BITS >= limit {
                return limit;
            }
            bits = !self.word(w);
        }
    }

    /// The start of the free run that ends at unit `end` (`end` itself when unit
    /// `end - 1` is not free).
    fn free_run_ending_at(&self, end: usize) -> usize {
        let mut end = end;
        while end > 0 {
            let w = (end - 1) / WORD_BITS;
            let below_end = u64::MAX >> (WORD_BITS - 1 - (end - 1) % WORD_BITS);
            let used = !self.word(w) & below_end;
            if used != 0 {
                return w * WORD_BITS + (WORD_BITS - used.leading_zeros() as usize);
            }
            end = w * WORD_BITS;
        }
        0
    }

    /// Word `w` of the whole bitmap; zero (nothing free) where no bitmap exists yet.
    #[inline]
    fn word(&self, w: usize) -> u64 {
        if w < CONVENTIONAL_WORDS {
            return self.conventional[w];
        }
        let e = w - CONVENTIONAL_WORDS;
        if self.extended.is_null() || e >= EXTENDED_WORDS {
            return 0;
        }
        // SAFETY: `extended` points at `EXTENDED_WORDS` words in units this map owns
        // (set in `release`), and `e` is in bounds.
        unsafe { *self.extended.add(e) }
    }

    /// Sets (`free`) or clears the bits of `units`, a word at a time. Clearing bits that
    /// have no bitmap yet is a no-op: they already read as not free.
    fn mark(&mut self, units: Range<usize>, free: bool) {
        let mut unit = units.start;
        while unit < units.end {
            let (w, lo) = (unit / WORD_BITS, unit % WORD_BITS);
            let n = (WORD_BITS - lo).min(units.end - unit);
            let mask = (u64::MAX >> (WORD_BITS - n)) << lo;
            if let Some(word) = self.word_mut(w) {
                if free {
                    *word |= mask;
                } else {
                    *word &= !mask;
                }
            } else {
                debug_assert!(!free, "unit {unit} freed with no bitmap for it");
            }
            unit += n;
        }
    }

    #[inline]
    fn word_mut(&mut self, w: usize) -> Option<&mut u64> {
        if w < CONVENTIONAL_WORDS {
            return Some(&mut self.conventional[w]);
        }
        let e = w - CONVENTIONAL_WORDS;
        if self.extended.is_null() || e >= EXTENDED_WORDS {
            return None;
        }
        // SAFETY: as in `word`; `&mut self` makes this the only reference.
        Some(unsafe { &mut *self.extended.add(e) })
    }
}

// Host tests over a region; the wasm tests are in tests/.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
