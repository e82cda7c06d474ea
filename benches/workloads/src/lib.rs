//! Allocator benchmark workloads, compiled into one wasm module per allocator
//! (`benches/peers/*`, each of which only picks the `#[global_allocator]`).
//!
//! Every workload is deterministic from its seed (own PRNG), checks the memory it gets
//! (marks written into each block and verified before it is freed or after it moved) and
//! returns a checksum that does not depend on addresses, so the runner can compare it
//! across allocators: a corrupting allocator fails instead of looking fast.
//!
//! Exports (plain `extern "C"`, no wasm-bindgen), called by `benches/runner/run.mjs`:
//! `bench_init`, `bench_err_ptr`/`bench_err_len` (last panic message), `bench_nulls`/
//! `bench_null_size` (null returns of the allocator), and the workloads `wl_*`.
#![cfg(target_arch = "wasm32")]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

// ---------------------------------------------------------------------------------------
// Allocator wrapper: counts null returns so the runner can tell "out of memory" from
// other traps. Same (inlined, one branch) cost for every allocator.

static NULLS: AtomicU32 = AtomicU32::new(0);
static NULL_SIZE: AtomicUsize = AtomicUsize::new(0);

#[cold]
#[inline(never)]
fn note_null(size: usize) {
    NULLS.store(NULLS.load(Relaxed).wrapping_add(1), Relaxed);
    NULL_SIZE.store(size, Relaxed);
}

/// Wraps the allocator under test; see [`bench_allocator!`].
pub struct Track<A>(pub A);

unsafe impl<A: GlobalAlloc> GlobalAlloc for Track<A> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if p.is_null() {
            note_null(layout.size());
        }
        p
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if p.is_null() {
            note_null(layout.size());
        }
        p
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout)
    }
    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if p.is_null() {
            note_null(new_size);
        }
        p
    }
}

/// `bench_allocator!(Type, init)` declares `static GLOBAL: Track<Type>` as the global
/// allocator of the module.
#[macro_export]
macro_rules! bench_allocator {
    ($ty:ty, $init:expr) => {
        #[global_allocator]
        static GLOBAL: $crate::Track<$ty> = $crate::Track($init);
    };
}

#[no_mangle]
pub extern "C" fn bench_nulls() -> u32 {
    NULLS.load(Relaxed)
}

#[no_mangle]
pub extern "C" fn bench_null_size() -> usize {
    NULL_SIZE.load(Relaxed)
}

// ---------------------------------------------------------------------------------------
// Panic messages go to a static buffer (no allocation), read by the runner after a trap.

struct Racy<T>(UnsafeCell<T>);
unsafe impl<T> Sync for Racy<T> {}

static ERR: Racy<([u8; 1024], usize)> = Racy(UnsafeCell::new(([0; 1024], 0)));

struct ErrWriter;
impl std::fmt::Write for ErrWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let e = unsafe { &mut *ERR.0.get() };
        let n = s.len().min(e.0.len() - e.1);
        e.0[e.1..e.1 + n].copy_from_slice(&s.as_bytes()[..n]);
        e.1 += n;
        Ok(())
    }
}

#[no_mangle]
pub extern "C" fn bench_init() {
    std::panic::set_hook(Box::new(|info| {
        unsafe { (*ERR.0.get()).1 = 0 };
        let _ = std::fmt::Write::write_fmt(&mut ErrWriter, format_args!("{info}"));
    }));
}

#[no_mangle]
pub extern "C" fn bench_err_ptr() -> *const u8 {
    unsafe { (*ERR.0.get()).0.as_ptr() }
}

#[no_mangle]
pub extern "C" fn bench_err_len() -> usize {
    unsafe { (*ERR.0.get()).1 }
}

// ---------------------------------------------------------------------------------------
// PRNG (splitmix64) and a small hash for checksums.

pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u32) -> Self {
        Rng(0x853C_49E6_748F_EA9B ^ (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    #[inline]
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    #[inline]
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }
    #[inline]
    pub fn u16(&mut self) -> u16 {
        (self.u64() >> 48) as u16
    }
    /// Uniform in `0..n` (n > 0, n < 2^32).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.u32() as u64 * n as u64) >> 32) as usize
    }
    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

#[derive(Clone, Copy)]
pub struct Hash(u64);
impl Hash {
    pub fn new() -> Self {
        Hash(0xCBF2_9CE4_8422_2325)
    }
    #[inline]
    pub fn add(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(7);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        for c in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }
    pub fn finish(self) -> u32 {
        (self.0 ^ (self.0 >> 32)) as u32
    }
}

impl Default for Hash {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// A raw block with marks: three words (or bytes, for blocks under 12 bytes) derived from
// a tag, written at the start, middle and end, checked before free and after realloc.

#[derive(Clone, Copy)]
pub struct Blk {
    ptr: *mut u8,
    size: usize,
    align: usize,
    tag: u32,
}

const NO_BLK: Blk = Blk { ptr: core::ptr::null_mut(), size: 0, align: 0, tag: 0 };

/// Mark positions and width; in blocks under 3 bytes some positions coincide, and only
/// the first of equal positions is used.
#[inline]
fn marks(size: usize) -> ([usize; 3], usize) {
    if size >= 12 {
        ([0, (size / 2) & !3, size - 4], 4)
    } else {
        ([0, size / 2, size - 1], 1)
    }
}

#[inline]
fn dup(pos: &[usize; 3], k: usize) -> bool {
    pos[..k].contains(&pos[k])
}

#[inline]
fn mark_val(tag: u32, k: usize) -> u32 {
    tag ^ (k as u32).wrapping_mul(0x9E37_79B9)
}

impl Blk {
    /// Allocates and marks; `None` on null.
    #[inline]
    pub fn try_new(size: usize, align: usize, tag: u32) -> Option<Blk> {
        let layout = Layout::from_size_align(size, align).expect("bad layout");
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return None;
        }
        if ptr as usize & (align - 1) != 0 {
            panic!("alloc({size}, {align}) returned misaligned {ptr:p}");
        }
        let b = Blk { ptr, size, align, tag };
        b.mark();
        Some(b)
    }
    #[inline]
    pub fn new(size: usize, align: usize, tag: u32) -> Blk {
        match Self::try_new(size, align, tag) {
            Some(b) => b,
            None => panic!("alloc({size}, align {align}) returned null"),
        }
    }
    #[inline]
    fn mark(&self) {
        let (pos, w) = marks(self.size);
        for (k, &p) in pos.iter().enumerate() {
            if dup(&pos, k) {
                continue;
            }
            let v = mark_val(self.tag, k);
            unsafe {
                if w == 4 {
                    self.ptr.add(p).cast::<u32>().write_unaligned(v)
                } else {
                    self.ptr.add(p).write(v as u8)
                }
            }
        }
    }
    /// Checks the marks that lie below `limit` bytes.
    #[inline]
    fn check_below(&self, limit: usize) {
        let (pos, w) = marks(self.size);
        for (k, &p) in pos.iter().enumerate() {
            if p + w > limit || dup(&pos, k) {
                continue;
            }
            let v = mark_val(self.tag, k);
            let ok = unsafe {
                if w == 4 {
                    self.ptr.add(p).cast::<u32>().read_unaligned() == v
                } else {
                    self.ptr.add(p).read() == v as u8
                }
            };
            if !ok {
                panic!("block of {} bytes at {:p} corrupted (mark {k})", self.size, self.ptr);
            }
        }
    }
    #[inline]
    pub fn check(&self) {
        self.check_below(self.size)
    }
    /// Checks, frees, returns the tag (for the checksum).
    #[inline]
    pub fn free(self) -> u32 {
        self.check();
        unsafe { std::alloc::dealloc(self.ptr, Layout::from_size_align_unchecked(self.size, self.align)) };
        self.tag
    }
    /// Reallocates to `new_size`, checks the kept marks, re-marks with a new tag.
    /// `false` (block unchanged) on null.
    #[inline]
    pub fn try_realloc(&mut self, new_size: usize) -> bool {
        self.check();
        let old = *self;
        let layout = unsafe { Layout::from_size_align_unchecked(self.size, self.align) };
        let p = unsafe { std::alloc::realloc(self.ptr, layout, new_size) };
        if p.is_null() {
            return false;
        }
        if p as usize & (self.align - 1) != 0 {
            panic!("realloc to {new_size}, align {} returned misaligned {p:p}", self.align);
        }
        Blk { ptr: p, ..old }.check_below(old.size.min(new_size));
        self.ptr = p;
        self.size = new_size;
        self.tag = self.tag.wrapping_mul(0x2C1B_3C6D).wrapping_add(0x297A_2D39);
        self.mark();
        true
    }
    #[inline]
    pub fn realloc(&mut self, new_size: usize) {
        if !self.try_realloc(new_size) {
            panic!("realloc({}, align {}, to {new_size}) returned null", self.size, self.align);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Random actions, with the parameters of talc's WebAssembly benchmark (wasm-perf):
// 100,000 actions per iteration, each one of (equally likely) allocate 100..=1000 bytes
// with alignment 8 << (tz(u16) / 2), free a random live block, or realloc a random live
// block to 100..=10000 bytes; every live block is freed at the end of an iteration.

pub const RA_ACTIONS: usize = 100_000;

#[no_mangle]
pub extern "C" fn wl_random_actions(seed: u32, iters: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let mut v: Vec<Blk> = Vec::with_capacity(10_000);
    for _ in 0..iters {
        let mut score = 0;
        while score < RA_ACTIONS {
            match rng.below(3) {
                0 => {
                    let size = rng.range(100, 1000);
                    let align = 8usize << (rng.u16().trailing_zeros() / 2);
                    let tag = rng.u32();
                    v.push(Blk::new(size, align, tag));
                    score += 1;
                }
                1 => {
                    if !v.is_empty() {
                        let i = rng.below(v.len());
                        h.add(v.swap_remove(i).free() as u64);
                        score += 1;
                    }
                }
                _ => {
                    if !v.is_empty() {
                        let i = rng.below(v.len());
                        let new_size = rng.range(100, 10_000);
                        v[i].realloc(new_size);
                        score += 1;
                    }
                }
            }
        }
        h.add(v.len() as u64);
        for b in v.drain(..) {
            h.add(b.free() as u64);
        }
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 2. Growth by realloc: a Vec<u32> pushed to `mib` MiB, a String pushed alongside it
// (about half that), and 64 Vec<u8> grown round-robin to `mib`/4 MiB in all; all contents
// are verified by replaying the generator, then dropped. `reps` times, so the second
// repetition shows whether freed big blocks are reused (peak memory).

enum Ev {
    Word(u32),
    Char(u8),
    Byte(usize, u8),
}

fn growth_events(seed: u32, mib: usize, mut sink: impl FnMut(Ev)) {
    let mut rng = Rng::new(seed);
    let words = (mib << 20) / 4;
    let per_vec = (mib << 20) / 4 / 64;
    let mut filled = [0usize; 64];
    for i in 0..words {
        let x = rng.u32();
        sink(Ev::Word(x));
        if i % 4 == 0 {
            for j in 0..(x % 16 + 1) {
                sink(Ev::Char(b'a' + ((x >> j) % 26) as u8));
            }
        }
        let k = (x >> 26) as usize;
        if filled[k] < per_vec {
            filled[k] += 1;
            sink(Ev::Byte(k, x as u8));
        }
    }
}

#[no_mangle]
pub extern "C" fn wl_vec_growth(seed: u32, mib: u32, reps: u32) -> u32 {
    let mut h = Hash::new();
    for r in 0..reps {
        let seed = seed.wrapping_add(r);
        let mut words: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut vecs: Vec<Vec<u8>> = (0..64).map(|_| Vec::new()).collect();
        growth_events(seed, mib as usize, |e| match e {
            Ev::Word(x) => words.push(x),
            Ev::Char(c) => text.push(c as char),
            Ev::Byte(k, b) => vecs[k].push(b),
        });
        let (mut wi, mut ti, mut vi) = (0usize, 0usize, [0usize; 64]);
        let bytes = text.as_bytes();
        growth_events(seed, mib as usize, |e| {
            let ok = match e {
                Ev::Word(x) => {
                    wi += 1;
                    words.get(wi - 1) == Some(&x)
                }
                Ev::Char(c) => {
                    ti += 1;
                    bytes.get(ti - 1) == Some(&c)
                }
                Ev::Byte(k, b) => {
                    vi[k] += 1;
                    vecs[k].get(vi[k] - 1) == Some(&b)
                }
            };
            if !ok {
                panic!("vec_growth: contents differ from what was pushed");
            }
        });
        if wi != words.len() || ti != bytes.len() || (0..64).any(|k| vi[k] != vecs[k].len()) {
            panic!("vec_growth: lengths differ");
        }
        h.add(words.len() as u64);
        h.add(text.len() as u64);
        h.add(words[words.len() / 3] as u64);
        h.bytes(&bytes[bytes.len() - 64..]);
        for v in &vecs {
            h.add(v.len() as u64);
        }
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 3. Small-object churn: a BTreeMap<u32, Box<[u8]>> and a HashMap<u64, Box<[u8]>> with
// 8..=256-byte values over 16,384 keys each (insert/replace/remove), plus a ring of 4,096
// Strings of 10..=64 bytes made with format!. Values are verified when replaced/removed.

type Fixed = BuildHasherDefault<DefaultHasher>;
const CHURN_KEYS: usize = 1 << 14;

#[inline]
fn fill_val(key: u64, len: usize) -> Box<[u8]> {
    let base = (key as u32).wrapping_mul(131).wrapping_add(len as u32 * 7);
    (0..len).map(|j| base.wrapping_add(j as u32 * 31) as u8).collect()
}

#[inline]
fn check_val(key: u64, v: &[u8]) -> u64 {
    let base = (key as u32).wrapping_mul(131).wrapping_add(v.len() as u32 * 7);
    for (j, &b) in v.iter().enumerate() {
        if b != base.wrapping_add(j as u32 * 31) as u8 {
            panic!("churn: value of key {key} ({} bytes) corrupted at {j}", v.len());
        }
    }
    key.wrapping_mul(257) ^ v.len() as u64
}

fn ring_string(x: u32) -> String {
    let n = 2 + (x % 55) as usize;
    let mut s = format!("{x:08x}");
    s.extend((0..n).map(|j| (b'a' + ((x as usize + j * 7) % 26) as u8) as char));
    s
}

fn check_ring(s: &str) -> u64 {
    if s.is_empty() {
        return 0;
    }
    let x = u32::from_str_radix(&s[..8], 16).unwrap_or(0);
    if ring_string(x) != s {
        panic!("churn: string corrupted");
    }
    x as u64
}

#[no_mangle]
pub extern "C" fn wl_churn(seed: u32, ops: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let mut bt: BTreeMap<u32, Box<[u8]>> = BTreeMap::new();
    let mut hm: HashMap<u64, Box<[u8]>, Fixed> = HashMap::default();
    let mut ring: Vec<String> = (0..4096).map(|_| String::new()).collect();
    for i in 0..ops as usize {
        let r = rng.u32();
        let key = rng.below(CHURN_KEYS);
        match r % 8 {
            0..=2 => {
                let len = rng.range(8, 256);
                if let Some(old) = bt.insert(key as u32, fill_val(key as u64, len)) {
                    h.add(check_val(key as u64, &old));
                }
            }
            3 => {
                if let Some(old) = bt.remove(&(key as u32)) {
                    h.add(check_val(key as u64, &old));
                }
            }
            4 | 5 => {
                let k = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let len = rng.range(8, 256);
                if let Some(old) = hm.insert(k, fill_val(k, len)) {
                    h.add(check_val(k, &old));
                }
            }
            6 => {
                let k = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                if let Some(old) = hm.remove(&k) {
                    h.add(check_val(k, &old));
                }
            }
            _ => {
                let s = ring_string(rng.u32());
                let old = std::mem::replace(&mut ring[i % 4096], s);
                h.add(check_ring(&old));
            }
        }
    }
    h.add(bt.len() as u64);
    h.add(hm.len() as u64);
    for (k, v) in &bt {
        h.add(check_val(*k as u64, v));
    }
    let mut sum = 0u64; // HashMap order is not part of the checksum
    for (k, v) in &hm {
        sum = sum.wrapping_add(check_val(*k, v));
    }
    h.add(sum);
    for s in &ring {
        h.add(check_ring(s));
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 4. serde_json: a JSON document of `kib` KiB is generated (records with integers, floats,
// strings with escapes, nested objects/arrays; keys in sorted order), then `reps` times
// parsed into a serde_json::Value and serialized again; the output must equal the input.

fn json_str(rng: &mut Rng, s: &mut String) {
    const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     ";
    s.push('"');
    for _ in 0..rng.range(3, 24) {
        match rng.below(40) {
            0 => s.push_str("\\\""),
            1 => s.push_str("\\\\"),
            2 => s.push_str("\\n"),
            3 => s.push('é'),
            _ => s.push(CH[rng.below(CH.len())] as char),
        }
    }
    s.push('"');
}

fn json_float(rng: &mut Rng, s: &mut String) {
    let f = rng.range(0, 20_000) as f64 - 10_000.0 + 0.25 * rng.range(1, 3) as f64;
    s.push_str(&format!("{f}"));
}

fn gen_json(seed: u32, target: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(target + 1024);
    s.push('[');
    let mut id = 0u64;
    while s.len() < target {
        if id > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":{id},\"name\":"));
        json_str(&mut rng, &mut s);
        s.push_str(",\"nested\":{\"a\":[");
        for j in 0..rng.below(8) {
            if j > 0 {
                s.push(',');
            }
            let x = (rng.u64() as i64) >> rng.below(62);
            s.push_str(&format!("{x}"));
        }
        s.push_str("],\"b\":");
        match rng.below(4) {
            0 => s.push_str("null"),
            1 => s.push_str("true"),
            2 => s.push_str("false"),
            _ => json_float(&mut rng, &mut s),
        }
        s.push_str(",\"c\":");
        json_str(&mut rng, &mut s);
        s.push_str("},\"score\":");
        json_float(&mut rng, &mut s);
        s.push_str(",\"tags\":[");
        for j in 0..rng.below(5) {
            if j > 0 {
                s.push(',');
            }
            json_str(&mut rng, &mut s);
        }
        s.push_str("]}");
        id += 1;
    }
    s.push(']');
    s
}

#[no_mangle]
pub extern "C" fn wl_json(seed: u32, kib: u32, reps: u32) -> u32 {
    let text = gen_json(seed, kib as usize * 1024);
    let mut h = Hash::new();
    h.bytes(text.as_bytes());
    for _ in 0..reps {
        let v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("json: parse failed: {e}"),
        };
        let n = v.as_array().map_or(0, |a| a.len());
        let out = serde_json::to_string(&v).expect("json: serialize failed");
        drop(v);
        if out != text {
            panic!("json: round trip differs");
        }
        h.add(n as u64);
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 5. Fragmentation: n blocks of 48 bytes; free every other one; n/2 blocks of 80 bytes;
// free the rest of the 48s; then big blocks of 64..256 KiB adding up to the 48s' bytes.
// Everything is verified and freed; `reps` times. Peak memory is the figure.

#[no_mangle]
pub extern "C" fn wl_frag(seed: u32, n: u32, reps: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let n = n as usize;
    for _ in 0..reps {
        let mut small: Vec<Blk> = (0..n).map(|_| Blk::new(48, 8, rng.u32())).collect();
        for b in small.iter_mut().skip(1).step_by(2) {
            h.add(core::mem::replace(b, NO_BLK).free() as u64);
        }
        let other: Vec<Blk> = (0..n / 2).map(|_| Blk::new(80, 8, rng.u32())).collect();
        for b in small.drain(..).step_by(2) {
            h.add(b.free() as u64);
        }
        let mut big = Vec::new();
        let mut left = n * 48;
        while left > 0 {
            let size = rng.range(64 << 10, 256 << 10).min(left.max(4096));
            left = left.saturating_sub(size);
            big.push(Blk::new(size, 8, rng.u32()));
        }
        for b in other.into_iter().chain(big) {
            h.add(b.free() as u64);
        }
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 6. Heap efficiency as talc defines it (benches/src/heap_efficiency.rs there): until the
// first failure, 50% allocate (size: cap in 16..10000, size in 4..cap; align: 4 << tz/2),
// 10% free a random block, 40% realloc a random block to 1..100000 bytes; then the bytes
// in use are summed and everything is freed; `rounds` times in the same instance. The
// runner caps memory (an imported memory with a maximum), and divides the sum by
// rounds * (cap - __heap_base). Bookkeeping lives in a static array, not on the heap.

const HE_MAX_ALLOC: usize = 10_000;
const HE_MAX_REALLOC: usize = HE_MAX_ALLOC * 10;
const HE_SLOTS: usize = 1 << 16;
static HE: Racy<[Blk; HE_SLOTS]> = Racy(UnsafeCell::new([NO_BLK; HE_SLOTS]));
static HE_FAILS: AtomicU32 = AtomicU32::new(0);
static HE_FIRST: AtomicUsize = AtomicUsize::new(0);

/// Bytes in use at the first failure of the first round of `wl_heap_eff`.
#[no_mangle]
pub extern "C" fn bench_he_first() -> usize {
    HE_FIRST.load(Relaxed)
}

#[no_mangle]
pub extern "C" fn wl_heap_eff(seed: u32, rounds: u32) -> f64 {
    let mut rng = Rng::new(seed);
    let slots = unsafe { &mut *HE.0.get() };
    let mut used_total = 0f64;
    let mut fails = 0;
    for _ in 0..rounds {
        let mut n = 0usize;
        loop {
            match rng.below(10) {
                0..=4 => {
                    let cap = 16 + rng.below(HE_MAX_ALLOC - 16);
                    let size = 4 + rng.below(cap - 4);
                    let align = core::mem::align_of::<usize>() << (rng.u16().trailing_zeros() / 2);
                    match Blk::try_new(size, align, rng.u32()) {
                        Some(b) if n < HE_SLOTS => {
                            slots[n] = b;
                            n += 1;
                        }
                        Some(_) => panic!("heap_eff: more than {HE_SLOTS} live blocks"),
                        None => break,
                    }
                }
                5 => {
                    if n > 0 {
                        let i = rng.below(n);
                        slots[i].free();
                        slots[i] = slots[n - 1];
                        n -= 1;
                    }
                }
                _ => {
                    if n > 0 {
                        let i = rng.below(n);
                        let new_size = 1 + rng.below(HE_MAX_REALLOC - 1);
                        if !slots[i].try_realloc(new_size) {
                            break;
                        }
                    }
                }
            }
        }
        fails += 1;
        let used = slots[..n].iter().map(|b| b.size).sum::<usize>();
        if fails == 1 {
            HE_FIRST.store(used, Relaxed);
        }
        used_total += used as f64;
        for b in &slots[..n] {
            b.free();
        }
    }
    HE_FAILS.store(fails, Relaxed);
    used_total
}

// ---------------------------------------------------------------------------------------
// 7. Size drift: `phases` phases, each in one size band (cycling 16..64 B, 200..600 B,
// 2..8 KiB, 20..60 KiB). A phase allocates blocks of its band until `mib` MiB of them are
// live, freeing a random one of its blocks at every fifth step; at its end all of the
// phase's blocks are freed in random order. One block in 32 is long-lived instead: it is
// kept for 1 to 4 more phases, so every phase leaves a few scattered survivors behind.
// Peak memory is the figure: memory that stays with one size (class pages that never go
// back) is not there for the next band.

const DRIFT_BANDS: [(usize, usize); 4] = [(16, 64), (200, 600), (2 << 10, 8 << 10), (20 << 10, 60 << 10)];

#[no_mangle]
pub extern "C" fn wl_size_drift(seed: u32, phases: u32, mib: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let target = (mib as usize) << 20;
    // The bookkeeping is reserved once, for the smallest band's count (a mean of 40 B),
    // so that its own growth does not dominate the peak.
    let mut cur: Vec<Blk> = Vec::with_capacity(target / 40 * 9 / 8);
    let mut long: Vec<(Blk, u32)> = Vec::with_capacity(target / 40 / 8); // (block, last phase it lives through)
    for phase in 0..phases {
        let (lo, hi) = DRIFT_BANDS[phase as usize % DRIFT_BANDS.len()];
        let mut live = 0usize;
        while live < target {
            if !cur.is_empty() && rng.below(5) == 0 {
                let b = cur.swap_remove(rng.below(cur.len()));
                live -= b.size;
                h.add(b.free() as u64);
            } else {
                let size = rng.range(lo, hi);
                let b = Blk::new(size, 8, rng.u32());
                if rng.below(32) == 0 {
                    long.push((b, phase + 1 + rng.below(4) as u32));
                } else {
                    live += size;
                    cur.push(b);
                }
            }
        }
        h.add(cur.len() as u64);
        while !cur.is_empty() {
            let b = cur.swap_remove(rng.below(cur.len()));
            h.add(b.free() as u64);
        }
        let mut i = 0;
        while i < long.len() {
            if long[i].1 <= phase {
                h.add(long.swap_remove(i).0.free() as u64);
            } else {
                i += 1;
            }
        }
        h.add(long.len() as u64);
    }
    for (b, _) in long.drain(..) {
        h.add(b.free() as u64);
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 8. A real library: pulldown-cmark. A Markdown document of `kib` KiB is generated
// (sections with headings, paragraphs with emphasis, inline code, links and characters to
// escape, bullet lists with nested items, ordered lists, fenced code, block quotes,
// tables), then `reps` times: rendered to HTML straight from the parser; parsed again
// into an owned event list (`Event::into_static`), every heading given an id made from
// its text, and that list rendered. The HTML is checked by counting its elements
// against what the generator wrote, the second rendering against the first, and the
// checksum hashes the HTML, so it must equal dlmalloc's byte for byte.

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct MdCounts {
    h2: usize,
    h3: usize,
    p: usize,
    li: usize,
    pre: usize,
    code: usize,
    a: usize,
    em: usize,
    strong: usize,
    blockquote: usize,
    table: usize,
    td: usize,
}

const MD_WORDS: &[&str] = &[
    "alloc", "arena", "block", "bitmap", "class", "free", "grow", "heap", "linear", "memory", "page",
    "pointer", "region", "size", "slot", "span", "stack", "table", "wasm", "module", "value", "vector",
    "string", "buffer", "node", "list", "tree", "map", "cache", "line", "word", "byte",
];

fn md_word(rng: &mut Rng) -> &'static str {
    MD_WORDS[rng.below(MD_WORDS.len())]
}

/// A paragraph's text: words with inline elements, lines broken near 72 columns.
fn md_inline(rng: &mut Rng, s: &mut String, c: &mut MdCounts, words: usize) {
    let mut col = 0;
    for i in 0..words {
        let start = s.len();
        if i > 0 {
            if col > 72 {
                s.push('\n');
                col = 0;
            } else {
                s.push(' ');
            }
        }
        match rng.below(24) {
            0 => {
                s.push('*');
                s.push_str(md_word(rng));
                s.push('*');
                c.em += 1;
            }
            1 => {
                s.push_str("**");
                s.push_str(md_word(rng));
                s.push_str("**");
                c.strong += 1;
            }
            2 => {
                let w = md_word(rng);
                let n = rng.below(1000);
                s.push_str(&format!("`{w}_{n}()`"));
                c.code += 1;
            }
            3 => {
                let (w1, w2) = (md_word(rng), md_word(rng));
                let n = rng.below(100_000);
                s.push_str(&format!("[{w1} {w2}](https://example.org/{w1}/{n}?q={w2}&n={n})"));
                c.a += 1;
            }
            4 => s.push_str("a & b"),
            5 => s.push_str("x < y"),
            6 => s.push_str("\"quoted\""),
            7 => s.push_str(&format!("{}", rng.u32())),
            _ => s.push_str(md_word(rng)),
        }
        col += s.len() - start;
    }
}

fn gen_markdown(seed: u32, target: usize) -> (String, MdCounts) {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(target + 4096);
    let mut c = MdCounts::default();
    let mut sec = 0;
    while s.len() < target {
        sec += 1;
        let (w1, w2) = (md_word(&mut rng), md_word(&mut rng));
        s.push_str(&format!("## Section {sec}: the {w1} and the {w2}\n\n"));
        c.h2 += 1;
        for _ in 0..rng.range(1, 3) {
            let n = rng.range(20, 90);
            md_inline(&mut rng, &mut s, &mut c, n);
            s.push_str("\n\n");
            c.p += 1;
        }
        let mut last = usize::MAX;
        for _ in 0..rng.range(1, 4) {
            let kind = rng.below(6);
            if kind == last && (kind == 1 || kind == 2) {
                // Two lists of one kind in a row would merge into one loose list.
                let n = rng.range(5, 15);
                md_inline(&mut rng, &mut s, &mut c, n);
                s.push_str("\n\n");
                c.p += 1;
            }
            last = kind;
            match kind {
                0 => {
                    s.push_str(&format!("### Notes on {} {sec}\n\n", md_word(&mut rng)));
                    c.h3 += 1;
                }
                1 => {
                    for _ in 0..rng.range(2, 6) {
                        s.push_str("- ");
                        let n = rng.range(3, 14);
                        md_inline(&mut rng, &mut s, &mut c, n);
                        s.push('\n');
                        c.li += 1;
                        if rng.below(3) == 0 {
                            for _ in 0..rng.range(1, 3) {
                                s.push_str("  - ");
                                let n = rng.range(2, 8);
                                md_inline(&mut rng, &mut s, &mut c, n);
                                s.push('\n');
                                c.li += 1;
                            }
                        }
                    }
                    s.push('\n');
                }
                2 => {
                    for k in 1..=rng.range(2, 5) {
                        s.push_str(&format!("{k}. "));
                        let n = rng.range(3, 12);
                        md_inline(&mut rng, &mut s, &mut c, n);
                        s.push('\n');
                        c.li += 1;
                    }
                    s.push('\n');
                }
                3 => {
                    s.push_str("```rust\n");
                    for k in 0..rng.range(2, 12) {
                        let (w, n) = (md_word(&mut rng), rng.below(1 << 20));
                        s.push_str(&format!(
                            "let {w}_{k} = if {n} < limit {{ \"{w}\" }} else {{ &rest[{k}..] }};\n"
                        ));
                    }
                    s.push_str("```\n\n");
                    c.pre += 1;
                    c.code += 1;
                }
                4 => {
                    for _ in 0..rng.range(1, 3) {
                        s.push_str("> ");
                        let n = rng.range(5, 12);
                        md_inline(&mut rng, &mut s, &mut c, n);
                        s.push('\n');
                    }
                    s.push('\n');
                    c.blockquote += 1;
                    c.p += 1;
                }
                _ => {
                    s.push_str("| name | size | note |\n|:-----|-----:|------|\n");
                    for _ in 0..rng.range(2, 8) {
                        let (w1, n, w2) = (md_word(&mut rng), rng.below(1 << 16), md_word(&mut rng));
                        s.push_str(&format!("| {w1} | {n} | the {w2} |\n"));
                        c.td += 3;
                    }
                    s.push('\n');
                    c.table += 1;
                }
            }
        }
    }
    (s, c)
}

fn md_count(html: &str) -> MdCounts {
    let n = |pat: &str| html.matches(pat).count();
    MdCounts {
        h2: n("<h2"),
        h3: n("<h3"),
        p: n("<p>"),
        li: n("<li>"),
        pre: n("<pre>"),
        code: n("<code"),
        a: n("<a href=\""),
        em: n("<em>"),
        strong: n("<strong>"),
        blockquote: n("<blockquote>"),
        table: n("<table>"),
        td: n("<td"),
    }
}

#[no_mangle]
pub extern "C" fn wl_markdown(seed: u32, kib: u32, reps: u32) -> u32 {
    use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};
    let (text, want) = gen_markdown(seed, kib as usize * 1024);
    let opts = Options::ENABLE_TABLES;
    let mut h = Hash::new();
    let mut first: Option<(String, String)> = None;
    for _ in 0..reps {
        let mut out = String::new();
        html::push_html(&mut out, Parser::new_ext(&text, opts));
        let got = md_count(&out);
        if got != want {
            panic!("markdown: the HTML has {got:?}, the document {want:?}");
        }
        // Owned events; headings get an id made from their text.
        let mut events: Vec<Event<'static>> = Parser::new_ext(&text, opts).map(Event::into_static).collect();
        let mut ids = 0usize;
        let mut id_bytes = 0usize;
        let mut i = 0;
        while i < events.len() {
            if let Event::Start(Tag::Heading { .. }) = events[i] {
                let mut slug = String::new();
                let mut j = i + 1;
                while !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                    if let Event::Text(t) = &events[j] {
                        for ch in t.chars() {
                            if ch.is_ascii_alphanumeric() {
                                slug.push(ch);
                            } else if !slug.ends_with('-') {
                                slug.push('-');
                            }
                        }
                    }
                    j += 1;
                }
                ids += 1;
                id_bytes += slug.len() + 6; // ` id="` + slug + `"`
                if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                    *id = Some(CowStr::Boxed(slug.into_boxed_str()));
                }
                i = j;
            }
            i += 1;
        }
        let mut out2 = String::new();
        html::push_html(&mut out2, events.into_iter());
        if ids != want.h2 + want.h3
            || out2.matches(" id=\"").count() != ids
            || out2.len() != out.len() + id_bytes
        {
            panic!("markdown: the rendering with heading ids differs");
        }
        match &first {
            None => {
                h.add(text.len() as u64);
                h.bytes(out.as_bytes());
                h.bytes(out2.as_bytes());
                first = Some((out, out2));
            }
            Some((o1, o2)) => {
                if *o1 != out || *o2 != out2 {
                    panic!("markdown: a later rendering differs from the first");
                }
            }
        }
        h.add(ids as u64);
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 9. Small-program footprint: 300 live blocks of 40 sizes from 8 B to 64 KiB (geometric,
// most of them small; 1.40 MiB in all), allocated in a random order and kept. The runner
// reads the memory's size at the end: what a small program pays for its allocator.

const FP_SIZES: [usize; 40] = [
    8, 10, 13, 16, 20, 25, 32, 40, 51, 64, 81, 102, 128, 161, 203, 256, 323, 406, 512, 645, 813, 1024, 1290,
    1625, 2048, 2580, 3251, 4096, 5161, 6502, 8192, 10321, 13004, 16384, 20643, 26008, 32768, 41285, 52016,
    65536,
];
const FP_COUNTS: [usize; 40] = [
    34, 18, 13, 12, 11, 10, 10, 8, 9, 8, 7, 8, 7, 7, 6, 7, 6, 7, 6, 6, 5, 6, 6, 5, 6, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 4, 5, 5, 4, 5, 4,
];
static FP_BLOCKS: Racy<[Blk; 300]> = Racy(UnsafeCell::new([NO_BLK; 300]));

#[no_mangle]
pub extern "C" fn wl_footprint(seed: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    // The order of sizes, shuffled; kept in static arrays so that only the blocks are on the heap.
    let mut order = [0u8; 300];
    let mut n = 0;
    for (k, &c) in FP_COUNTS.iter().enumerate() {
        for _ in 0..c {
            order[n] = k as u8;
            n += 1;
        }
    }
    assert_eq!(n, order.len());
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let blocks = unsafe { &mut *FP_BLOCKS.0.get() };
    let mut live = 0;
    for (b, &k) in blocks.iter_mut().zip(&order) {
        let size = FP_SIZES[k as usize];
        *b = Blk::new(size, 8, rng.u32());
        live += size;
        h.add(size as u64);
    }
    assert_eq!(live, 1_470_665);
    for b in blocks.iter() {
        b.check();
        h.add(b.tag as u64);
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 10. Per operation: small loops of one kind of operation, each recording how many it did
// (`bench_ops`), so the runner reports nanoseconds per operation. The memory is capped by
// the runner (an allocator that never reuses memory runs out instead of growing to GiBs).

static OPS: AtomicUsize = AtomicUsize::new(0);

/// Operations done by the last per-operation workload (`wl_op_*`).
#[no_mangle]
pub extern "C" fn bench_ops() -> usize {
    OPS.load(Relaxed)
}

const PAIR_RING: usize = 64;

#[inline]
fn next_tag(t: u32) -> u32 {
    t.wrapping_mul(0x2C1B_3C6D).wrapping_add(0x297A_2D39)
}

/// `ops` alloc+free pairs of `size` bytes: a FIFO ring of 64 live blocks; each operation
/// frees the oldest block (checking its marks) and allocates its successor in its slot,
/// so every block lives for 64 operations and the live set stays constant.
#[no_mangle]
pub extern "C" fn wl_op_pair(seed: u32, size: u32, ops: u32) -> u32 {
    let size = size as usize;
    let mut h = Hash::new();
    let mut tag = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut ring = [NO_BLK; PAIR_RING];
    for b in ring.iter_mut() {
        tag = next_tag(tag);
        *b = Blk::new(size, 8, tag);
    }
    for i in 0..ops as usize {
        let slot = &mut ring[i % PAIR_RING];
        h.add(slot.free() as u64);
        tag = next_tag(tag);
        *slot = Blk::new(size, 8, tag);
    }
    for b in ring {
        h.add(b.free() as u64);
    }
    OPS.store(ops as usize, Relaxed);
    h.finish()
}

/// Free in another order: `reps` times, `n` blocks of mixed small sizes (8..=1024 B,
/// a doubling band 8 << k chosen uniformly, then uniform in it) are allocated, shuffled
/// (Fisher-Yates) and freed in that order. One operation = one block's alloc and free.
#[no_mangle]
pub extern "C" fn wl_op_shuffle(seed: u32, n: u32, reps: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let n = n as usize;
    let mut blocks: Vec<Blk> = Vec::with_capacity(n);
    for _ in 0..reps {
        for _ in 0..n {
            let lo = 8usize << rng.below(7);
            blocks.push(Blk::new(rng.range(lo, 2 * lo), 8, rng.u32()));
        }
        for i in (1..n).rev() {
            blocks.swap(i, rng.below(i + 1));
        }
        for b in blocks.drain(..) {
            h.add(b.free() as u64);
        }
    }
    OPS.store(n * reps as usize, Relaxed);
    h.finish()
}

/// Realloc chains: `chains` times, one block allocated at 8 B and grown by realloc as a
/// pushed Vec grows, each step by a random factor of 1.5x..2x (in sixteenths), up to
/// 1 MiB (the last step clamped), about 21 steps; then freed. Marks are checked after
/// every move. One operation = one realloc (the chain's alloc and free are in its time).
#[no_mangle]
pub extern "C" fn wl_op_realloc(seed: u32, chains: u32) -> u32 {
    const TOP: usize = 1 << 20;
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let mut steps = 0usize;
    for _ in 0..chains {
        let mut b = Blk::new(8, 8, rng.u32());
        while b.size < TOP {
            let grow = rng.range(24, 32);
            b.realloc((b.size * grow / 16).min(TOP));
            steps += 1;
        }
        h.add(b.free() as u64);
    }
    h.add(steps as u64);
    OPS.store(steps, Relaxed);
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 11. UI-like: every frame, widgets are built from short strings and small vectors
// (`format!` labels, text grown by `push_str`, a Vec of small attribute structs grown by
// push) and put on a timing wheel with a random lifetime (most 1..4 frames, one in 8 up
// to 63); a few live widgets are edited (text and attributes grow); every live widget is
// rendered to a line (`format!` per attribute), the lines joined into one String, which
// is hashed, and all dropped; expired widgets are checked and dropped. Each widget keeps
// a hash of its contents, checked when it is edited and when it is dropped.

#[derive(Clone, Copy)]
struct UiAttr {
    key: u16,
    flags: u16,
    val: u32,
}

struct Widget {
    id: u32,
    kind: &'static str,
    label: String,
    text: String,
    attrs: Vec<UiAttr>,
    sum: u64,
}

const UI_KINDS: &[&str] =
    &["button", "label", "row", "column", "icon", "input", "list-item", "tooltip", "badge", "panel"];
const UI_WHEEL: usize = 64;

impl Widget {
    fn new(rng: &mut Rng, id: u32) -> Widget {
        let kind = UI_KINDS[rng.below(UI_KINDS.len())];
        let label = format!("{kind}-{id}");
        let mut text = String::new();
        for i in 0..rng.below(9) {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(md_word(rng));
        }
        let mut attrs = Vec::new();
        for _ in 0..rng.below(10) {
            attrs.push(UiAttr { key: rng.below(64) as u16, flags: rng.u16(), val: rng.u32() });
        }
        let mut w = Widget { id, kind, label, text, attrs, sum: 0 };
        w.sum = w.contents();
        w
    }
    fn contents(&self) -> u64 {
        let mut h = Hash::new();
        h.add(self.id as u64);
        h.bytes(self.label.as_bytes());
        h.bytes(self.text.as_bytes());
        for a in &self.attrs {
            h.add(a.key as u64 | (a.flags as u64) << 16 | (a.val as u64) << 32);
        }
        h.0
    }
    fn check(&self) {
        if self.contents() != self.sum {
            panic!("ui: widget {} corrupted", self.id);
        }
    }
    fn render(&self) -> String {
        let mut s = format!("<{} id=\"{}\"", self.kind, self.label);
        for a in &self.attrs {
            s.push_str(&format!(" data-{}=\"{:x}\"", a.key, a.val));
            if a.flags & 1 != 0 {
                s.push_str(" hidden");
            }
        }
        s.push('>');
        s.push_str(&self.text);
        s.push_str("</");
        s.push_str(self.kind);
        s.push('>');
        s
    }
}

#[no_mangle]
pub extern "C" fn wl_ui(seed: u32, frames: u32, per_frame: u32) -> u32 {
    let mut rng = Rng::new(seed);
    let mut h = Hash::new();
    let per_frame = per_frame as usize;
    let mut wheel: Vec<Vec<Widget>> = (0..UI_WHEEL).map(|_| Vec::new()).collect();
    let mut next_id = 0u32;
    for f in 0..frames as usize {
        for w in wheel[f % UI_WHEEL].drain(..) {
            w.check();
            h.add(w.sum);
        }
        for _ in 0..rng.range(per_frame / 2, per_frame * 3 / 2) {
            let life = if rng.below(8) == 0 { rng.range(1, UI_WHEEL - 1) } else { rng.range(1, 4) };
            wheel[(f + life) % UI_WHEEL].push(Widget::new(&mut rng, next_id));
            next_id += 1;
        }
        for _ in 0..per_frame / 8 {
            let s = rng.below(UI_WHEEL);
            if wheel[s].is_empty() {
                continue;
            }
            let i = rng.below(wheel[s].len());
            let w = &mut wheel[s][i];
            w.check();
            w.text.push(' ');
            w.text.push_str(md_word(&mut rng));
            w.attrs.push(UiAttr { key: rng.below(64) as u16, flags: rng.u16(), val: rng.u32() });
            w.sum = w.contents();
        }
        let lines: Vec<String> = wheel.iter().flatten().map(Widget::render).collect();
        let out = lines.join("\n");
        h.add(lines.len() as u64);
        h.bytes(out.as_bytes());
    }
    for w in wheel.iter_mut().flat_map(|v| v.drain(..)) {
        w.check();
        h.add(w.sum);
    }
    h.add(next_id as u64);
    h.finish()
}

// ---------------------------------------------------------------------------------------
// 12. A real library: regex. A log of `kib` KiB is generated (lines of a date, a time, a
// level and tokens: words, e-mail addresses, IPv4 addresses, hex numbers, key=value pairs,
// capitalised words, plain numbers, quoted phrases), counting what it writes. Then `reps`
// times: 9 patterns are compiled, each one's matches over the log counted, a RegexSet of
// them run over every line, every key=value pair captured into owned Strings and tallied
// per key in a BTreeMap, and the e-mail addresses replaced. Every count, the sum of the
// values and the replaced text's length must be what the generator wrote.

const RX_PATTERNS: [&str; 9] = [
    r"\b\d{4}-\d{2}-\d{2}\b",
    r"\b\d{2}:\d{2}:\d{2}\b",
    r"\b[a-z]+(?:\.[a-z]+)?@[a-z]+\.(?:com|org|net)\b",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
    r"\b0x[0-9a-f]+\b",
    r"\b([a-z]+)=(\d+)\b",
    r"\b[A-Z][a-z]+\b",
    r"(?i)\berror\b",
    r#""[^"\n]*""#,
];
const RX_DATE: usize = 0;
const RX_TIME: usize = 1;
const RX_EMAIL: usize = 2;
const RX_IP: usize = 3;
const RX_HEX: usize = 4;
const RX_KV: usize = 5;
const RX_CAP: usize = 6;
const RX_ERROR: usize = 7;
const RX_QUOTED: usize = 8;

const RX_WORDS: &[&str] =
    &["alloc", "block", "cache", "free", "grow", "heap", "page", "span", "slot", "table", "error", "retry"];
const RX_KEYS: [&str; 6] = ["size", "count", "port", "len", "retries", "depth"];
const RX_NAMES: &[&str] = &["ada", "alan", "grace", "linus", "barbara", "ken"];
const RX_DOMAINS: &[&str] = &["example", "mail", "corp"];
const RX_TLDS: &[&str] = &["com", "org", "net"];
const RX_CAPS: &[&str] = &["Node", "Vector", "Buffer", "Arena"];
const RX_LEVELS: &[&str] = &["Info", "Warn", "Error", "Debug"];

struct RxWant {
    count: [usize; 9],
    lines_with: [usize; 9],
    lines: usize,
    kv_sum: u64,
    kv_per_key: [usize; 6],
    email_bytes: usize,
}

fn gen_log(seed: u32, target: usize) -> (String, RxWant) {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(target + 256);
    let mut w =
        RxWant { count: [0; 9], lines_with: [0; 9], lines: 0, kv_sum: 0, kv_per_key: [0; 6], email_bytes: 0 };
    while s.len() < target {
        let mut line = [0usize; 9];
        let (y, mo, d) = (rng.range(2000, 2030), rng.range(1, 12), rng.range(1, 28));
        let (hh, mm, ss) = (rng.below(24), rng.below(60), rng.below(60));
        let level = RX_LEVELS[rng.below(RX_LEVELS.len())];
        s.push_str(&format!("{y}-{mo:02}-{d:02} {hh:02}:{mm:02}:{ss:02} [{level}]"));
        line[RX_DATE] += 1;
        line[RX_TIME] += 1;
        line[RX_CAP] += 1;
        if level == "Error" {
            line[RX_ERROR] += 1;
        }
        for _ in 0..rng.range(4, 16) {
            s.push(' ');
            match rng.below(16) {
                0 => {
                    let start = s.len();
                    s.push_str(RX_NAMES[rng.below(RX_NAMES.len())]);
                    if rng.below(2) == 0 {
                        s.push('.');
                        s.push_str(RX_NAMES[rng.below(RX_NAMES.len())]);
                    }
                    s.push('@');
                    s.push_str(RX_DOMAINS[rng.below(RX_DOMAINS.len())]);
                    s.push('.');
                    s.push_str(RX_TLDS[rng.below(RX_TLDS.len())]);
                    w.email_bytes += s.len() - start;
                    line[RX_EMAIL] += 1;
                }
                1 => {
                    let (a, b, c, d) = (rng.below(256), rng.below(256), rng.below(256), rng.below(256));
                    s.push_str(&format!("{a}.{b}.{c}.{d}"));
                    line[RX_IP] += 1;
                }
                2 => {
                    s.push_str(&format!("0x{:x}", rng.u32()));
                    line[RX_HEX] += 1;
                }
                3 | 4 => {
                    let k = rng.below(RX_KEYS.len());
                    let v = rng.below(100_000);
                    s.push_str(&format!("{}={v}", RX_KEYS[k]));
                    line[RX_KV] += 1;
                    w.kv_sum += v as u64;
                    w.kv_per_key[k] += 1;
                }
                5 => {
                    s.push_str(RX_CAPS[rng.below(RX_CAPS.len())]);
                    line[RX_CAP] += 1;
                }
                6 => s.push_str(&format!("{}", rng.u32())),
                7 => {
                    s.push('"');
                    for i in 0..rng.range(1, 4) {
                        if i > 0 {
                            s.push(' ');
                        }
                        let word = RX_WORDS[rng.below(RX_WORDS.len())];
                        s.push_str(word);
                        if word == "error" {
                            line[RX_ERROR] += 1;
                        }
                    }
                    s.push('"');
                    line[RX_QUOTED] += 1;
                }
                _ => {
                    let word = RX_WORDS[rng.below(RX_WORDS.len())];
                    s.push_str(word);
                    if word == "error" {
                        line[RX_ERROR] += 1;
                    }
                }
            }
            if rng.below(8) == 0 {
                s.push(',');
            }
        }
        s.push('\n');
        w.lines += 1;
        for (k, &n) in line.iter().enumerate() {
            w.count[k] += n;
            w.lines_with[k] += (n > 0) as usize;
        }
    }
    (s, w)
}

#[no_mangle]
pub extern "C" fn wl_regex(seed: u32, kib: u32, reps: u32) -> u32 {
    use regex::{Regex, RegexSet};
    let (text, want) = gen_log(seed, kib as usize * 1024);
    let mut h = Hash::new();
    h.add(text.len() as u64);
    for rep in 0..reps {
        let res: Vec<Regex> =
            RX_PATTERNS.iter().map(|p| Regex::new(p).expect("regex: bad pattern")).collect();
        let set = RegexSet::new(RX_PATTERNS).expect("regex: bad set");
        for (k, re) in res.iter().enumerate() {
            let n = re.find_iter(&text).count();
            if n != want.count[k] {
                panic!("regex: pattern {k} matched {n} times, the generator wrote {}", want.count[k]);
            }
        }
        let mut lines_with = [0usize; 9];
        let mut lines = 0;
        let mut pairs: Vec<(String, u64)> = Vec::new();
        for line in text.lines() {
            lines += 1;
            for k in set.matches(line).iter() {
                lines_with[k] += 1;
            }
            for c in res[RX_KV].captures_iter(line) {
                let v = c[2].parse::<u64>().expect("regex: value");
                pairs.push((c[1].to_string(), v));
            }
        }
        if lines != want.lines || lines_with != want.lines_with {
            panic!("regex: RegexSet line counts {lines_with:?}, the generator wrote {:?}", want.lines_with);
        }
        let mut per_key: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for (k, v) in pairs {
            let e = per_key.entry(k).or_default();
            e.0 += 1;
            e.1 += v;
        }
        let sum = per_key.values().map(|e| e.1).sum::<u64>();
        let per = RX_KEYS.map(|k| per_key.get(k).map_or(0, |e| e.0));
        if sum != want.kv_sum || per != want.kv_per_key {
            panic!("regex: key=value pairs differ from the generator's");
        }
        let replaced = res[RX_EMAIL].replace_all(&text, "<email>");
        let n = want.count[RX_EMAIL];
        if replaced.len() != text.len() - want.email_bytes + 7 * n || replaced.matches("<email>").count() != n
        {
            panic!("regex: replacing the e-mail addresses gave {} bytes", replaced.len());
        }
        if rep == 0 {
            h.bytes(replaced.as_bytes());
            for e in per_key.values() {
                h.add(e.0 as u64);
                h.add(e.1);
            }
        }
        h.add(lines_with.iter().sum::<usize>() as u64);
    }
    h.finish()
}
