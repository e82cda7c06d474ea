//! `WasmAllocator` over a `Region`, driven by a program of alloc / alloc_zeroed / realloc /
//! dealloc operations decoded from the input, every step checked against a shadow model
//! of the live blocks. See ../README.md for the input format and what is checked.

#![no_main]
#![feature(cfg_sanitize)]

mod shared;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use shared::{pattern, Bytes, Logged};
use wasm_alloc::{Stats, WasmAllocator, CLASSES, PAGE_SIZE};

/// The largest size-class slot (DESIGN: slots of 8 B to 32 KiB); bigger or more aligned
/// requests take whole pages.
const MAX_SLOT: usize = PAGE_SIZE / 2;
/// Pages covered by the conventional bitmap; the extended one is stolen above this.
const CONVENTIONAL_PAGES: usize = 2048;
/// Largest alignment requested: 2^20.
const MAX_ALIGN_LOG2: u8 = 20;
const MAX_LIVE: usize = 512;
/// Bytes of "heavy" work (sizes over 1 MiB: zeroing, zero checks, copies) per input.
const HEAVY_BUDGET: usize = 256 << 20;
const HEAVY: usize = 1 << 20;
/// `stats()` walks free lists; do the full accounting check at most this often per input.
const STATS_CHECKS: usize = 16;
/// Bytes checked fully in `alloc_zeroed` memory; beyond, head, tail and page heads.
const ZERO_CHECK_FULL: usize = 1 << 20;

fn class_of(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align).max(8);
    (need <= MAX_SLOT).then(|| need.next_power_of_two().trailing_zeros() as usize - 3)
}

fn pages_for(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE).max(1)
}

fn align_in_pages(align: usize) -> usize {
    (align / PAGE_SIZE).max(1)
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

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    id: u32,
}

/// What the model says a request must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Succeed,
    Fail,
    Either,
}

struct Harness<'a> {
    heap: &'a dyn GlobalAlloc,
    alloc: &'a WasmAllocator<Logged>,
    base: usize,
    cap: usize,
    big_mode: bool,
    live: Vec<Block>,
    /// Live blocks by address: start -> end (zero-size blocks count as 1 byte).
    ranges: BTreeMap<usize, usize>,
    /// Live whole-page blocks: first page -> end page.
    big: BTreeMap<usize, usize>,
    /// Every page a size class took (seen through its slots): page -> class.
    class_pages: HashMap<usize, usize>,
    class_count: [usize; CLASSES],
    next_id: u32,
    heavy: usize,
    stats_checks: usize,
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
                2 => wasm_alloc::PAGE_LIMIT * PAGE_SIZE,
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

    /// Checks where a new block lies and records it.
    fn place(&mut self, ptr: *mut u8, layout: Layout) {
        let (addr, size, align) = (ptr as usize, layout.size(), layout.align());
        assert!(!ptr.is_null());
        assert_eq!(addr % align, 0, "{layout:?} at {ptr:p}: misaligned");
        let end = addr + size.max(1);
        assert!(
            addr >= self.base && end <= self.base + self.cap * PAGE_SIZE,
            "{layout:?} at {ptr:p}: outside the region {:#x}+{} pages",
            self.base,
            self.cap
        );
        let off = addr - self.base;
        let page = off / PAGE_SIZE;
        match class_of(size, align) {
            Some(class) => {
                let slot = 8 << class;
                assert_eq!(off % slot, 0, "{layout:?} at {ptr:p}: slot not aligned to its size {slot}");
                match self.class_pages.get(&page) {
                    Some(&c) => assert_eq!(c, class, "page {page} holds slots of classes {c} and {class}"),
                    None => {
                        if let Some((&s, &e)) = self.big.range(..=page).next_back() {
                            assert!(e <= page, "class page {page} inside the live page block {s}..{e}");
                        }
                        self.class_pages.insert(page, class);
                        self.class_count[class] += 1;
                    }
                }
            }
            None => {
                assert_eq!(off % PAGE_SIZE, 0, "{layout:?} at {ptr:p}: page block not page aligned");
                let pages = page..page + pages_for(size);
                for p in pages.clone() {
                    assert!(
                        !self.class_pages.contains_key(&p),
                        "{layout:?} at {ptr:p}: page {p} belongs to a size class"
                    );
                }
                self.big.insert(pages.start, pages.end);
            }
        }
        if let Some((&below, &below_end)) = self.ranges.range(..=addr).next_back() {
            assert!(below_end <= addr, "{layout:?} at {ptr:p} overlaps live {below:#x}..{below_end:#x}");
        }
        if let Some((&above, &above_end)) = self.ranges.range(addr..).next() {
            assert!(end <= above, "{layout:?} at {ptr:p} overlaps live {above:#x}..{above_end:#x}");
        }
        self.ranges.insert(addr, end);
    }

    fn forget(&mut self, block: &Block) {
        let addr = block.ptr as usize;
        assert!(self.ranges.remove(&addr).is_some());
        if class_of(block.layout.size(), block.layout.align()).is_none() {
            assert!(self.big.remove(&((addr - self.base) / PAGE_SIZE)).is_some());
        }
    }

    fn check_all(&self, what: &str) {
        for b in &self.live {
            check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, what);
        }
    }

    /// Accounts for every page: after `stats()`, pages obtained - pages free must be the
    /// class pages we saw plus the live page blocks, plus at most the extended bitmap's
    /// page. Returns whether that page exists.
    fn check_stats(&self, st: &Stats) -> bool {
        assert!(st.pages_obtained <= self.cap, "{st:?}: more pages than the cap {}", self.cap);
        assert!(st.pages_free <= st.pages_obtained, "{st:?}");
        for (c, cs) in st.classes.iter().enumerate() {
            assert_eq!(cs.held_bytes, self.class_count[c] * PAGE_SIZE, "class {c}: {st:?}");
            assert!(cs.free_bytes <= cs.held_bytes, "class {c}: {st:?}");
        }
        let used = st.pages_obtained - st.pages_free;
        let known = self.class_pages.len() + self.big.iter().map(|(s, e)| e - s).sum::<usize>();
        assert!(
            used == known || used == known + 1,
            "pages in use {used}, but {} class pages + live page blocks {:?} (+ bitmap): {st:?}",
            self.class_pages.len(),
            self.big
        );
        let bitmap = used == known + 1;
        assert!(!bitmap || st.pages_obtained > CONVENTIONAL_PAGES, "a bitmap page below 2048: {st:?}");
        bitmap
    }

    /// Whether `layout` can be served now (given `stats()` taken now).
    fn predict(&self, layout: Layout, st: &Stats, bitmap: bool) -> Expect {
        if let Some(class) = class_of(layout.size(), layout.align()) {
            let ok = st.classes[class].free_bytes > 0 || st.pages_free > 0 || st.pages_obtained < self.cap;
            return if ok { Expect::Succeed } else { Expect::Fail };
        }
        let (n, a) = (pages_for(layout.size()), align_in_pages(layout.align()));
        if n > self.cap {
            return Expect::Fail;
        }
        // Pages in use that we know of; the extended bitmap's page (if any) is somewhere
        // in 2048..pages_obtained.
        let mut used = vec![0usize; self.cap + 1];
        for &p in self.class_pages.keys() {
            used[p + 1] += 1;
        }
        for (&s, &e) in &self.big {
            for p in s..e {
                used[p + 1] += 1;
            }
        }
        for i in 0..self.cap {
            used[i + 1] += used[i];
        }
        let fits = |maybe: Range<usize>| {
            (0..).step_by(a).take_while(|&s| s + n <= self.cap).any(|s| {
                used[s + n] == used[s] && (maybe.is_empty() || maybe.end <= s || s + n <= maybe.start)
            })
        };
        let maybe = if bitmap { CONVENTIONAL_PAGES..st.pages_obtained } else { 0..0 };
        if fits(maybe) {
            Expect::Succeed
        } else if !fits(0..0) {
            Expect::Fail
        } else {
            Expect::Either
        }
    }

    /// A request returned null: nothing may have changed, and it must not have fit.
    fn on_null(&mut self, layout: Layout, zeroed: bool, what: &str) {
        self.check_all(&format!("after a failed {what}"));
        self.last_failed = Some((layout, zeroed));
        if self.stats_checks < STATS_CHECKS {
            self.stats_checks += 1;
            let st = self.alloc.stats();
            let bitmap = self.check_stats(&st);
            let expect = self.predict(layout, &st, bitmap);
            assert_ne!(expect, Expect::Succeed, "{what} {layout:?} failed although it fits: {st:?}");
        }
    }

    fn new_block(&mut self, layout: Layout, zeroed: bool) {
        // SAFETY: a valid layout (zero size is allowed by this allocator through `dyn`).
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        if ptr.is_null() {
            self.on_null(layout, zeroed, if zeroed { "alloc_zeroed" } else { "alloc" });
            return;
        }
        self.place(ptr, layout);
        if zeroed {
            check_zero(ptr, layout.size());
        }
        let id = self.next_id;
        self.next_id += 1;
        write_marks(ptr, layout.size(), id);
        self.live.push(Block { ptr, layout, id });
    }

    fn free(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, "before dealloc");
        self.forget(&b);
        // SAFETY: allocated here with this layout, and not used again.
        unsafe { self.heap.dealloc(b.ptr, b.layout) };
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
        // SAFETY: allocated here with `old.layout`; `new_size` is non-zero and does not
        // overflow isize when rounded up to the alignment.
        let ptr = unsafe { self.heap.realloc(old.ptr, old.layout, new_size) };
        let (old_class, new_class) =
            (class_of(old.layout.size(), old.layout.align()), class_of(new_size, old.layout.align()));
        let in_place = match (old_class, new_class) {
            (Some(a), Some(b)) => a == b,
            (None, None) => pages_for(new_size) <= pages_for(old.layout.size()),
            _ => false,
        };
        if ptr.is_null() {
            assert!(!in_place, "realloc {:?} -> {new_size} must stay in place, got null", old.layout);
            self.on_null(new_layout, false, "realloc");
            return;
        }
        if in_place {
            assert_eq!(ptr, old.ptr, "realloc {:?} -> {new_size} must stay in place", old.layout);
        }
        self.forget(&old);
        self.place(ptr, new_layout);
        check_marks(ptr, old.layout.size(), old.layout.size().min(new_size), old.id, "after realloc");
        write_marks(ptr, new_size, old.id);
        self.live[i] = Block { ptr, layout: new_layout, id: old.id };
    }

    /// Frees everything, then repeats the last failed request: it must succeed exactly
    /// when it fits next to the pages the size classes keep.
    fn retry(&mut self) {
        let Some((layout, zeroed)) = self.last_failed.take() else { return };
        self.free_all();
        let st = self.alloc.stats();
        let bitmap = self.check_stats(&st);
        let expect = self.predict(layout, &st, bitmap);
        // SAFETY: as in `new_block`.
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        match expect {
            Expect::Succeed => assert!(!ptr.is_null(), "after freeing all, {layout:?} still fails: {st:?}"),
            Expect::Fail => assert!(ptr.is_null(), "{layout:?} succeeded but cannot fit: {st:?}"),
            Expect::Either => {}
        }
        if ptr.is_null() {
            self.last_failed = Some((layout, zeroed));
            return;
        }
        self.place(ptr, layout);
        if zeroed {
            check_zero(ptr, layout.size());
        }
        let id = self.next_id;
        self.next_id += 1;
        write_marks(ptr, layout.size(), id);
        self.live.push(Block { ptr, layout, id });
    }

    fn run(&mut self, inp: &mut Bytes) {
        while !inp.done() {
            // After every step, the allocator's own invariants (debug builds: cargo fuzz
            // builds with debug assertions).
            if let Err(broken) = self.alloc.check_invariants() {
                panic!("invariant broken: {broken}");
            }
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
        self.free_all();
        let st = self.alloc.stats();
        self.check_stats(&st);
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
    let memory = Logged::new(cap, None);
    let log = memory.log.clone();
    let alloc = WasmAllocator::with_memory(memory);
    let mut h = Harness {
        heap: &alloc,
        alloc: &alloc,
        base: shared::buffer() as usize,
        cap,
        big_mode,
        live: Vec::new(),
        ranges: BTreeMap::new(),
        big: BTreeMap::new(),
        class_pages: HashMap::new(),
        class_count: [0; CLASSES],
        next_id: 1,
        heavy: 0,
        stats_checks: 0,
        last_failed: None,
    };
    h.run(&mut inp);
    let grows = log.lock().unwrap().iter().filter(|&&(_, ok)| ok).count();
    assert_eq!(alloc.stats().grow_calls, grows, "Stats::grow_calls");
});
