//! Replays the benchmark workloads on the host through `WasmAllocator::with_memory(Region)`
//! (or, with `--features dlmalloc`, dlmalloc over mmap), for `valgrind --tool=callgrind`.
//!
//!   prof <workload> [args...]      workloads: random-actions ITERS, churn OPS, json KIB REPS,
//!                                  vec-growth MIB REPS, markdown KIB REPS, frag N REPS,
//!                                  size-drift PHASES MIB, small-churn OPS, strings N
//!
//! The allocator is behind three `#[inline(never)]` functions, `prof_alloc`, `prof_dealloc`
//! and `prof_realloc`, that do nothing else: their inclusive cost in callgrind is the
//! allocator's (realloc's includes its copy). Calls are counted around them, and printed
//! at the end with the share of reallocs that moved the block.
#![allow(dead_code, static_mut_refs, clippy::all)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod wl {
    include!(concat!(env!("OUT_DIR"), "/workloads.rs"));
}

// ---------------------------------------------------------------------------------------
// The allocator under test.

#[cfg(not(feature = "dlmalloc"))]
mod under_test {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::mem::MaybeUninit;
    use wasm_alloc::{Region, WasmAllocator, PAGE_SIZE};
    /// 4096 pages (256 MiB), 64 KiB aligned: the region's memory. Taken from the system
    /// allocator on the first allocation (valgrind's loader does not honour a 64 KiB
    /// aligned bss segment), so the allocator lives in a `MaybeUninit` static; the check
    /// is made in `Prof`, outside the measured `prof_*` functions.
    pub const PAGES: usize = 4096;
    pub static mut A: MaybeUninit<WasmAllocator<Region>> = MaybeUninit::uninit();
    pub static mut READY: bool = false;
    pub const NAME: &str = "wasm-alloc";

    #[cold]
    #[inline(never)]
    pub fn init() {
        unsafe {
            let base = System.alloc(Layout::from_size_align(PAGES * PAGE_SIZE, PAGE_SIZE).unwrap());
            assert!(!base.is_null() && base as usize % PAGE_SIZE == 0);
            A.write(WasmAllocator::with_memory(Region::new(base, PAGES)));
            READY = true;
        }
    }

    #[inline(always)]
    pub fn get() -> &'static WasmAllocator<Region> {
        unsafe { A.assume_init_ref() }
    }

    #[inline(always)]
    pub fn ensure() {
        if unsafe { !READY } {
            init();
        }
    }
}

#[cfg(feature = "dlmalloc")]
mod under_test {
    pub static A: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
    pub const NAME: &str = "dlmalloc";
    #[inline(always)]
    pub fn get() -> &'static dlmalloc::GlobalDlmalloc {
        &A
    }
    #[inline(always)]
    pub fn ensure() {}
}

#[inline(never)]
#[no_mangle]
pub unsafe extern "C" fn prof_alloc(size: usize, align: usize) -> *mut u8 {
    under_test::get().alloc(Layout::from_size_align_unchecked(size, align))
}

#[inline(never)]
#[no_mangle]
pub unsafe extern "C" fn prof_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    under_test::get().alloc_zeroed(Layout::from_size_align_unchecked(size, align))
}

#[inline(never)]
#[no_mangle]
pub unsafe extern "C" fn prof_dealloc(ptr: *mut u8, size: usize, align: usize) {
    under_test::get().dealloc(ptr, Layout::from_size_align_unchecked(size, align))
}

#[inline(never)]
#[no_mangle]
pub unsafe extern "C" fn prof_realloc(ptr: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
    under_test::get().realloc(ptr, Layout::from_size_align_unchecked(size, align), new)
}

static N: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
const ALLOC: usize = 0;
const ZEROED: usize = 1;
const DEALLOC: usize = 2;
const REALLOC: usize = 3;
const MOVED: usize = 4;
const REALLOC_CLASS_SAME: usize = 5;

#[inline(always)]
fn bump(i: usize) {
    // Single-threaded: a plain load and store, no locked instruction.
    N[i].store(N[i].load(Relaxed) + 1, Relaxed);
}

struct Prof;

unsafe impl GlobalAlloc for Prof {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        under_test::ensure();
        bump(ALLOC);
        prof_alloc(layout.size(), layout.align())
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        under_test::ensure();
        bump(ZEROED);
        prof_alloc_zeroed(layout.size(), layout.align())
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(DEALLOC);
        prof_dealloc(ptr, layout.size(), layout.align())
    }
    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(REALLOC);
        let p = prof_realloc(ptr, layout.size(), layout.align(), new_size);
        if p != ptr {
            bump(MOVED);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Prof = Prof;

// ---------------------------------------------------------------------------------------
// Extra host-only workloads.

/// Small churn: 4096 live blocks of 20 small sizes (8..=160 B, steps of 8); each op frees
/// a random one and allocates a random size in its place.
fn small_churn(ops: usize) -> u64 {
    let mut rng = wl::Rng::new(0x5eed);
    let mut live: Vec<(*mut u8, usize)> = vec![(std::ptr::null_mut(), 0); 4096];
    let mut h = 0u64;
    for _ in 0..ops {
        let i = rng.below(live.len());
        let (p, size) = live[i];
        unsafe {
            if !p.is_null() {
                h = h.wrapping_add(*p as u64);
                std::alloc::dealloc(p, Layout::from_size_align_unchecked(size, 8));
            }
            let size = 8 * (1 + rng.below(20));
            let q = std::alloc::alloc(Layout::from_size_align_unchecked(size, 8));
            *q = size as u8;
            live[i] = (q, size);
        }
    }
    for (p, size) in live {
        if !p.is_null() {
            unsafe { std::alloc::dealloc(p, Layout::from_size_align_unchecked(size, 8)) };
        }
    }
    h
}

/// String building: `n` Strings, each pushed a byte at a time to 16..=4096 bytes; 64 are
/// kept live at a time (round-robin).
fn strings(n: usize) -> u64 {
    let mut rng = wl::Rng::new(0x5eee);
    let mut ring: Vec<String> = (0..64).map(|_| String::new()).collect();
    let mut h = 0u64;
    for i in 0..n {
        let len = rng.range(16, 4096);
        let mut s = String::new();
        for j in 0..len {
            s.push((b'a' + (j % 26) as u8) as char);
        }
        h = h.wrapping_add(s.len() as u64);
        ring[i % 64] = s;
    }
    h
}

fn arg(args: &[String], i: usize, default: u32) -> u32 {
    args.get(i).map_or(default, |a| a.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("random-actions");
    let seed = 0x5eed;
    let ret: u64 = match which {
        "random-actions" => wl::wl_random_actions(seed, arg(&args, 1, 2)) as u64,
        "vec-growth" => wl::wl_vec_growth(seed + 1, arg(&args, 1, 4), arg(&args, 2, 2)) as u64,
        "churn" => wl::wl_churn(seed + 2, arg(&args, 1, 300_000)) as u64,
        "json" => wl::wl_json(seed + 3, arg(&args, 1, 1024), arg(&args, 2, 2)) as u64,
        "frag" => wl::wl_frag(seed + 4, arg(&args, 1, 100_000), arg(&args, 2, 2)) as u64,
        "markdown" => wl::wl_markdown(seed + 6, arg(&args, 1, 256), arg(&args, 2, 2)) as u64,
        "size-drift" => wl::wl_size_drift(seed + 7, arg(&args, 1, 8), arg(&args, 2, 4)) as u64,
        "small-churn" => small_churn(arg(&args, 1, 2_000_000) as usize),
        "strings" => strings(arg(&args, 1, 20_000) as usize),
        other => panic!("unknown workload {other}"),
    };
    let n = |i: usize| N[i].load(Relaxed);
    let ops = n(ALLOC) + n(ZEROED) + n(DEALLOC) + n(REALLOC);
    println!("allocator {} workload {which} checksum {ret:#x}", under_test::NAME);
    println!(
        "ops {ops} alloc {} alloc_zeroed {} dealloc {} realloc {} realloc_moved {} ({:.1} %)",
        n(ALLOC),
        n(ZEROED),
        n(DEALLOC),
        n(REALLOC),
        n(MOVED),
        100.0 * n(MOVED) as f64 / n(REALLOC).max(1) as f64
    );
    #[cfg(feature = "counters")]
    {
        let c = wasm_alloc::prof_counts();
        let names = [
            "refill",
            "refill_new_span",
            "retire",
            "retire_to_pages",
            "link",
            "unlink",
            "pop",
            "push",
            "run_alloc",
            "run_free",
            "realloc_same_class",
            "link_in_refill",
            "unlink_in_pop",
            "link_in_push",
            "realloc_of_run",
            "run_resized_in_place",
        ];
        let list: Vec<String> = names.iter().zip(c).map(|(n, v)| format!("{n} {v}")).collect();
        println!("counters {}", list.join(" "));
    }
    #[cfg(not(feature = "dlmalloc"))]
    {
        let s = under_test::get().stats();
        println!("memory.grow calls {}", s.grow_calls);
    }
}
