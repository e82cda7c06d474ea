//! `PageAllocator` over a `Region` (through a wrapper that logs `grow` calls), driven by
//! unit counts and alignments, against a unit-by-unit model of the bitmap that predicts
//! exactly which 4 KiB unit every allocation gets, every `memory.grow` it makes, and where
//! the extended bitmap lies (its words are read back and compared with the model).
//! See ../README.md for the input format and the model.

#![no_main]
#![feature(cfg_sanitize)]

mod shared;

use std::alloc::{GlobalAlloc, Layout};
use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use shared::{pattern, Bytes, GrowLog, Logged};
use wasm_alloc::{PageAllocator, PAGE_LIMIT, PAGE_SIZE};

/// The page layer's unit: memory grows in pages, runs are handed out in units.
const UNIT: usize = 4096;
const UNITS_PER_PAGE: usize = PAGE_SIZE / UNIT;
/// Units 0..`UNIT_LIMIT` are the only ones ever handed out.
const UNIT_LIMIT: usize = PAGE_LIMIT * UNITS_PER_PAGE;
/// Units the conventional bitmap (inside the allocator) covers: the first 2048 pages'.
const CONVENTIONAL_UNITS: usize = 2048 * UNITS_PER_PAGE;
/// Pages (and units) the extended bitmap takes.
const EXTENDED_PAGES: usize = 2;
const EXTENDED_UNITS: usize = EXTENDED_PAGES * UNITS_PER_PAGE;
const MAX_ALIGN_PAGES_LOG2: u8 = 11;
const MAX_LIVE: usize = 256;
/// Requests of more than 1024 units (64 pages; each may copy or zero that much) per input.
const BIG_OPS: usize = 16;
const BIG: usize = 64 * UNITS_PER_PAGE;

fn units_for(size: usize) -> usize {
    size.div_ceil(UNIT).max(1)
}

fn align_in_units(align: usize) -> usize {
    (align / UNIT).max(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Beyond the memory's current size.
    Absent,
    /// Below the initial heap (stack, static data), the initial heap before it is
    /// claimed, and the part of its first unit before the heap starts.
    NotOurs,
    Free,
    Used,
    /// The extended bitmap.
    Bitmap,
    /// Ours, but freed above the conventional bitmap while there was no extended bitmap,
    /// in a range with too few units there to hold one: never free again.
    Lost,
}

/// The page layer as src/page.rs describes it, one `Unit` per 4 KiB unit.
struct Model {
    units: Vec<Unit>,
    /// In pages.
    size: usize,
    /// In pages.
    cap: usize,
    /// The first unit of the extended bitmap.
    extended: Option<usize>,
    /// The initial heap (byte range), claimed on the first allocation.
    initial_heap: Option<Range<usize>>,
    /// `grow` calls expected: (delta, succeeds).
    grows: Vec<(usize, bool)>,
    /// Units obtained: the initial heap's whole units and the pages grown.
    obtained: usize,
}

fn align_up(x: usize, a: usize) -> Option<usize> {
    x.checked_next_multiple_of(a)
}

impl Model {
    fn set(&mut self, r: Range<usize>, state: Unit) {
        self.units[r].fill(state);
    }

    /// Frees units. The first range freed with at least `EXTENDED_UNITS` units above the
    /// conventional bitmap gives its last `EXTENDED_UNITS` to the extended bitmap; before
    /// that, the units of a range above the conventional bitmap are lost.
    fn release(&mut self, range: Range<usize>) {
        let mut end = range.end.min(UNIT_LIMIT);
        if range.start >= end {
            return;
        }
        if end > CONVENTIONAL_UNITS && self.extended.is_none() {
            let above = range.start.max(CONVENTIONAL_UNITS);
            if end - above >= EXTENDED_UNITS {
                end -= EXTENDED_UNITS;
                self.extended = Some(end);
                self.set(end..end + EXTENDED_UNITS, Unit::Bitmap);
            } else {
                self.set(above..end, Unit::Lost);
                end = above;
            }
        }
        if range.start < end {
            self.set(range.start..end, Unit::Free);
        }
    }

    /// One `memory.grow` call: whether it succeeds.
    fn grow_once(&mut self, delta: usize) -> bool {
        let ok = self.size.checked_add(delta).is_some_and(|end| end <= self.cap);
        self.grows.push((delta, ok));
        if ok {
            self.set(self.size * UNITS_PER_PAGE..(self.size + delta) * UNITS_PER_PAGE, Unit::Used);
            self.size += delta;
        }
        ok
    }

    /// Growth for `needed` pages: memory grows ahead by an eighth of the pages obtained (at most
    /// 64 pages, never past PAGE_LIMIT) when it can, else by exactly what it needs; when
    /// that growth reaches past the conventional bitmap and there is no extended bitmap
    /// yet, by `EXTENDED_PAGES` more. Every grown unit is freed (the extended bitmap
    /// takes the last ones); the caller takes its own.
    fn grow(&mut self, needed: usize) -> bool {
        let old = self.size;
        let with_bitmap = |model: &Self, pages: usize| {
            let crosses = (old + pages) * UNITS_PER_PAGE > CONVENTIONAL_UNITS;
            pages + if model.extended.is_none() && crosses { EXTENDED_PAGES } else { 0 }
        };
        let ahead = ((self.obtained / UNITS_PER_PAGE) >> 3).min(64).min(PAGE_LIMIT.saturating_sub(old + needed));
        let (first, fallback) = (with_bitmap(self, needed + ahead), with_bitmap(self, needed));
        let delta = if self.grow_once(first) {
            first
        } else if ahead > 0 && self.grow_once(fallback) {
            fallback
        } else {
            return false;
        };
        self.obtained += delta * UNITS_PER_PAGE;
        self.release(old * UNITS_PER_PAGE..(old + delta).min(PAGE_LIMIT) * UNITS_PER_PAGE);
        true
    }

    /// The initial heap's whole units are freed, once.
    fn claim(&mut self) {
        if let Some(heap) = self.initial_heap.take() {
            let first = heap.start.div_ceil(UNIT);
            let end = (heap.end / UNIT).max(first);
            self.obtained += end - first;
            self.release(first..end);
        }
    }

    fn top(&self) -> usize {
        self.size * UNITS_PER_PAGE
    }

    fn is_free(&self, u: usize) -> bool {
        u < self.top() && self.units[u] == Unit::Free
    }

    /// First fit: the lowest aligned start of `n` free units.
    fn first_fit(&self, n: usize, a: usize) -> Option<usize> {
        let (mut s, mut u) = (0, 0);
        while s + n <= self.top() {
            if u == s + n {
                return Some(s);
            }
            if self.is_free(u) {
                u += 1;
            } else {
                s = align_up(u + 1, a)?;
                u = s;
            }
        }
        None
    }

    fn alloc(&mut self, n: usize, a: usize) -> Option<usize> {
        self.claim();
        if n > UNIT_LIMIT {
            return None;
        }
        // After growing, the allocator searches again: it finds the run at the top,
        // unless the extended bitmap took units it needed; then it grows again.
        loop {
            if let Some(s) = self.first_fit(n, a) {
                self.set(s..s + n, Unit::Used);
                return Some(s);
            }
            // Extend the free run that ends at the top of memory by the missing pages; if
            // the aligned start lies above the top, the units in between are padding (free).
            let top = self.top();
            let mut run = top;
            while run > 0 && self.units[run - 1] == Unit::Free {
                run -= 1;
            }
            let start = align_up(run, a)?;
            let end = start.checked_add(n).filter(|&e| e <= UNIT_LIMIT)?;
            assert!(end > top, "model: a run that fits below the top was not found");
            if !self.grow((end - top).div_ceil(UNITS_PER_PAGE)) {
                return None;
            }
        }
    }

    fn realloc(&mut self, start: usize, old_n: usize, new_n: usize, a: usize) -> Option<usize> {
        if new_n <= old_n {
            self.release(start + new_n..start + old_n);
            return Some(start);
        }
        let (tail, end) = (start + old_n, start.saturating_add(new_n));
        if end <= UNIT_LIMIT {
            let used = (tail..end).find(|&u| !self.is_free(u)).unwrap_or(end);
            let ok = used == end
                || (used == self.top()
                    && self.grow((end - used).div_ceil(UNITS_PER_PAGE))
                    && (tail..end).all(|u| self.is_free(u)));
            if ok {
                self.set(tail..end, Unit::Used);
                return Some(start);
            }
        }
        let q = self.alloc(new_n, a)?;
        self.release(start..start + old_n);
        Some(q)
    }
}

/// 8 bytes at the head of every unit of the block and its last up-to-16 bytes.
fn marks(size: usize, mut f: impl FnMut(Range<usize>)) {
    if size == 0 {
        return;
    }
    for k in 0..=(size - 1) / UNIT {
        f(k * UNIT..(k * UNIT + 8).min(size));
    }
    f(size.saturating_sub(16)..size);
}

fn write_marks(ptr: *mut u8, size: usize, id: u32) {
    marks(size, |r| {
        for off in r {
            // SAFETY: within the live block.
            unsafe { ptr.add(off).write(pattern(id, off)) };
        }
    });
}

fn check_marks(ptr: *const u8, size: usize, kept: usize, id: u32, what: &str) {
    marks(size, |r| {
        for off in r.start..r.end.min(kept) {
            // SAFETY: within the live block.
            let got = unsafe { ptr.add(off).read() };
            assert_eq!(got, pattern(id, off), "{what}: block #{id} at {ptr:p} corrupted at offset {off}");
        }
    });
}

/// Zero at the first and last 64 bytes of every unit (everywhere for blocks up to 8 units).
fn check_zero(ptr: *const u8, size: usize) {
    let check = |r: Range<usize>| {
        // SAFETY: within the block just allocated.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.add(r.start), r.end - r.start) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!("alloc_zeroed({size}) at {ptr:p}: byte {} is {:#x}", r.start + i, bytes[i]);
        }
    };
    if size <= 8 * UNIT {
        return check(0..size);
    }
    for k in 0..=(size - 1) / UNIT {
        let unit = k * UNIT;
        check(unit..(unit + 64).min(size));
        check((unit + UNIT - 64).min(size)..(unit + UNIT).min(size));
    }
}

struct Block {
    ptr: *mut u8,
    layout: Layout,
    unit: usize,
    id: u32,
}

struct Harness<'a> {
    heap: &'a PageAllocator<Logged>,
    log: GrowLog,
    base: usize,
    model: Model,
    live: Vec<Block>,
    next_id: u32,
    big_ops: usize,
    /// Whether the extended bitmap's words have been checked whole (once, when taken).
    bitmap_seen: bool,
}

impl Harness<'_> {
    /// A unit count: mostly within a page, sometimes up to the cap and beyond.
    fn count(&mut self, inp: &mut Bytes) -> usize {
        let n = match inp.u8() {
            0..=127 => 1 + inp.u8() as usize % UNITS_PER_PAGE,
            128..=191 => 1 + inp.u8() as usize % (4 * UNITS_PER_PAGE),
            192..=239 => 1 + inp.u16() as usize % BIG,
            240..=253 => 1 + inp.u16() as usize % ((self.model.cap + 64) * UNITS_PER_PAGE),
            _ => UNIT_LIMIT + inp.u8() as usize % 2,
        };
        if n > BIG && n <= self.model.cap * UNITS_PER_PAGE {
            if self.big_ops >= BIG_OPS {
                return 1 + n % BIG;
            }
            self.big_ops += 1;
        }
        n
    }

    /// Bytes for `n` units: n units minus some slack (0 for one unit and the top slack).
    fn size(inp: &mut Bytes, n: usize) -> usize {
        let slack = match inp.u8() {
            0..=127 => 0,
            128..=254 => inp.u16() as usize % UNIT,
            _ => UNIT,
        };
        n * UNIT - slack
    }

    fn align(inp: &mut Bytes) -> usize {
        let t = inp.u8();
        match t {
            0..=159 => 1 << (t % 17),
            160..=239 => PAGE_SIZE << (t % 5),
            _ => PAGE_SIZE << (t % (MAX_ALIGN_PAGES_LOG2 + 1)),
        }
    }

    fn check_grows(&mut self, what: &str) {
        let got = std::mem::take(&mut *self.log.lock().unwrap());
        let want = std::mem::take(&mut self.model.grows);
        assert_eq!(got, want, "{what}: memory.grow calls (delta, ok) differ from the model");
    }

    fn check_all(&self, what: &str) {
        for b in &self.live {
            check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, what);
        }
    }

    /// The extended bitmap lies where the model says, and its bits are the model's free
    /// units above the conventional bitmap (all of its words the first time).
    fn check_bitmap(&mut self, what: &str) {
        let Some(bitmap) = self.model.extended else { return };
        let words = (EXTENDED_UNITS * UNIT / 8).min(if self.bitmap_seen {
            (self.model.cap * UNITS_PER_PAGE).saturating_sub(CONVENTIONAL_UNITS).div_ceil(64)
        } else {
            usize::MAX
        });
        self.bitmap_seen = true;
        let at = (self.base + bitmap * UNIT) as *const u64;
        for w in 0..words {
            let first = CONVENTIONAL_UNITS + w * 64;
            let want = (0..64).fold(0u64, |word, b| word | (u64::from(self.model.is_free(first + b)) << b));
            // SAFETY: the bitmap's units are grown pages of the region; only read.
            let got = unsafe { at.add(w).read() };
            assert_eq!(
                got, want,
                "{what}: word {w} of the extended bitmap (units {first}..) at unit {bitmap} differs from the model"
            );
        }
    }

    fn ptr_of(&self, unit: Option<usize>) -> *mut u8 {
        unit.map_or(std::ptr::null_mut(), |u| (self.base + u * UNIT) as *mut u8)
    }

    fn alloc(&mut self, layout: Layout, zeroed: bool) {
        let predicted = self.model.alloc(units_for(layout.size()), align_in_units(layout.align()));
        // SAFETY: a valid layout; size 0 is allowed by this allocator through `dyn`.
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        if ptr != self.ptr_of(predicted) {
            let live: Vec<_> = self.live.iter().map(|b| (b.unit, units_for(b.layout.size()))).collect();
            panic!(
                "alloc {layout:?}: got {ptr:p} (unit {:?}), model says unit {predicted:?} \
                 (memory {} pages, extended bitmap at unit {:?}, live (unit, units) {live:?})",
                (!ptr.is_null()).then(|| (ptr as usize - self.base) / UNIT),
                self.model.size,
                self.model.extended,
            );
        }
        self.check_grows("alloc");
        let Some(unit) = predicted else {
            self.check_all("after a failed alloc");
            return;
        };
        if zeroed {
            check_zero(ptr, layout.size());
        }
        let id = self.next_id;
        self.next_id += 1;
        write_marks(ptr, layout.size(), id);
        self.live.push(Block { ptr, layout, unit, id });
    }

    fn free(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, "before dealloc");
        self.model.release(b.unit..b.unit + units_for(b.layout.size()));
        // SAFETY: allocated here with this layout, not used again.
        unsafe { self.heap.dealloc(b.ptr, b.layout) };
        self.check_grows("dealloc");
    }

    fn realloc(&mut self, i: usize, new_size: usize) {
        let b = &self.live[i];
        let (ptr, layout, unit, id) = (b.ptr, b.layout, b.unit, b.id);
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return };
        check_marks(ptr, layout.size(), layout.size(), id, "before realloc");
        let predicted = self.model.realloc(
            unit,
            units_for(layout.size()),
            units_for(new_size),
            align_in_units(layout.align()),
        );
        // SAFETY: allocated here with `layout`; `new_size` is non-zero and small.
        let new = unsafe { self.heap.realloc(ptr, layout, new_size) };
        assert_eq!(
            new,
            self.ptr_of(predicted),
            "realloc unit {unit} {layout:?} -> {new_size}: model says unit {predicted:?} (memory {} pages)",
            self.model.size
        );
        self.check_grows("realloc");
        let Some(new_unit) = predicted else {
            self.check_all("after a failed realloc");
            return;
        };
        check_marks(new, layout.size(), layout.size().min(new_size), id, "after realloc");
        write_marks(new, new_size, id);
        self.live[i] = Block { ptr: new, layout: new_layout, unit: new_unit, id };
    }

    fn run(&mut self, inp: &mut Bytes) {
        while !inp.done() {
            // After every step, the allocator's own invariants (debug builds: cargo fuzz
            // builds with debug assertions), and the extended bitmap against the model.
            if let Err(broken) = self.heap.check_invariants() {
                panic!("invariant broken: {broken}");
            }
            let taken = self.bitmap_seen;
            self.check_bitmap("after a step");
            if !taken && self.bitmap_seen {
                // Taking the bitmap wrote 128 KiB of zeros: over no live block.
                self.check_all("after the extended bitmap was taken");
            }
            let op = inp.u8() % 8;
            let op = if self.live.len() >= MAX_LIVE && op < 4 { 4 } else { op };
            match op {
                0..=3 => {
                    let n = self.count(inp);
                    let size = Self::size(inp, n);
                    let align = Self::align(inp);
                    if let Ok(layout) = Layout::from_size_align(size, align) {
                        self.alloc(layout, op == 3);
                    }
                }
                4 | 5 if !self.live.is_empty() => {
                    let i = inp.u8() as usize % self.live.len();
                    self.free(i);
                }
                6 | 7 if !self.live.is_empty() => {
                    let i = inp.u8() as usize % self.live.len();
                    let n = self.count(inp);
                    let size = Self::size(inp, n).max(1);
                    self.realloc(i, size);
                }
                _ => {}
            }
        }
        self.check_all("at the end");
        while !self.live.is_empty() {
            self.free(self.live.len() - 1);
        }
        self.check_bitmap("at the end");
        if let Err(broken) = self.heap.check_invariants() {
            panic!("invariant broken at the end: {broken}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Bytes { data, pos: 0 };
    let b0 = inp.u8();
    let (cap, big) = match b0 {
        0..=0xEF => (8 + b0 as usize % 249, false),  // 8..=256 pages
        _ => (2049 + (b0 % 16) as usize * 16, true), // 2049..=2289 pages: past the conventional bitmap
    };
    let b1 = inp.u8();
    let initial = if b1 & 0x80 == 0 {
        None
    } else {
        let pages = if big && b1 & 0x40 != 0 {
            (2040 + inp.u8() as usize % 24).min(cap)
        } else {
            1 + inp.u8() as usize % cap.min(64)
        };
        let start =
            ((inp.u8() as usize % (pages + 1)) * PAGE_SIZE + inp.u16() as usize).min(pages * PAGE_SIZE);
        Some((pages, start))
    };
    let mut model = Model {
        units: vec![Unit::Absent; cap * UNITS_PER_PAGE],
        size: 0,
        cap,
        extended: None,
        initial_heap: None,
        grows: Vec::new(),
        obtained: 0,
    };
    if let Some((pages, start)) = initial {
        model.size = pages;
        model.set(0..pages * UNITS_PER_PAGE, Unit::NotOurs);
        model.initial_heap = Some(start..pages * PAGE_SIZE);
    }
    let memory = Logged::new(cap, initial);
    let log = memory.log.clone();
    let base = shared::buffer() as usize;
    let alloc = PageAllocator::with_memory(memory);
    let mut h = Harness {
        heap: &alloc,
        log,
        base,
        model,
        live: Vec::new(),
        next_id: 1,
        big_ops: 0,
        bitmap_seen: false,
    };
    h.run(&mut inp);
});
