//! The wasm side of the multi-threaded test (driven by `run.mjs`).
//!
//! Every worker thread instantiates this module over the same shared memory, so all
//! threads use the one `ALLOC` below (its state lives in linear memory) and, on wasm32
//! with the `atomics` target feature, its spin lock.
//!
//! Exports:
//! - `alloc_block(size, align)`: memory for a worker's stack and TLS block (main thread).
//! - `worker_run(thread, ops, seed, hot)`: a PRNG-driven loop of alloc / alloc_zeroed /
//!   realloc / dealloc, 1 B to 256 KiB, alignments 1 B to 128 KiB (`hot`: 1..512 B,
//!   alignments up to 16, so most time goes to the allocator); every block is filled
//!   with a pattern derived from (thread, op) and verified before it is reallocated or
//!   freed, and its prefix after a realloc. Returns 0, or an error code (see `Err`) with
//!   details readable through `error_word(thread, i)`.
//! - `reuse_free(count, small, big)` / `reuse_take(count, small, big)`: the cross-thread
//!   reuse check: one thread allocates `count` blocks of `small` bytes and one of `big`
//!   bytes, records their addresses and frees them; another thread then allocates the
//!   same sizes zeroed and counts how many of the recorded addresses it got.
//! - `stats_word(i)`: `ALLOC.stats()` (grow calls, pages obtained, pages free).
//! - `has_atomics()`: 1 when compiled with the `atomics` target feature.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

#[global_allocator]
static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();

/// Threads `worker_run` keeps error details for.
const MAX_THREADS: usize = 64;
/// Blocks each thread keeps alive at once (the PRNG picks one of these slots per op).
const LIVE: usize = 64;
/// Largest size of a block in the loop: 256 KiB (four pages).
const MAX_SIZE: usize = 256 * 1024;
/// Largest size in the hot (lock-bound) mix: small blocks only, so an operation is a
/// few hundred nanoseconds and most of the time goes to the allocator and its lock.
const HOT_MAX_SIZE: usize = 512;

/// Error codes of `worker_run`, `reuse_free` and `reuse_take`.
#[repr(u32)]
#[derive(Clone, Copy)]
enum Err {
    AllocNull = 1,
    Misaligned = 2,
    /// A block's contents changed between its fill and a later check: another thread
    /// (or the allocator itself) wrote into it, so two live blocks overlapped.
    Corrupt = 3,
    ReallocNull = 4,
    /// `alloc_zeroed` returned bytes that were not zero.
    NotZeroed = 5,
    /// `stats()` reported more free pages than obtained pages.
    BadStats = 6,
    BadThread = 7,
    /// Two blocks live at once in one thread overlap.
    Overlap = 8,
}

/// Per thread: code, op, address, size, align, offset of the first bad byte, expected
/// word (low 32 bits), found word (low 32 bits).
static ERRORS: [[AtomicU32; 8]; MAX_THREADS] = [const { [const { AtomicU32::new(0) }; 8] }; MAX_THREADS];

/// Addresses `reuse_free` freed: up to 256 small blocks, then the big one.
static RECORDED: [AtomicU32; 257] = [const { AtomicU32::new(0) }; 257];
static RECORDED_COUNT: AtomicU32 = AtomicU32::new(0);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// The size of a new block, or the new size of a reallocated one.
    fn size_for(&mut self, hot: bool) -> usize {
        if hot {
            1 + self.below(HOT_MAX_SIZE as u64) as usize
        } else {
            self.size()
        }
    }

    fn align_for(&mut self, hot: bool) -> usize {
        if hot {
            1 << self.below(5)
        } else {
            self.align()
        }
    }

    /// 1 B to 256 KiB, weighted to small sizes as real programs are: 55 % up to 64 B,
    /// 25 % up to 2 KiB, 12 % up to the largest slot (32 KiB), 8 % whole pages.
    fn size(&mut self) -> usize {
        let r = self.below(100);
        let (lo, hi) = match r {
            0..55 => (1, 64),
            55..80 => (65, 2048),
            80..92 => (2049, 32 * 1024),
            _ => (32 * 1024 + 1, MAX_SIZE),
        };
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    /// Mostly small alignments; sometimes a page-sized or over-page one.
    fn align(&mut self) -> usize {
        match self.below(64) {
            0..40 => 1 << self.below(4),    // 1..8
            40..56 => 16 << self.below(3),  // 16..64
            56..61 => 128 << self.below(6), // 128..4096
            61..63 => 65536,                // one page
            _ => 131072,                    // two pages
        }
    }
}

/// The pattern word `k` of the block tagged `tag`. Different tags give different words at
/// every offset, so a byte written through another block is caught.
#[inline(always)]
fn word(tag: u64, k: usize) -> u64 {
    tag ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn tag_of(thread: u32, op: u32) -> u64 {
    let mut r = Rng(((thread as u64) << 32) | op as u64);
    r.next() | 1
}

/// # Safety
/// `p` is valid for `size` bytes of writes.
unsafe fn fill(p: *mut u8, size: usize, tag: u64) {
    let words = size / 8;
    for k in 0..words {
        unsafe { (p.add(8 * k) as *mut u64).write_unaligned(word(tag, k)) };
    }
    let tail = word(tag, words).to_le_bytes();
    for i in 0..size % 8 {
        unsafe { p.add(8 * words + i).write(tail[i]) };
    }
}

/// The first byte of `p[..size]` that does not hold the pattern `tag`:
/// (offset, expected word, found word).
///
/// # Safety
/// `p` is valid for `size` bytes of reads.
unsafe fn check(p: *const u8, size: usize, tag: u64) -> Option<(usize, u64, u64)> {
    let words = size / 8;
    for k in 0..words {
        let found = unsafe { (p.add(8 * k) as *const u64).read_unaligned() };
        if found != word(tag, k) {
            return Some((8 * k, word(tag, k), found));
        }
    }
    let tail = word(tag, words).to_le_bytes();
    for i in 0..size % 8 {
        let found = unsafe { p.add(8 * words + i).read() };
        if found != tail[i] {
            return Some((8 * words + i, tail[i] as u64, found as u64));
        }
    }
    None
}

/// The first non-zero byte of `p[..size]`.
///
/// # Safety
/// `p` is valid for `size` bytes of reads.
unsafe fn check_zero(p: *const u8, size: usize) -> Option<(usize, u64, u64)> {
    for i in 0..size {
        let found = unsafe { p.add(i).read() };
        if found != 0 {
            return Some((i, 0, found as u64));
        }
    }
    None
}

fn record(
    thread: u32,
    code: Err,
    op: u32,
    p: *const u8,
    size: usize,
    align: usize,
    bad: Option<(usize, u64, u64)>,
) -> u32 {
    let (off, expected, found) = bad.unwrap_or((0, 0, 0));
    let words =
        [code as u32, op, p as u32, size as u32, align as u32, off as u32, expected as u32, found as u32];
    let slot = &ERRORS[thread as usize % MAX_THREADS];
    for (cell, w) in slot.iter().zip(words) {
        cell.store(w, Relaxed);
    }
    code as u32
}

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    tag: u64,
}

/// Memory for a worker's stack or TLS block, from the allocator under test. Never freed.
#[no_mangle]
pub extern "C" fn alloc_block(size: usize, align: usize) -> *mut u8 {
    let layout = Layout::from_size_align(size, align).expect("layout");
    // SAFETY: the test asks for non-zero sizes.
    unsafe { alloc_zeroed(layout) }
}

#[no_mangle]
pub extern "C" fn has_atomics() -> u32 {
    cfg!(target_feature = "atomics") as u32
}

#[no_mangle]
pub extern "C" fn error_word(thread: u32, i: u32) -> u32 {
    ERRORS[thread as usize % MAX_THREADS][i as usize % 8].load(Relaxed)
}

/// 0: `memory.grow` calls, 1: pages obtained, 2: of those free in the page layer (in
/// whole pages), 3: bytes held by the size classes, 4: of those free.
#[no_mangle]
pub extern "C" fn stats_word(i: u32) -> u32 {
    let s = ALLOC.stats();
    (match i {
        0 => s.grow_calls,
        1 => s.obtained_bytes / wasm_alloc::PAGE_SIZE,
        2 => s.free_bytes / wasm_alloc::PAGE_SIZE,
        3 => s.classes.iter().map(|c| c.held_bytes).sum(),
        4 => s.classes.iter().map(|c| c.held_bytes - c.used_bytes).sum(),
        _ => 0,
    }) as u32
}

/// Checked alloc / realloc / free of `ops` operations on up to `LIVE` blocks; every block
/// is freed at the end. `hot` != 0: small blocks only (1..512 B, align 1..16), where the
/// lock is taken far more often. Returns 0 or an `Err` code.
#[no_mangle]
pub extern "C" fn worker_run(thread: u32, ops: u32, seed: u32, hot: u32) -> u32 {
    if thread as usize >= MAX_THREADS {
        return Err::BadThread as u32;
    }
    let mut rng = Rng(((seed as u64) << 32) ^ (thread as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut live: [Option<Block>; LIVE] = [None; LIVE];
    let result = run_ops(thread, ops, hot != 0, &mut rng, &mut live);
    // Free what is left, checked, even after an error (the other threads go on).
    let mut end = result;
    for b in live.iter_mut().filter_map(Option::take) {
        // SAFETY: `b` is live, allocated with this layout.
        unsafe {
            if end == 0 {
                if let Some(bad) = check(b.ptr, b.size, b.tag) {
                    end = record(thread, Err::Corrupt, ops, b.ptr, b.size, b.align, Some(bad));
                }
            }
            dealloc(b.ptr, Layout::from_size_align_unchecked(b.size, b.align));
        }
    }
    end
}

fn run_ops(thread: u32, ops: u32, hot: bool, rng: &mut Rng, live: &mut [Option<Block>; LIVE]) -> u32 {
    for op in 0..ops {
        let i = rng.below(LIVE as u64) as usize;
        let tag = tag_of(thread, op);
        match live[i] {
            None => {
                let size = rng.size_for(hot);
                let align = rng.align_for(hot);
                let zeroed = rng.below(8) == 0;
                // SAFETY: a valid layout of non-zero size.
                let p = unsafe {
                    let layout = Layout::from_size_align_unchecked(size, align);
                    if zeroed {
                        alloc_zeroed(layout)
                    } else {
                        alloc(layout)
                    }
                };
                if p.is_null() {
                    return record(thread, Err::AllocNull, op, p, size, align, None);
                }
                if p as usize % align != 0 {
                    return record(thread, Err::Misaligned, op, p, size, align, None);
                }
                if zeroed {
                    // SAFETY: `p` is a live block of `size` bytes.
                    if let Some(bad) = unsafe { check_zero(p, size) } {
                        return record(thread, Err::NotZeroed, op, p, size, align, Some(bad));
                    }
                }
                let (s, e) = (p as usize, p as usize + size);
                for other in live.iter().flatten() {
                    let (os, oe) = (other.ptr as usize, other.ptr as usize + other.size);
                    if s < oe && os < e {
                        return record(
                            thread,
                            Err::Overlap,
                            op,
                            p,
                            size,
                            align,
                            Some((0, os as u64, oe as u64)),
                        );
                    }
                }
                // SAFETY: `p` is a live block of `size` bytes.
                unsafe { fill(p, size, tag) };
                live[i] = Some(Block { ptr: p, size, align, tag });
            }
            Some(b) => {
                // SAFETY: `b` is live.
                if let Some(bad) = unsafe { check(b.ptr, b.size, b.tag) } {
                    return record(thread, Err::Corrupt, op, b.ptr, b.size, b.align, Some(bad));
                }
                // SAFETY: `b` was allocated with this layout.
                let layout = unsafe { Layout::from_size_align_unchecked(b.size, b.align) };
                if rng.below(2) == 0 {
                    // SAFETY: `b` is live; freed once, then forgotten.
                    unsafe { dealloc(b.ptr, layout) };
                    live[i] = None;
                } else {
                    let max = if hot { HOT_MAX_SIZE } else { MAX_SIZE };
                    let new_size = match rng.below(4) {
                        // A little bigger or smaller: often in place.
                        0 => (b.size + rng.below(129) as usize).saturating_sub(64).clamp(1, max),
                        1 => (b.size * 2).min(max),
                        2 => (b.size / 2).max(1),
                        _ => rng.size_for(hot),
                    };
                    // SAFETY: `b` is live with `layout`; `new_size` is non-zero and valid
                    // for the alignment.
                    let p = unsafe { realloc(b.ptr, layout, new_size) };
                    if p.is_null() {
                        live[i] = Some(b);
                        return record(thread, Err::ReallocNull, op, b.ptr, new_size, b.align, None);
                    }
                    live[i] = Some(Block { ptr: p, size: new_size, align: b.align, tag: b.tag });
                    if p as usize % b.align != 0 {
                        return record(thread, Err::Misaligned, op, p, new_size, b.align, None);
                    }
                    // The kept prefix must still hold the old pattern.
                    // SAFETY: `p` is live with at least `min(old, new)` bytes.
                    if let Some(bad) = unsafe { check(p, b.size.min(new_size), b.tag) } {
                        return record(thread, Err::Corrupt, op, p, new_size, b.align, Some(bad));
                    }
                    // SAFETY: as above, `new_size` bytes.
                    unsafe { fill(p, new_size, tag) };
                    live[i] = Some(Block { ptr: p, size: new_size, align: b.align, tag });
                }
            }
        }
        if op % 4096 == 4095 {
            let s = ALLOC.stats();
            if s.free_bytes > s.obtained_bytes {
                return record(
                    thread,
                    Err::BadStats,
                    op,
                    core::ptr::null(),
                    s.free_bytes,
                    s.obtained_bytes,
                    None,
                );
            }
        }
    }
    0
}

/// First half of the reuse check, on one thread: `count` blocks of `small` bytes and one
/// of `big` bytes, filled; their addresses recorded; all freed (checked). 0 or an error.
#[no_mangle]
pub extern "C" fn reuse_free(thread: u32, count: u32, small: usize, big: usize) -> u32 {
    let count = (count as usize).min(256);
    let mut blocks = [core::ptr::null_mut::<u8>(); 257];
    let sizes = |i: usize| if i < count { small } else { big };
    for i in 0..=count {
        // SAFETY: non-zero sizes, alignment 8.
        let p = unsafe { alloc(Layout::from_size_align_unchecked(sizes(i), 8)) };
        if p.is_null() {
            return record(thread, Err::AllocNull, i as u32, p, sizes(i), 8, None);
        }
        // SAFETY: a live block of `sizes(i)` bytes.
        unsafe { fill(p, sizes(i), tag_of(thread, 0x8000_0000 | i as u32)) };
        blocks[i] = p;
        RECORDED[i].store(p as u32, Relaxed);
    }
    RECORDED_COUNT.store(count as u32 + 1, Relaxed);
    for i in 0..=count {
        // SAFETY: live, allocated above with this layout.
        unsafe {
            if let Some(bad) = check(blocks[i], sizes(i), tag_of(thread, 0x8000_0000 | i as u32)) {
                return record(thread, Err::Corrupt, i as u32, blocks[i], sizes(i), 8, Some(bad));
            }
            dealloc(blocks[i], Layout::from_size_align_unchecked(sizes(i), 8));
        }
    }
    0
}

/// Second half, on another thread: the same sizes, zeroed (the blocks the first thread
/// filled must come back as zeros). Returns the number of small blocks at an address
/// the first thread freed, plus 0x1_0000 if the big block is at the freed big block's
/// address; or 0x8000_0000 | an error code.
#[no_mangle]
pub extern "C" fn reuse_take(thread: u32, count: u32, small: usize, big: usize) -> u32 {
    let count = (count as usize).min(256);
    let recorded = RECORDED_COUNT.load(Relaxed) as usize;
    // No Vec here: it would take a slot from the allocator under test.
    let freed_small = &RECORDED[..recorded.saturating_sub(1)];
    let freed_big = RECORDED[recorded.saturating_sub(1)].load(Relaxed);
    let mut blocks = [core::ptr::null_mut::<u8>(); 257];
    let sizes = |i: usize| if i < count { small } else { big };
    let mut hits = 0;
    for i in 0..=count {
        // SAFETY: non-zero sizes, alignment 8.
        let p = unsafe { alloc_zeroed(Layout::from_size_align_unchecked(sizes(i), 8)) };
        if p.is_null() {
            return 0x8000_0000 | record(thread, Err::AllocNull, i as u32, p, sizes(i), 8, None);
        }
        // SAFETY: a live block of `sizes(i)` bytes.
        if let Some(bad) = unsafe { check_zero(p, sizes(i)) } {
            return 0x8000_0000 | record(thread, Err::NotZeroed, i as u32, p, sizes(i), 8, Some(bad));
        }
        blocks[i] = p;
        if i < count && freed_small.iter().any(|a| a.load(Relaxed) == p as u32) {
            hits += 1;
        }
        if i == count && p as u32 == freed_big {
            hits += 0x1_0000;
        }
    }
    for i in 0..=count {
        // SAFETY: live, allocated above with this layout.
        unsafe { dealloc(blocks[i], Layout::from_size_align_unchecked(sizes(i), 8)) };
    }
    hits
}
