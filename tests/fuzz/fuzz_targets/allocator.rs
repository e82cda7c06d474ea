//! `WasmAllocator` over a `Region`, driven by a program of alloc / alloc_zeroed / realloc /
//! dealloc operations decoded from the input. Every step is checked against a shadow heap
//! of the live blocks and against a model of the allocator's memory: which 4 KiB unit is
//! free, held by a span of which class, by a run, by the extended bitmap, or not ours.
//! See ../README.md for the input format and what is checked.

#![no_main]
#![feature(cfg_sanitize)]

mod shared;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::{pattern, Bytes, GrowLog, Logged};
use wasm_alloc::{Region, Stats, WasmAllocator, CLASSES, PAGE_LIMIT, PAGE_SIZE};

/// The page layer's unit: runs and spans are made of whole 4 KiB units.
const UNIT: usize = 4096;
const UNITS_PER_PAGE: usize = PAGE_SIZE / UNIT;
/// Units of the first 2048 pages, covered by the bitmap inside the allocator; the
/// extended bitmap (2 pages) is taken the first time units above are freed.
const CONVENTIONAL_UNITS: usize = 2048 * UNITS_PER_PAGE;
const EXTENDED_PAGES: usize = 2;
const EXTENDED_UNITS: usize = EXTENDED_PAGES * UNITS_PER_PAGE;
/// Units the page layer ever hands out (on a 64-bit host far above any region here).
const UNIT_LIMIT: usize = PAGE_LIMIT * UNITS_PER_PAGE;
/// Memory grows ahead by an eighth of the pages obtained, at most this many pages.
const GROW_AHEAD_MAX: usize = 64;
/// A span's header: its first slot is at this offset.
const HEADER: usize = 64;
/// The largest class size; bigger requests take runs.
const MAX_SLOT: usize = 16 << 10;
/// Requests aligned to more take runs.
const MAX_CLASS_ALIGN: usize = 64;

/// Largest alignment requested: 2^20.
const MAX_ALIGN_LOG2: u8 = 20;
const MAX_LIVE: usize = 512;
/// Bytes of "heavy" work (sizes over 1 MiB: zeroing, zero checks, copies) per input.
const HEAVY_BUDGET: usize = 256 << 20;
const HEAVY: usize = 1 << 20;
/// Bytes checked fully in `alloc_zeroed` memory; beyond, head, tail and page heads.
const ZERO_CHECK_FULL: usize = 1 << 20;

/// With `ALLOC_FUZZ_TRACE` set, every step is printed (to replay a crash by hand).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("ALLOC_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

/// One size class: its slot size, its span size in units (0: served as runs) and slots
/// per span.
#[derive(Clone, Copy, Debug)]
struct Class {
    size: usize,
    span_units: usize,
    capacity: usize,
}

/// The classes. Their sizes are computed here independently of the library, as the
/// design describes them: 8-byte steps up to 64 B, then four per doubling up to 16 KiB.
/// Span sizes, and which classes of whole units are served as runs instead, are tuning
/// choices of the library, so they are learned from it, once per process, by allocating
/// one block of every class from a scratch allocator and reading
/// `stats().classes[c]`; what the design fixes is checked: only a class of whole units
/// may be served as runs, and a span is a power of two of units, at most 16, holding at
/// least one slot after its 64-byte header.
fn classes() -> &'static [Class; CLASSES] {
    static TABLE: OnceLock<[Class; CLASSES]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut sizes: Vec<usize> = (1..=8).map(|k| 8 * k).collect();
        let mut base = 64;
        while base < MAX_SLOT {
            sizes.extend((1..=4).map(|k| base + k * base / 4));
            base *= 2;
        }
        assert_eq!(sizes.len(), CLASSES, "the library's class count");
        let spans = learn_span_units(&sizes);
        let table: Vec<Class> = sizes
            .iter()
            .zip(spans)
            .map(|(&size, span_units)| {
                if span_units == 0 {
                    return Class { size, span_units, capacity: 0 };
                }
                assert!(
                    span_units.is_power_of_two() && span_units <= 16 && span_units * UNIT >= HEADER + size,
                    "class {size} B: spans of {span_units} units"
                );
                Class { size, span_units, capacity: (span_units * UNIT - HEADER) / size }
            })
            .collect();
        table.try_into().unwrap()
    })
}

/// The span size of each class in units (0 for the classes served as runs), from one
/// slot of each class in a scratch allocator over a buffer of its own.
fn learn_span_units(sizes: &[usize]) -> Vec<usize> {
    const PAGES: usize = 128;
    let layout = Layout::from_size_align(PAGES * PAGE_SIZE, PAGE_SIZE).unwrap();
    // SAFETY: non-zero size.
    let base = unsafe { std::alloc::alloc(layout) };
    assert!(!base.is_null(), "host out of memory");
    // SAFETY: 64 KiB aligned, `PAGES` pages, used by this allocator alone until freed.
    let scratch = WasmAllocator::with_memory(unsafe { Region::new(base, PAGES) });
    let units = sizes
        .iter()
        .enumerate()
        .map(|(class, &size)| {
            let used = |st: Stats| st.classes.iter().map(|cs| cs.used_bytes).sum::<usize>();
            let before = used(scratch.stats());
            // SAFETY: a valid, non-zero layout; the block is never used.
            let slot = unsafe { scratch.alloc(Layout::from_size_align(size, 1).unwrap()) };
            assert!(!slot.is_null(), "scratch allocator out of memory");
            let st = scratch.stats();
            let cs = st.classes[class];
            if used(st) == before {
                // Served as a run: only a class of whole units may be (a run would waste
                // the rest of its last unit).
                assert_eq!(size % UNIT, 0, "class {class} ({size} B) is served as runs");
                return 0;
            }
            assert_eq!(
                (cs.spans, cs.used_bytes, used(st) - before),
                (1, size, size),
                "class {class} ({size} B): one slot, one span: {cs:?}"
            );
            assert_eq!(cs.held_bytes % UNIT, 0, "class {class}: {cs:?}");
            cs.held_bytes / UNIT
        })
        .collect();
    drop(scratch);
    // SAFETY: allocated above with `layout`; the allocator over it is gone.
    unsafe { std::alloc::dealloc(base, layout) };
    units
}

/// The class serving `size` bytes aligned to `align`: the smallest class size that holds
/// it and is a multiple of the alignment; `None` for a run (aligned to more than 64,
/// bigger than 16 KiB, or a class served as runs).
fn class_for(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SLOT || align > MAX_CLASS_ALIGN {
        return None;
    }
    let table = classes();
    let class = (0..CLASSES).find(|&c| table[c].size >= size.max(1) && table[c].size % align == 0)?;
    (table[class].span_units != 0).then_some(class)
}

fn units_for(size: usize) -> usize {
    size.div_ceil(UNIT).max(1)
}

fn align_in_units(align: usize) -> usize {
    (align / UNIT).max(1)
}

/// The byte ranges of a block of `size` bytes that carry its pattern: first and last
/// up-to-64 bytes, 8 bytes at a third, a half and three quarters, and 8 bytes at the
/// head of every further 64 KiB page.
fn marks(size: usize, mut f: impl FnMut(Range<usize>)) {
    if size == 0 {
        return;
    }
    f(0..size.min(64));
    f(size.saturating_sub(64)..size);
    for m in [size / 3, size / 2, size / 4 * 3] {
        f(m..(m + 8).min(size));
    }
    for k in 1..=(size - 1) / PAGE_SIZE {
        f(k * PAGE_SIZE..(k * PAGE_SIZE + 8).min(size));
    }
}

fn write_marks(ptr: *mut u8, size: usize, id: u32) {
    marks(size, |r| {
        for off in r {
            // SAFETY: `off < size`, within the live block.
            unsafe { ptr.add(off).write(pattern(id, off)) };
        }
    });
}

/// Checks the marks of a block written with `size` bytes, at offsets below `kept`.
fn check_marks(ptr: *const u8, size: usize, kept: usize, id: u32, what: &str) {
    marks(size, |r| {
        for off in r.start..r.end.min(kept) {
            // SAFETY: `off < kept <= ` the block's current size.
            let got = unsafe { ptr.add(off).read() };
            assert_eq!(got, pattern(id, off), "{what}: block #{id} at {ptr:p} corrupted at offset {off}");
        }
    });
}

fn check_zero(ptr: *const u8, size: usize) {
    let check = |r: Range<usize>| {
        // SAFETY: `r` lies within the block of `size` bytes just allocated.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.add(r.start), r.end - r.start) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!("alloc_zeroed({size}) at {ptr:p}: byte {} is {:#x}", r.start + i, bytes[i]);
        }
    };
    if size <= ZERO_CHECK_FULL {
        check(0..size);
    } else {
        check(0..64 << 10);
        check(size - (64 << 10)..size);
        for k in 1..=(size - 1) / PAGE_SIZE {
            check(k * PAGE_SIZE..(k * PAGE_SIZE + 64).min(size));
        }
    }
}

/// What a unit of the region is, in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Beyond the memory's current size.
    Absent,
    /// Below the initial heap's first whole unit (stack and static data), or the
    /// initial heap before the allocator claims it.
    NotOurs,
    Free,
    /// Part of the span that starts at this unit.
    Span(usize),
    /// Part of the run that starts at this unit.
    Run(usize),
    /// The extended bitmap.
    Bitmap,
    /// Obtained, but neither free nor handed out: what `release` drops when a range has
    /// too few units above the conventional bitmap to hold the extended one.
    Lost,
}

/// A span in the model: its class and its slots in use.
#[derive(Clone, Copy, Debug)]
struct SpanModel {
    class: usize,
    live: usize,
}

/// The allocator's memory, unit by unit, and its spans. The page layer's policy is
/// modelled exactly: first fit by address; else the free run at the top of memory is
/// extended, memory growing by the missing pages, plus an eighth of its size (at most 64
/// pages) when the cap allows, plus 2 pages for the extended bitmap when that growth
/// crosses 128 MiB (without the pages ahead: when the missing pages cross it). So is the size classes' use of it: a class takes a new span (a first fit of
/// its span size, aligned to it) only when none of its spans has room. Left to the
/// library, and read back: which span with room serves a slot, which slot, and whether
/// an emptied span is kept (see [`Model::retire`]). So the model predicts where every
/// new span and run lands, every `memory.grow` call, and `stats()`.
struct Model {
    cap: usize,
    units: Vec<Unit>,
    /// The memory's size in pages.
    size: usize,
    extended: bool,
    obtained: usize,
    free: usize,
    lost: usize,
    initial_heap: Option<Range<usize>>,
    started: bool,
    /// `grow` calls the allocator must have made since the last check: (delta, succeeded).
    grows: Vec<(usize, bool)>,
    spans: BTreeMap<usize, SpanModel>,
    class_spans: Vec<BTreeSet<usize>>,
}

impl Model {
    fn new(cap: usize, initial: Option<(usize, usize)>) -> Self {
        let mut units = vec![Unit::Absent; cap * UNITS_PER_PAGE];
        let (mut size, mut initial_heap) = (0, None);
        if let Some((pages, heap_start)) = initial {
            units[..pages * UNITS_PER_PAGE].fill(Unit::NotOurs);
            size = pages;
            initial_heap = Some(heap_start..pages * PAGE_SIZE);
        }
        Model {
            cap,
            units,
            size,
            extended: false,
            obtained: 0,
            free: 0,
            lost: 0,
            initial_heap,
            started: false,
            grows: Vec::new(),
            spans: BTreeMap::new(),
            class_spans: vec![BTreeSet::new(); CLASSES],
        }
    }

    fn top(&self) -> usize {
        self.size * UNITS_PER_PAGE
    }

    fn is_free(&self, unit: usize) -> bool {
        self.units.get(unit) == Some(&Unit::Free)
    }

    /// The first slow path claims the initial heap's whole units.
    fn start(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        if let Some(heap) = self.initial_heap.take() {
            let first = heap.start.div_ceil(UNIT);
            let end = (heap.end / UNIT).max(first);
            self.obtained += end - first;
            self.release(first..end, false);
        }
    }

    /// Marks units free; the first units freed above the conventional bitmap give the
    /// extended bitmap its units (the last 32 of the range), or are dropped if the range
    /// has fewer than 32 there.
    fn release(&mut self, units: Range<usize>, grown: bool) {
        let mut end = units.end.min(UNIT_LIMIT);
        if units.start >= end {
            return;
        }
        if end > CONVENTIONAL_UNITS && !self.extended {
            let above = units.start.max(CONVENTIONAL_UNITS);
            if end - above >= EXTENDED_UNITS {
                end -= EXTENDED_UNITS;
                self.units[end..end + EXTENDED_UNITS].fill(Unit::Bitmap);
                self.extended = true;
            } else {
                // Without foreign growth, only an initial heap ending just above 128 MiB
                // may leave too few units for the bitmap: growth across 128 MiB grows
                // the bitmap's 2 pages above the pages it needs.
                assert!(
                    !grown,
                    "growth to page {} crossed 128 MiB with fewer than {EXTENDED_PAGES} pages above it: \
                     units {above}..{end} are obtained but lost (never free, never handed out)",
                    units.end / UNITS_PER_PAGE
                );
                self.units[above..end].fill(Unit::Lost);
                self.lost += end - above;
                end = above;
                if units.start >= end {
                    return;
                }
            }
        }
        for u in units.start..end {
            assert_ne!(self.units[u], Unit::Free, "unit {u} freed twice");
            self.units[u] = Unit::Free;
        }
        self.free += end - units.start;
    }

    /// Hands out free units.
    fn take(&mut self, units: Range<usize>, what: Unit) {
        for u in units.clone() {
            assert_eq!(self.units[u], Unit::Free, "unit {u} of {units:?} handed out as {what:?} is not free");
            self.units[u] = what;
        }
        self.free -= units.len();
    }

    /// The first aligned start of `count` free units below the top of memory.
    fn find_free_run(&self, count: usize, align: usize) -> Option<usize> {
        let mut start = 0usize;
        loop {
            start = start.checked_next_multiple_of(align)?;
            if start.checked_add(count)? > self.top() {
                return None;
            }
            match (start..start + count).find(|&u| !self.is_free(u)) {
                None => return Some(start),
                Some(used) => start = used + 1,
            }
        }
    }

    /// The start of the free run that ends at unit `end`.
    fn free_run_ending_at(&self, mut end: usize) -> usize {
        while end > 0 && self.is_free(end - 1) {
            end -= 1;
        }
        end
    }

    /// The first unit in `from..limit` that is not free, or `limit`.
    fn first_used(&self, from: usize, limit: usize) -> usize {
        (from..limit).find(|&u| !self.is_free(u)).unwrap_or(limit)
    }

    /// One `memory.grow(delta)` call on the region.
    fn grow(&mut self, delta: usize) -> bool {
        let ok = self.size.checked_add(delta).is_some_and(|new| new <= self.cap);
        self.grows.push((delta, ok));
        ok
    }

    /// Grows memory by `needed` pages, plus the pages grown ahead when the cap allows, and
    /// (while there is no extended bitmap) 2 more when that growth reaches past 128 MiB;
    /// every grown unit is marked free. `false` when memory cannot grow.
    fn grow_memory(&mut self, needed: usize) -> bool {
        let expected = self.size;
        let with_bitmap = |model: &Self, pages: usize| {
            let crosses = expected.saturating_add(pages).saturating_mul(UNITS_PER_PAGE) > CONVENTIONAL_UNITS;
            pages.saturating_add(if !model.extended && crosses { EXTENDED_PAGES } else { 0 })
        };
        let ahead = ((self.obtained / UNITS_PER_PAGE) >> 3)
            .min(GROW_AHEAD_MAX)
            .min(PAGE_LIMIT.saturating_sub(expected.saturating_add(needed)));
        let wanted = with_bitmap(self, needed + ahead);
        let delta = if self.grow(wanted) {
            wanted
        } else if ahead > 0 {
            let wanted = with_bitmap(self, needed);
            if !self.grow(wanted) {
                return false;
            }
            wanted
        } else {
            return false;
        };
        let old = self.size;
        self.size += delta;
        self.obtained += delta * UNITS_PER_PAGE;
        self.release(old * UNITS_PER_PAGE..(old + delta).min(PAGE_LIMIT) * UNITS_PER_PAGE, true);
        true
    }

    /// `count` units aligned to `align` units, handed out as `what` (given the start):
    /// the first free run that fits, else the free run at the top of memory extended by
    /// growing. `None` when memory cannot grow that far.
    fn alloc(&mut self, count: usize, align: usize, what: fn(usize) -> Unit) -> Option<usize> {
        if count > UNIT_LIMIT {
            return None;
        }
        // After growing, the allocator searches again: it finds the run at the top,
        // unless the extended bitmap took units it needed; then it grows again.
        loop {
            if let Some(start) = self.find_free_run(count, align) {
                self.take(start..start + count, what(start));
                return Some(start);
            }
            let top = self.top();
            let start = self.free_run_ending_at(top).checked_next_multiple_of(align)?;
            let end = start.checked_add(count).filter(|&end| end <= UNIT_LIMIT)?;
            assert!(end > top, "no free run fits, so the request ends above the top of memory");
            let needed = (end - top).div_ceil(UNITS_PER_PAGE);
            if !self.grow_memory(needed) {
                // Fails honestly: growing by just the missing pages (and the bitmap's, when
                // they cross 128 MiB) does not fit the cap either.
                let bitmap = if !self.extended && (self.size + needed) * UNITS_PER_PAGE > CONVENTIONAL_UNITS {
                    EXTENDED_PAGES
                } else {
                    0
                };
                assert!(
                    self.size + needed + bitmap > self.cap,
                    "{count} units aligned to {align}: out of memory, although growing {needed} pages \
                     (+{bitmap} for the bitmap) from {} fits the cap {}",
                    self.size,
                    self.cap
                );
                return None;
            }
        }
    }

    /// Resizes the run at `start` from `old` to `new` units in place, if the page layer
    /// can: shrinking frees the tail; growing takes the following units when free, or
    /// grows memory when they are free up to its top.
    fn resize(&mut self, start: usize, old: usize, new: usize) -> bool {
        if new <= old {
            self.release(start + new..start + old, false);
            return true;
        }
        let (tail, end) = (start + old, start.saturating_add(new));
        if end > UNIT_LIMIT {
            return false;
        }
        let used = self.first_used(tail, end);
        if used < end {
            if used != self.top() {
                return false;
            }
            if !self.grow_memory((end - used).div_ceil(UNITS_PER_PAGE)) || self.first_used(tail, end) < end {
                return false;
            }
        }
        self.take(tail..end, Unit::Run(start));
        true
    }

    fn has_room(&self, class: usize) -> bool {
        let capacity = classes()[class].capacity;
        self.class_spans[class].iter().any(|s| self.spans[s].live < capacity)
    }

    /// A slot of the span at `span` is freed; `true` when that empties the span.
    fn free_slot(&mut self, class: usize, span: usize) -> bool {
        let model = self.spans.get_mut(&span).expect("a live slot's span");
        assert_eq!(model.class, class);
        model.live -= 1;
        model.live == 0
    }

    /// The span at `span` has emptied, and the allocator `kept` it or gave it back (as
    /// `stats()` shows). The design lets a class keep at most one empty span; whether it
    /// keeps one is the library's choice (it keeps none for classes of large spans).
    fn retire(&mut self, class: usize, span: usize, kept: bool) {
        let table = classes();
        let other_empty = self.class_spans[class].iter().any(|&s| s != span && self.spans[&s].live == 0);
        assert!(!(kept && other_empty), "class {class} keeps a second empty span (at unit {span})");
        if kept {
            return;
        }
        self.spans.remove(&span);
        self.class_spans[class].remove(&span);
        let units = span..span + table[class].span_units;
        for u in units.clone() {
            assert_eq!(self.units[u], Unit::Span(span));
        }
        self.units[units.clone()].fill(Unit::Absent);
        self.release(units, false);
    }

    fn free_run(&mut self, start: usize, count: usize) {
        for u in start..start + count {
            assert_eq!(self.units[u], Unit::Run(start), "unit {u} of the run at {start}");
        }
        self.units[start..start + count].fill(Unit::Absent);
        self.release(start..start + count, false);
    }

    /// The first of the longest free runs below the top of memory.
    fn largest_free_run(&self) -> Range<usize> {
        let (mut best, mut run) = (0..0, None);
        for u in 0..=self.top() {
            match (run, self.is_free(u) && u < self.top()) {
                (None, true) => run = Some(u),
                (Some(s), false) => {
                    if u - s > best.len() {
                        best = s..u;
                    }
                    run = None;
                }
                _ => {}
            }
        }
        best
    }
}

/// Where a live block lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Slot { class: usize, span: usize },
    Run { start: usize, units: usize },
}

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    id: u32,
    kind: Kind,
}

/// What the model says a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Null,
    /// A slot of the class in one of its spans with room.
    Slot(usize),
    /// The first slot of a new span of the class at this unit.
    NewSpan(usize, usize),
    /// A run at this unit.
    Run(usize, usize),
}

struct Harness<'a> {
    heap: &'a dyn GlobalAlloc,
    alloc: &'a WasmAllocator<Logged>,
    log: GrowLog,
    /// Entries of `log` already compared with the model.
    log_seen: usize,
    /// The memory's size in pages, from the log.
    mem_pages: usize,
    base: usize,
    cap: usize,
    big_mode: bool,
    model: Model,
    live: Vec<Block>,
    /// Live blocks by address: start -> end (zero-size blocks count as 1 byte).
    ranges: BTreeMap<usize, usize>,
    /// Live blocks of each class.
    live_slots: [usize; CLASSES],
    next_id: u32,
    heavy: usize,
    last_failed: Option<(Layout, bool)>,
}

impl Harness<'_> {
    fn size(&mut self, inp: &mut Bytes) -> usize {
        let size = match inp.u8() {
            0..=119 => 1 + inp.u8() as usize,
            120..=183 => 1 + inp.u16() as usize % 4096,
            184..=215 => 1 + inp.u32() as usize % (1 << 16),
            216..=231 => {
                let pages = 1 + inp.u8() as usize % 64;
                (pages * PAGE_SIZE + inp.u8() as usize % 5).saturating_sub(2).max(1)
            }
            232..=247 => 1 + inp.u32() as usize % (8 << 20),
            248..=253 if self.big_mode => 1 + inp.u32() as usize % (160 << 20),
            248..=253 => 1 + inp.u32() as usize % (16 << 20),
            _ => match inp.u8() % 6 {
                0 => 1 << 40,
                // Rounded up to any alignment used here, still at most isize::MAX.
                1 => (isize::MAX as usize + 1) - (1 << 21),
                2 => PAGE_LIMIT * PAGE_SIZE,
                3 => self.cap * PAGE_SIZE + 1,
                4 => self.cap * PAGE_SIZE,
                _ => (self.cap / 2) * PAGE_SIZE + 1,
            },
        };
        if size > HEAVY && size <= self.cap * PAGE_SIZE {
            if self.heavy + size > HEAVY_BUDGET {
                return 1 + size % HEAVY;
            }
            self.heavy += size;
        }
        size
    }

    fn align(inp: &mut Bytes) -> usize {
        let t = inp.u8();
        let log2 = match t {
            0..=127 => t % 4,
            128..=223 => t % 16,
            _ => t % (MAX_ALIGN_LOG2 + 1),
        };
        1 << log2
    }

    /// The model's prediction for a new block of `layout` (the model takes its units).
    fn predict(&mut self, layout: Layout) -> Expect {
        let (size, align) = (layout.size(), layout.align());
        match class_for(size, align) {
            Some(class) => {
                if self.model.has_room(class) {
                    return Expect::Slot(class);
                }
                self.model.start();
                let units = classes()[class].span_units;
                match self.model.alloc(units, units, Unit::Span) {
                    Some(span) => {
                        self.model.spans.insert(span, SpanModel { class, live: 0 });
                        self.model.class_spans[class].insert(span);
                        Expect::NewSpan(class, span)
                    }
                    None => Expect::Null,
                }
            }
            None => {
                self.model.start();
                let count = units_for(size);
                match self.model.alloc(count, align_in_units(align), Unit::Run) {
                    Some(start) => Expect::Run(start, count),
                    None => Expect::Null,
                }
            }
        }
    }

    /// Checks a new block against the prediction and where the other blocks are, and
    /// records it in the model and the shadow heap. `None` when the request failed.
    fn accept(&mut self, expect: Expect, ptr: *mut u8, layout: Layout, what: &str) -> Option<Kind> {
        if ptr.is_null() {
            assert_eq!(expect, Expect::Null, "{what} {layout:?} returned null, but it fits");
            return None;
        }
        let (addr, size, align) = (ptr as usize, layout.size(), layout.align());
        assert_eq!(addr % align, 0, "{what} {layout:?} at {ptr:p}: misaligned");
        let end = addr + size.max(1);
        assert!(
            addr >= self.base && end <= self.base + self.mem_pages * PAGE_SIZE,
            "{what} {layout:?} at {ptr:p}: outside the memory {:#x}+{} pages",
            self.base,
            self.mem_pages
        );
        let off = addr - self.base;
        let table = classes();
        let kind = match expect {
            Expect::Null => {
                panic!("{what} {layout:?} succeeded at {ptr:p}, but the model has no room for it")
            }
            Expect::Slot(class) | Expect::NewSpan(class, _) => {
                let c = table[class];
                let span = off / UNIT & !(c.span_units - 1);
                let slot = off - span * UNIT;
                assert!(
                    slot >= HEADER && (slot - HEADER) % c.size == 0 && (slot - HEADER) / c.size < c.capacity,
                    "{what} {layout:?} at {ptr:p}: not a slot of a class-{class} ({} B) span at unit {span}",
                    c.size
                );
                assert!(size <= c.size);
                if let Expect::NewSpan(_, new) = expect {
                    assert_eq!(
                        (span, slot),
                        (new, HEADER),
                        "{what} {layout:?}: a new class-{class} span, expected its first slot at unit {new}"
                    );
                }
                // Class purity: the span the address masks to is a span of this class,
                // with room, in units held by that span alone.
                let model = self.model.spans.get_mut(&span).unwrap_or_else(|| {
                    panic!("{what} {layout:?} at {ptr:p}: class {class} has spans with room, but unit {span} is not one")
                });
                assert_eq!(
                    model.class, class,
                    "{what} {layout:?} at {ptr:p}: a slot in a span of another class"
                );
                assert!(model.live < c.capacity, "{what} {layout:?} at {ptr:p}: a slot in a full span");
                model.live += 1;
                for u in span..span + c.span_units {
                    assert_eq!(self.model.units[u], Unit::Span(span), "unit {u} of the span at {span}");
                }
                self.live_slots[class] += 1;
                Kind::Slot { class, span }
            }
            Expect::Run(start, units) => {
                assert_eq!(
                    off,
                    start * UNIT,
                    "{what} {layout:?}: a run expected at unit {start} (first fit)"
                );
                Kind::Run { start, units }
            }
        };
        self.occupy(addr..end, &format!("{what} {layout:?}"));
        Some(kind)
    }

    /// Records a live block's bytes in the shadow heap: they overlap no other live block.
    fn occupy(&mut self, bytes: Range<usize>, what: &str) {
        if let Some((&below, &below_end)) = self.ranges.range(..=bytes.start).next_back() {
            assert!(
                below_end <= bytes.start,
                "{what} at {bytes:#x?} overlaps live {below:#x}..{below_end:#x}"
            );
        }
        if let Some((&above, &above_end)) = self.ranges.range(bytes.start..).next() {
            assert!(bytes.end <= above, "{what} at {bytes:#x?} overlaps live {above:#x}..{above_end:#x}");
        }
        self.ranges.insert(bytes.start, bytes.end);
    }

    /// Removes a block from the shadow heap and the model (after the allocator freed it).
    fn forget(&mut self, block: &Block) {
        assert!(self.ranges.remove(&(block.ptr as usize)).is_some());
        match block.kind {
            Kind::Slot { class, span } => {
                self.live_slots[class] -= 1;
                if self.model.free_slot(class, span) {
                    let spans = self.alloc.stats().classes[class].spans;
                    let before = self.model.class_spans[class].len();
                    assert!(
                        spans + 1 >= before && spans <= before,
                        "class {class}: {spans} spans, model {before}"
                    );
                    self.model.retire(class, span, spans == before);
                }
            }
            Kind::Run { start, units } => self.model.free_run(start, units),
        }
    }

    fn check_all(&self, what: &str) {
        for b in &self.live {
            check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, what);
        }
    }

    /// The allocator's `grow` calls since the last check are the ones the model made.
    fn check_grows(&mut self, what: &str) {
        let log = self.log.lock().unwrap();
        let new = &log[self.log_seen..];
        assert_eq!(
            new,
            &self.model.grows[..],
            "{what}: memory.grow calls (delta, succeeded) differ from the model's"
        );
        self.mem_pages += new.iter().filter(|&&(_, ok)| ok).map(|&(delta, _)| delta).sum::<usize>();
        self.log_seen = log.len();
        self.model.grows.clear();
        assert_eq!(self.mem_pages, self.model.size);
    }

    /// `stats()` against the shadow heap and the model, after every step.
    fn check_stats(&self, what: &str) -> Stats {
        let st = self.alloc.stats();
        trace!(
            "  {what}: obtained {} free {} grows {:?}",
            st.obtained_bytes / UNIT,
            st.free_bytes / UNIT,
            self.log.lock().unwrap()
        );
        let table = classes();
        let m = &self.model;
        assert!(st.obtained_bytes <= self.cap * PAGE_SIZE, "{what}: more bytes than the cap: {st:?}");
        assert!(st.free_bytes <= st.obtained_bytes, "{what}: {st:?}");
        assert_eq!(st.obtained_bytes, m.obtained * UNIT, "{what}: obtained_bytes");
        assert_eq!(st.free_bytes, m.free * UNIT, "{what}: free_bytes");
        // Every call counts, refused ones too.
        let grows = self.log.lock().unwrap().len();
        assert_eq!(st.grow_calls, grows, "{what}: grow_calls");
        // Spans holding live blocks, per class, from the live blocks alone.
        let mut in_use: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); CLASSES];
        let mut run_units = 0;
        for b in &self.live {
            match b.kind {
                Kind::Slot { class, span } => {
                    in_use[class].insert(span);
                }
                Kind::Run { units, .. } => run_units += units,
            }
        }
        let mut held = 0;
        for (class, (cs, c)) in st.classes.iter().zip(table).enumerate() {
            let spans = m.class_spans[class].len();
            let empty = m.class_spans[class].iter().filter(|s| m.spans[s].live == 0).count();
            assert_eq!(cs.slot_size, c.size, "{what}: class {class}'s size: {st:?}");
            assert_eq!(
                cs.used_bytes,
                self.live_slots[class] * c.size,
                "{what}: class {class} used_bytes: {cs:?}"
            );
            assert_eq!(
                cs.held_bytes,
                cs.spans * c.span_units * UNIT,
                "{what}: class {class} held_bytes: {cs:?}"
            );
            assert_eq!(
                cs.spans - cs.empty_spans,
                in_use[class].len(),
                "{what}: class {class}: spans with a slot in use: {cs:?}"
            );
            assert!(cs.empty_spans <= 1, "{what}: class {class} keeps more than one empty span: {cs:?}");
            assert_eq!(
                (cs.spans, cs.empty_spans),
                (spans, empty),
                "{what}: class {class}'s spans, model: {cs:?}"
            );
            held += cs.held_bytes;
        }
        // Every unit obtained is free, in a span, in a live run, or the extended bitmap.
        let bitmap = if m.extended { EXTENDED_UNITS } else { 0 };
        assert_eq!(st.overhead_bytes, bitmap * UNIT, "{what}: overhead_bytes is the bitmap's");
        assert_eq!(
            st.obtained_bytes - st.free_bytes,
            held + (run_units + bitmap + m.lost) * UNIT,
            "{what}: bytes in use are not the spans' + the live runs' + the bitmap's: {st:?}"
        );
        st
    }

    fn new_block(&mut self, layout: Layout, zeroed: bool) -> bool {
        let what = if zeroed { "alloc_zeroed" } else { "alloc" };
        let expect = self.predict(layout);
        // SAFETY: a valid layout (zero size is allowed by this allocator through `dyn`).
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        trace!("{what} {layout:?}: model {expect:?}, got {:#x}", (ptr as usize).wrapping_sub(self.base));
        self.check_grows(what);
        let Some(kind) = self.accept(expect, ptr, layout, what) else {
            self.on_null(layout, zeroed, what);
            return false;
        };
        if zeroed {
            check_zero(ptr, layout.size());
        }
        let id = self.next_id;
        self.next_id += 1;
        write_marks(ptr, layout.size(), id);
        self.live.push(Block { ptr, layout, id, kind });
        true
    }

    /// A request returned null: nothing may have changed.
    fn on_null(&mut self, layout: Layout, zeroed: bool, what: &str) {
        self.check_all(&format!("after a failed {what}"));
        self.last_failed = Some((layout, zeroed));
    }

    fn free(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        trace!("dealloc {:?} {:?}", b.layout, b.kind);
        check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, "before dealloc");
        // SAFETY: allocated here with this layout, and not used again.
        unsafe { self.heap.dealloc(b.ptr, b.layout) };
        self.forget(&b);
        self.check_grows("dealloc");
    }

    fn free_all(&mut self) {
        while !self.live.is_empty() {
            self.free(self.live.len() - 1);
        }
    }

    fn realloc(&mut self, i: usize, new_size: usize) {
        let old = self.live[i];
        let Ok(new_layout) = Layout::from_size_align(new_size, old.layout.align()) else { return };
        check_marks(old.ptr, old.layout.size(), old.layout.size(), old.id, "before realloc");
        let new_class = class_for(new_size, old.layout.align());
        // In place: the same class, or a run the page layer resizes. Else a new block
        // (while the old one is live), then the old one is freed.
        let in_place = match old.kind {
            Kind::Slot { class, span } => (new_class == Some(class)).then_some(Kind::Slot { class, span }),
            Kind::Run { start, units } => {
                let count = units_for(new_size);
                (new_class.is_none() && self.model.resize(start, units, count))
                    .then_some(Kind::Run { start, units: count })
            }
        };
        let expect = if in_place.is_none() { self.predict(new_layout) } else { Expect::Null };
        // SAFETY: allocated here with `old.layout`; `new_size` is non-zero and does not
        // overflow isize when rounded up to the alignment.
        let ptr = unsafe { self.heap.realloc(old.ptr, old.layout, new_size) };
        trace!(
            "realloc {:?} {:?} -> {new_size}: model {in_place:?} {expect:?}, got {:#x}",
            old.layout,
            old.kind,
            (ptr as usize).wrapping_sub(self.base)
        );
        self.check_grows("realloc");
        let what = format!("realloc {:?} -> {new_size}", old.layout);
        let kind = if let Some(kind) = in_place {
            assert_eq!(ptr, old.ptr, "{what} must stay in place");
            self.ranges.remove(&(old.ptr as usize));
            self.occupy(old.ptr as usize..old.ptr as usize + new_size, &what);
            kind
        } else {
            let Some(kind) = self.accept(expect, ptr, new_layout, &what) else {
                self.on_null(new_layout, false, "realloc");
                return;
            };
            self.forget(&old);
            kind
        };
        check_marks(ptr, old.layout.size(), old.layout.size().min(new_size), old.id, "after realloc");
        write_marks(ptr, new_size, old.id);
        self.live[i] = Block { ptr, layout: new_layout, id: old.id, kind };
    }

    /// After everything is freed: each class keeps at most one span, empty, and every
    /// other unit obtained is free again (but the bitmap's), so memory freed at one size
    /// serves another: the longest free run of units is served as one block without
    /// growing memory.
    fn after_free_all(&mut self, what: &str) {
        let st = self.check_stats(what);
        let mut kept = 0;
        for (class, cs) in st.classes.iter().enumerate() {
            assert!(
                cs.spans <= 1 && cs.empty_spans == cs.spans,
                "{what}: class {class} after freeing all: {cs:?}"
            );
            kept += cs.held_bytes;
        }
        let bitmap = if self.model.extended { EXTENDED_UNITS } else { 0 };
        assert_eq!(
            st.free_bytes,
            st.obtained_bytes - kept - (bitmap + self.model.lost) * UNIT,
            "{what}: after freeing all, only the kept spans and the bitmap may be in use: {st:?}"
        );
        let run = self.model.largest_free_run();
        if run.is_empty() {
            return;
        }
        let layout = Layout::from_size_align(run.len() * UNIT, UNIT).unwrap();
        assert!(self.new_block(layout, false), "{what}: the free run {run:?} not served: {st:?}");
        assert_eq!(
            self.alloc.stats().obtained_bytes,
            st.obtained_bytes,
            "{what}: memory grew for a free run"
        );
        self.free(self.live.len() - 1);
    }

    /// Frees everything, then repeats the last failed request: the model says whether it
    /// fits next to the spans the classes keep (and where).
    fn retry(&mut self) {
        let Some((layout, zeroed)) = self.last_failed.take() else { return };
        self.free_all();
        self.after_free_all("retry");
        self.new_block(layout, zeroed);
    }

    fn step(&mut self, inp: &mut Bytes) {
        let op = inp.u8() % 16;
        let op = if self.live.len() >= MAX_LIVE && op < 7 { 7 } else { op };
        match op {
            0..=6 => {
                let size = self.size(inp);
                let align = Self::align(inp);
                if let Ok(layout) = Layout::from_size_align(size, align) {
                    self.new_block(layout, op >= 5);
                }
            }
            7..=9 if !self.live.is_empty() => {
                let i = inp.u8() as usize % self.live.len();
                self.free(i);
            }
            10..=12 if !self.live.is_empty() => {
                let i = inp.u8() as usize % self.live.len();
                let new_size = self.size(inp);
                if self.live[i].layout.size() == 0 {
                    self.free(i); // realloc needs a non-zero layout
                } else {
                    self.realloc(i, new_size);
                }
            }
            13 => {
                // Size 0 through `&dyn GlobalAlloc`: unique, aligned, non-null
                // (unless memory is exhausted).
                let layout = Layout::from_size_align(0, Self::align(inp)).unwrap();
                self.new_block(layout, false);
            }
            14 => self.retry(),
            15 => self.check_all("check"),
            _ => {}
        }
    }

    fn run(&mut self, inp: &mut Bytes) {
        while !inp.done() {
            self.step(inp);
            // After every step, the allocator's own invariants (debug builds: cargo fuzz
            // builds with debug assertions) and its stats.
            if let Err(broken) = self.alloc.check_invariants() {
                panic!("invariant broken: {broken}");
            }
            self.check_stats("step");
        }
        self.free_all();
        self.after_free_all("end");
        self.check_stats("end");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Bytes { data, pos: 0 };
    let b0 = inp.u8();
    let (cap, big_mode) = match b0 {
        0..=0xBF => (4 + b0 as usize % 61, false), // 4..=64 pages: out of memory often
        0xC0..=0xEF => (65 + (b0 - 0xC0) as usize * 16, false), // 65..=817 pages
        _ => (2049 + (b0 & 0x0F) as usize * 16, true), // past the extended bitmap
    };
    // 61..=121: the region starts with 1..=4 pages whose bytes from a given offset on are
    // the initial heap (the allocator uses its whole units only).
    let initial = (61..=121).contains(&b0).then(|| {
        let pages = 1 + inp.u8() as usize % 4;
        let start = (inp.u16() as usize * 8 + inp.u8() as usize % 8) % (pages * PAGE_SIZE + 1);
        (pages, start)
    });
    let memory = Logged::new(cap, initial);
    let log = memory.log.clone();
    let alloc = WasmAllocator::with_memory(memory);
    let mut h = Harness {
        heap: &alloc,
        alloc: &alloc,
        log,
        log_seen: 0,
        mem_pages: initial.map_or(0, |(pages, _)| pages),
        base: shared::buffer() as usize,
        cap,
        big_mode,
        model: Model::new(cap, initial),
        live: Vec::new(),
        ranges: BTreeMap::new(),
        live_slots: [0; CLASSES],
        next_id: 1,
        heavy: 0,
        last_failed: None,
    };
    h.run(&mut inp);
});
