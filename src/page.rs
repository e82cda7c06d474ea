//! The page layer: a bitmap of free 64 KiB pages (Zig's `WasmPageAllocator`), scanned a
//! word at a time, that hands out runs of whole pages with any power-of-two alignment.
//!
//! A set bit means "free and ours": the page came from one of our own `grow` calls (or
//! from the initial heap) and is not handed out. Pages other code grew are never set.

use core::ops::Range;

use crate::memory::{Memory, PAGE_LIMIT, PAGE_SIZE};

/// Bits per bitmap word. 64 rather than the seed's 128: wasm has 64-bit integer
/// instructions but no 128-bit ones, so a `u64` scan is one instruction per step.
const WORD_BITS: usize = u64::BITS as usize;

/// Pages covered by the bitmap stored inside the allocator: 2048 pages (128 MiB, 256
/// bytes of bits), as in the seed. Most programs never use more.
pub(crate) const CONVENTIONAL_PAGES: usize = 2048;

const CONVENTIONAL_WORDS: usize = CONVENTIONAL_PAGES / WORD_BITS;

/// Words of the extended bitmap in use: enough for every page up to [`PAGE_LIMIT`]. It
/// lives in one stolen page, which holds up to `PAGE_SIZE / 8` words.
const EXTENDED_WORDS: usize = (PAGE_LIMIT - CONVENTIONAL_PAGES).div_ceil(WORD_BITS);

const _: () = assert!(EXTENDED_WORDS * core::mem::size_of::<u64>() <= PAGE_SIZE);

/// The pages a block of `bytes` bytes occupies: at least one, so zero-size blocks still
/// get a unique address. Cannot overflow.
#[inline]
pub(crate) fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).max(1)
}

/// The alignment of a block in pages: 1 for any alignment up to a page.
#[inline]
pub(crate) fn align_in_pages(align: usize) -> usize {
    (align / PAGE_SIZE).max(1)
}

/// Growing memory by a page costs more than the allocation that asks for it: V8 makes a
/// new `ArrayBuffer` for the memory each time, and once memory is large that can set
/// off a full garbage collection. So memory grows ahead by an eighth of its size, up to
/// 4 MiB at a time, and the extra pages wait in the bitmap. An eighth bounds what
/// growing ahead adds to peak memory to 12.5%, and 4 MiB bounds it in big heaps; the
/// README's growth table shows the measured trade-off (`GROW_AHEAD_MAX` = 256 pages was
/// no faster and took up to 9% more memory).
const GROW_AHEAD_SHIFT: u32 = 3;

/// The most pages grown ahead at once (4 MiB).
const GROW_AHEAD_MAX: usize = 64;

/// Pages to grow beyond a request when memory has `size` pages.
#[inline]
fn grow_ahead(size: usize) -> usize {
    (size >> GROW_AHEAD_SHIFT).min(GROW_AHEAD_MAX)
}

/// An alignment in pages, of addresses rather than page indexes: a [`Region`]'s first
/// page need only be 64 KiB aligned, so page `i` is at address `(first + i) * PAGE_SIZE`.
///
/// [`Region`]: crate::Region
#[derive(Clone, Copy)]
struct Alignment {
    pages: usize,
    /// The page number (address / `PAGE_SIZE`) of page index 0, modulo `pages`.
    phase: usize,
}

impl Alignment {
    fn new<M: Memory>(memory: &M, pages: usize) -> Self {
        Alignment { pages, phase: memory.ptr(0).addr() / PAGE_SIZE % pages }
    }

    /// The first page index at or after `page` whose address is aligned.
    #[inline]
    fn next_from(self, page: usize) -> Option<usize> {
        Some(page.checked_add(self.phase)?.checked_next_multiple_of(self.pages)? - self.phase)
    }
}

/// A run of pages handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Index of the first page.
    pub(crate) start: usize,
    /// Whether every page of the run is known to be zero (never handed out since growth).
    pub(crate) zeroed: bool,
}

/// The result of growing memory for a request.
enum Growth {
    /// Memory grew; the request is served at this page.
    Served(usize),
    /// Memory grew, but other code had grown it since we looked: the new pages are ours
    /// and free, but they do not extend the run at the top. Search again.
    Raced,
    /// Memory cannot grow that far.
    Failed,
}

/// The page bitmap and what the page layer knows about memory.
#[derive(Debug)]
pub(crate) struct PageMap {
    /// Bits for pages `0..CONVENTIONAL_PAGES`.
    conventional: [u64; CONVENTIONAL_WORDS],
    /// Bits for pages from `CONVENTIONAL_PAGES` on: [`EXTENDED_WORDS`] words in a page
    /// stolen the first time such a page is freed; null until then (all pages there read
    /// as not free).
    extended: *mut u64,
    /// One past the highest page ever marked free: scans stop here.
    top: usize,
    /// Every page of ours at or above this index has never been handed out, so it is
    /// still zero from `grow` (or from the initial heap).
    fresh_from: usize,
    /// Whether the initial heap has been claimed (it is claimed once, on first use).
    started: bool,
    /// `grow` calls made: a counter for [`crate::Stats`], touched only when growing.
    grow_calls: usize,
    /// Pages obtained from memory (growth and the initial heap), for [`crate::Stats`].
    pages_obtained: usize,
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
            started: false,
            grow_calls: 0,
            pages_obtained: 0,
        }
    }

    /// Claims the memory's initial heap the first time it is called: its whole pages
    /// become free pages, and the part before the first page boundary is returned as a
    /// byte range for the caller to use (the size classes carve it; it may be empty).
    /// `None` on every later call, and when the memory has no initial heap.
    pub(crate) fn claim_initial_heap<M: Memory>(&mut self, memory: &M) -> Option<Range<usize>> {
        if self.started {
            return None;
        }
        self.started = true;
        let heap = memory.take_initial_heap()?;
        let first_page = heap.start.div_ceil(PAGE_SIZE);
        let end_page = (heap.end / PAGE_SIZE).max(first_page);
        self.pages_obtained += end_page - first_page;
        self.release(memory, first_page..end_page);
        Some(heap.start..heap.end.min(first_page * PAGE_SIZE))
    }

    /// Hands out `count` pages aligned to `align` pages (a power of two): the first free
    /// run that fits, else memory grows by what is missing. `None` when memory cannot grow.
    pub(crate) fn alloc<M: Memory>(&mut self, memory: &M, count: usize, align: usize) -> Option<Run> {
        debug_assert!(count > 0 && align.is_power_of_two());
        if count > PAGE_LIMIT {
            return None;
        }
        let align = Alignment::new(memory, align);
        loop {
            if let Some(start) = self.find_free_run(count, align) {
                self.mark(start..start + count, false);
                return Some(self.hand_out(start..start + count));
            }
            match self.grow_for(memory, count, align) {
                Growth::Served(start) => return Some(self.hand_out(start..start + count)),
                Growth::Raced => continue,
                Growth::Failed => return None,
            }
        }
    }

    /// Marks pages free. A range that is not ours is a broken contract; pages at or
    /// above [`PAGE_LIMIT`] are ignored.
    pub(crate) fn release<M: Memory>(&mut self, memory: &M, pages: Range<usize>) {
        let mut end = pages.end.min(PAGE_LIMIT);
        if pages.start >= end {
            return;
        }
        if end > CONVENTIONAL_PAGES && self.extended.is_null() {
            // The first free page above the conventional bitmap: its last page becomes
            // the extended bitmap, and is never marked free again.
            end -= 1;
            let bitmap = memory.ptr(end * PAGE_SIZE).cast::<u64>();
            // SAFETY: page `end` is ours (callers release only pages they own), free (it
            // is being released) and page-aligned, so it can hold `EXTENDED_WORDS` words
            // (checked at compile time above); from now on nothing else uses it.
            unsafe { bitmap.write_bytes(0, EXTENDED_WORDS) };
            self.extended = bitmap;
        }
        self.top = self.top.max(end);
        self.mark(pages.start..end, true);
    }

    /// Resizes the run at `start` from `old` to `new` pages without moving it: shrinking
    /// frees the tail; growing claims the following pages when they are free, growing
    /// memory when the run reaches the top of memory. `false` when it cannot.
    pub(crate) fn resize<M: Memory>(&mut self, memory: &M, start: usize, old: usize, new: usize) -> bool {
        if new <= old {
            self.release(memory, start + new..start + old);
            return true;
        }
        let (tail, end) = (start + old, start.saturating_add(new));
        if end > PAGE_LIMIT {
            return false;
        }
        let used = self.first_used(tail, end);
        if used < end {
            // The pages after the block are not all free: grow memory if the free ones
            // reach its top.
            let size = memory.size();
            if used != size || self.grow_memory(memory, size, end - size) != Some(true) {
                return false;
            }
            self.top = self.top.max(end);
        }
        self.mark(tail..used, false);
        self.hand_out(tail..end);
        true
    }

    /// Pages free in the bitmap (walks it).
    pub(crate) fn free_pages(&self) -> usize {
        (0..self.top.div_ceil(WORD_BITS)).map(|w| self.word(w).count_ones() as usize).sum()
    }

    /// `memory.grow` calls made and pages obtained from memory so far.
    pub(crate) fn growth(&self) -> (usize, usize) {
        (self.grow_calls, self.pages_obtained)
    }

    /// Whether page `page` is free and ours.
    #[cfg(debug_assertions)]
    pub(crate) fn is_free(&self, page: usize) -> bool {
        self.word(page / WORD_BITS) >> (page % WORD_BITS) & 1 == 1
    }

    /// Where the extended bitmap lives, if it has been stolen yet.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn extended_bitmap(&self) -> *mut u64 {
        self.extended
    }

    /// Debug builds: the first of the page map's invariants that does not hold. Free
    /// bits lie below `top`, and `top` below the memory's size; free pages are no more
    /// than the pages obtained; the extended bitmap's page is never free, and exists only
    /// once a page above the conventional bitmap has been freed.
    #[cfg(debug_assertions)]
    pub(crate) fn check<M: Memory>(&self, memory: &M) -> Result<(), &'static str> {
        if self.top > memory.size() {
            return Err("page map: top lies above the memory's size");
        }
        let words = CONVENTIONAL_WORDS + if self.extended.is_null() { 0 } else { EXTENDED_WORDS };
        if (self.top.div_ceil(WORD_BITS)..words).any(|w| self.word(w) != 0)
            || self.top % WORD_BITS != 0 && self.word(self.top / WORD_BITS) >> (self.top % WORD_BITS) != 0
        {
            return Err("page map: a free bit at or above top");
        }
        if self.free_pages() > self.pages_obtained {
            return Err("page map: more pages free than obtained");
        }
        if !self.extended.is_null() {
            let page = memory.offset(self.extended.cast()) / PAGE_SIZE;
            if self.is_free(page) || page >= memory.size() || page < CONVENTIONAL_PAGES {
                return Err("page map: the extended bitmap's page is free, or misplaced");
            }
        }
        Ok(())
    }

    /// Debug builds: whether page `page` may hold a block handed out: it is below the
    /// memory's size, not free, not the extended bitmap, and below `fresh_from` (so it
    /// was handed out since it was obtained).
    #[cfg(debug_assertions)]
    pub(crate) fn may_be_in_use<M: Memory>(&self, memory: &M, page: usize) -> bool {
        let extended = (!self.extended.is_null()).then(|| memory.offset(self.extended.cast()) / PAGE_SIZE);
        page < memory.size() && !self.is_free(page) && extended != Some(page) && page < self.fresh_from
    }

    /// Records that `pages` leave the allocator; says whether they are all still zero.
    fn hand_out(&mut self, pages: Range<usize>) -> Run {
        let zeroed = pages.start >= self.fresh_from;
        self.fresh_from = self.fresh_from.max(pages.end);
        Run { start: pages.start, zeroed }
    }

    /// Grows memory for a request no free run could serve: the free run that ends at the
    /// top of memory (if any) is extended by only the missing pages.
    fn grow_for<M: Memory>(&mut self, memory: &M, count: usize, align: Alignment) -> Growth {
        let size = memory.size();
        let run_start = self.free_run_ending_at(size);
        let Some(start) = align.next_from(run_start) else {
            return Growth::Failed;
        };
        let end = match start.checked_add(count) {
            Some(end) if end <= PAGE_LIMIT => end,
            _ => return Growth::Failed,
        };
        // No free run fits below `size`, so the request ends above it.
        debug_assert!(end > size);
        let Some(delta) = end.checked_sub(size).filter(|&d| d > 0) else {
            return Growth::Failed;
        };
        match self.grow_memory(memory, size, delta) {
            Some(true) => {}
            Some(false) => return Growth::Raced,
            None => return Growth::Failed,
        }
        self.top = self.top.max(end);
        // Alignment padding between the old top and the block stays free for later.
        self.release(memory, size..start.max(size));
        self.mark(start.min(size)..size, false);
        Growth::Served(start)
    }

    /// Grows memory by `needed` pages, plus [`grow_ahead`] more when memory allows (they
    /// are marked free): `Some(true)` when the needed pages landed at `expected` (the
    /// size we saw), `None` when memory cannot grow by `needed`. If other code grew memory
    /// in between, the pages we got are still ours: they are marked free, and this
    /// returns `Some(false)`.
    fn grow_memory<M: Memory>(&mut self, memory: &M, expected: usize, needed: usize) -> Option<bool> {
        let ahead = grow_ahead(expected).min(PAGE_LIMIT.saturating_sub(expected.saturating_add(needed)));
        let (old, delta) = match memory.grow(needed + ahead) {
            Some(old) => (old, needed + ahead),
            None if ahead > 0 => (memory.grow(needed)?, needed),
            None => return None,
        };
        self.grow_calls += 1;
        self.pages_obtained += delta;
        if old != expected {
            self.release(memory, old..old.saturating_add(delta));
            return Some(false);
        }
        self.release(memory, expected + needed..expected + delta);
        Some(true)
    }

    /// The first page of the first free run of `count` pages whose start is a multiple
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

    /// The first free page at or after `from`.
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

    /// The first page in `from..limit` that is not free, or `limit`.
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

    /// The start of the free run that ends at page `end` (`end` itself when page
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
        // SAFETY: `extended` points at `EXTENDED_WORDS` words in a page this map owns
        // (set in `release`), and `e` is in bounds.
        unsafe { *self.extended.add(e) }
    }

    /// Sets (`free`) or clears the bits of `pages`, a word at a time. Clearing bits that
    /// have no bitmap yet is a no-op: they already read as not free.
    fn mark(&mut self, pages: Range<usize>, free: bool) {
        let mut page = pages.start;
        while page < pages.end {
            let (w, lo) = (page / WORD_BITS, page % WORD_BITS);
            let n = (WORD_BITS - lo).min(pages.end - page);
            let mask = (u64::MAX >> (WORD_BITS - n)) << lo;
            if let Some(word) = self.word_mut(w) {
                if free {
                    *word |= mask;
                } else {
                    *word &= !mask;
                }
            } else {
                debug_assert!(!free, "page {page} freed with no bitmap for it");
            }
            page += n;
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
