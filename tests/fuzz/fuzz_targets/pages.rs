//! `PageAllocator` over a `Region` (through a wrapper that logs `grow` calls), driven by
//! page counts and alignments, against a page-by-page model of the bitmap that predicts
//! exactly which page every allocation gets and every `memory.grow` it makes.
//! See ../README.md for the input format and the model.

#![no_main]
#![feature(cfg_sanitize)]

mod shared;

use std::alloc::{GlobalAlloc, Layout};
use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use shared::{pattern, Bytes, GrowLog, Logged};
use wasm_alloc::{PageAllocator, PAGE_LIMIT, PAGE_SIZE};

const CONVENTIONAL_PAGES: usize = 2048;
const MAX_ALIGN_PAGES_LOG2: u8 = 11;
const MAX_LIVE: usize = 256;
/// Requests of more than 64 pages (each may copy or zero that much) per input.
const BIG_OPS: usize = 16;

fn pages_for(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE).max(1)
}

fn align_in_pages(align: usize) -> usize {
    (align / PAGE_SIZE).max(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    /// Beyond the memory's current size.
    Absent,
    /// Below the initial heap (stack, static data), or the initial heap before it is claimed.
    NotOurs,
    Free,
    Used,
    /// The extended bitmap.
    Bitmap,
}

/// The page layer as DESIGN.md describes it, one `Page` per page.
struct Model {
    pages: Vec<Page>,
    size: usize,
    cap: usize,
    extended: Option<usize>,
    /// The initial heap (byte range), claimed on the first allocation.
    initial_heap: Option<Range<usize>>,
    /// `grow` calls expected: (delta, succeeds).
    grows: Vec<(usize, bool)>,
}

fn align_up(x: usize, a: usize) -> Option<usize> {
    x.checked_next_multiple_of(a)
}

impl Model {
    fn release(&mut self, range: Range<usize>) {
        let mut end = range.end.min(PAGE_LIMIT);
        if range.start >= end {
            return;
        }
        if end > CONVENTIONAL_PAGES && self.extended.is_none() {
            end -= 1;
            self.extended = Some(end);
            self.pages[end] = Page::Bitmap;
        }
        for p in range.start..end {
            self.pages[p] = Page::Free;
        }
    }

    /// One `memory.grow` call: whether it succeeds.
    fn grow_once(&mut self, delta: usize) -> bool {
        let ok = self.size.checked_add(delta).is_some_and(|end| end <= self.cap);
        self.grows.push((delta, ok));
        if ok {
            for p in self.size..self.size + delta {
                self.pages[p] = Page::Used;
            }
            self.size += delta;
        }
        ok
    }

    /// Growth for `needed` pages: memory grows ahead by an eighth of its size (at most
    /// 64 pages, never past PAGE_LIMIT) when it can, else by exactly `needed`; the pages
    /// ahead are free.
    fn grow(&mut self, needed: usize) -> bool {
        let old = self.size;
        let ahead = (old >> 3).min(64).min(PAGE_LIMIT.saturating_sub(old.saturating_add(needed)));
        if self.grow_once(needed + ahead) {
            self.release(old + needed..old + needed + ahead);
            return true;
        }
        ahead > 0 && self.grow_once(needed)
    }

    fn claim(&mut self) {
        if let Some(heap) = self.initial_heap.take() {
            let first = heap.start.div_ceil(PAGE_SIZE);
            let end = (heap.end / PAGE_SIZE).max(first);
            self.release(first..end);
        }
    }

    fn is_free(&self, p: usize) -> bool {
        p < self.size && self.pages[p] == Page::Free
    }

    fn set_used(&mut self, r: Range<usize>) {
        for p in r {
            self.pages[p] = Page::Used;
        }
    }

    /// First fit: the lowest aligned start of `n` free pages.
    fn first_fit(&self, n: usize, a: usize) -> Option<usize> {
        let mut s = 0;
        while s + n <= self.size {
            match (s..s + n).rev().find(|&p| !self.is_free(p)) {
                None => return Some(s),
                Some(u) => s = align_up(u + 1, a)?,
            }
        }
        None
    }

    fn alloc(&mut self, n: usize, a: usize) -> Option<usize> {
        self.claim();
        if n > PAGE_LIMIT {
            return None;
        }
        if let Some(s) = self.first_fit(n, a) {
            self.set_used(s..s + n);
            return Some(s);
        }
        // Extend the free run that ends at the top of memory by the missing pages; if
        // the aligned start lies above the top, the pages in between are padding.
        let mut run = self.size;
        while run > 0 && self.pages[run - 1] == Page::Free {
            run -= 1;
        }
        let start = align_up(run, a)?;
        let end = start.checked_add(n).filter(|&e| e <= PAGE_LIMIT)?;
        let old = self.size;
        assert!(end > old, "model: a run that fits below the top was not found");
        if !self.grow(end - old) {
            return None;
        }
        self.release(old..start.max(old));
        self.set_used(start..end);
        Some(start)
    }

    fn realloc(&mut self, start: usize, old_n: usize, new_n: usize, a: usize) -> Option<usize> {
        if new_n <= old_n {
            self.release(start + new_n..start + old_n);
            return Some(start);
        }
        let (tail, end) = (start + old_n, start.saturating_add(new_n));
        if end <= PAGE_LIMIT {
            let used = (tail..end).find(|&p| !self.is_free(p)).unwrap_or(end);
            let ok = used == end || (used == self.size && self.grow(end - self.size));
            if ok {
                self.set_used(tail..end);
                return Some(start);
            }
        }
        let q = self.alloc(new_n, a)?;
        self.release(start..start + old_n);
        Some(q)
    }
}

/// 8 bytes at the head of every page of the block and its last up-to-16 bytes.
fn marks(size: usize, mut f: impl FnMut(Range<usize>)) {
    if size == 0 {
        return;
    }
    for k in 0..=(size - 1) / PAGE_SIZE {
        f(k * PAGE_SIZE..(k * PAGE_SIZE + 8).min(size));
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

/// Zero at the first and last 64 bytes of every page (everywhere for blocks up to 2 pages).
fn check_zero(ptr: *const u8, size: usize) {
    let check = |r: Range<usize>| {
        // SAFETY: within the block just allocated.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.add(r.start), r.end - r.start) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!("alloc_zeroed({size}) at {ptr:p}: byte {} is {:#x}", r.start + i, bytes[i]);
        }
    };
    if size <= 2 * PAGE_SIZE {
        return check(0..size);
    }
    for k in 0..=(size - 1) / PAGE_SIZE {
        let page = k * PAGE_SIZE;
        check(page..(page + 64).min(size));
        check((page + PAGE_SIZE - 64).min(size)..(page + PAGE_SIZE).min(size));
    }
}

struct Block {
    ptr: *mut u8,
    layout: Layout,
    page: usize,
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
}

impl Harness<'_> {
    fn count(&mut self, inp: &mut Bytes) -> usize {
        let n = match inp.u8() {
            0..=127 => 1 + inp.u8() as usize % 4,
            128..=191 => 1 + inp.u8() as usize % 16,
            192..=239 => 1 + inp.u8() as usize % 128,
            240..=253 => 1 + inp.u16() as usize % (self.model.cap + 64),
            _ => PAGE_LIMIT + 1 + inp.u8() as usize,
        };
        if n > 64 && n <= self.model.cap {
            if self.big_ops >= BIG_OPS {
                return 1 + n % 64;
            }
            self.big_ops += 1;
        }
        n
    }

    /// Bytes for `n` pages: n pages minus some slack (0 for one page and the top slack).
    fn size(inp: &mut Bytes, n: usize) -> usize {
        let slack = match inp.u8() {
            0..=127 => 0,
            128..=254 => inp.u16() as usize % PAGE_SIZE,
            _ => PAGE_SIZE,
        };
        n * PAGE_SIZE - slack
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

    fn ptr_of(&self, page: Option<usize>) -> *mut u8 {
        page.map_or(std::ptr::null_mut(), |p| (self.base + p * PAGE_SIZE) as *mut u8)
    }

    fn alloc(&mut self, layout: Layout, zeroed: bool) {
        let predicted = self.model.alloc(pages_for(layout.size()), align_in_pages(layout.align()));
        // SAFETY: a valid layout; size 0 is allowed by this allocator through `dyn`.
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        if ptr != self.ptr_of(predicted) {
            let live: Vec<_> = self.live.iter().map(|b| (b.page, pages_for(b.layout.size()))).collect();
            panic!(
                "alloc {layout:?}: got {ptr:p} (page {:?}), model says page {predicted:?} \
                 (memory {} pages, live (page, pages) {live:?})",
                (!ptr.is_null()).then(|| (ptr as usize - self.base) / PAGE_SIZE),
                self.model.size
            );
        }
        self.check_grows("alloc");
        let Some(page) = predicted else {
            self.check_all("after a failed alloc");
            return;
        };
        if zeroed {
            check_zero(ptr, layout.size());
        }
        let id = self.next_id;
        self.next_id += 1;
        write_marks(ptr, layout.size(), id);
        self.live.push(Block { ptr, layout, page, id });
    }

    fn free(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        check_marks(b.ptr, b.layout.size(), b.layout.size(), b.id, "before dealloc");
        self.model.release(b.page..b.page + pages_for(b.layout.size()));
        // SAFETY: allocated here with this layout, not used again.
        unsafe { self.heap.dealloc(b.ptr, b.layout) };
        self.check_grows("dealloc");
    }

    fn realloc(&mut self, i: usize, new_size: usize) {
        let b = &self.live[i];
        let (ptr, layout, page, id) = (b.ptr, b.layout, b.page, b.id);
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return };
        check_marks(ptr, layout.size(), layout.size(), id, "before realloc");
        let predicted = self.model.realloc(
            page,
            pages_for(layout.size()),
            pages_for(new_size),
            align_in_pages(layout.align()),
        );
        // SAFETY: allocated here with `layout`; `new_size` is non-zero and small.
        let new = unsafe { self.heap.realloc(ptr, layout, new_size) };
        assert_eq!(
            new,
            self.ptr_of(predicted),
            "realloc page {page} {layout:?} -> {new_size}: model says page {predicted:?} (memory {} pages)",
            self.model.size
        );
        self.check_grows("realloc");
        let Some(new_page) = predicted else {
            self.check_all("after a failed realloc");
            return;
        };
        check_marks(new, layout.size(), layout.size().min(new_size), id, "after realloc");
        write_marks(new, new_size, id);
        self.live[i] = Block { ptr: new, layout: new_layout, page: new_page, id };
    }

    fn run(&mut self, inp: &mut Bytes) {
        while !inp.done() {
            // After every step, the allocator's own invariants (debug builds: cargo fuzz
            // builds with debug assertions).
            if let Err(broken) = self.heap.check_invariants() {
                panic!("invariant broken: {broken}");
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
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Bytes { data, pos: 0 };
    let b0 = inp.u8();
    let (cap, big) = match b0 {
        0..=0xEF => (8 + b0 as usize % 249, false),  // 8..=256 pages
        _ => (2049 + (b0 % 16) as usize * 16, true), // 2049..=2289 pages: past the extended bitmap
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
        pages: vec![Page::Absent; cap],
        size: 0,
        cap,
        extended: None,
        initial_heap: None,
        grows: Vec::new(),
    };
    if let Some((pages, start)) = initial {
        model.size = pages;
        model.pages[..pages].fill(Page::NotOurs);
        model.initial_heap = Some(start..pages * PAGE_SIZE);
    }
    let memory = Logged::new(cap, initial);
    let log = memory.log.clone();
    let base = shared::buffer() as usize;
    let alloc = PageAllocator::with_memory(memory);
    let mut h = Harness { heap: &alloc, log, base, model, live: Vec::new(), next_id: 1, big_ops: 0 };
    h.run(&mut inp);
});
