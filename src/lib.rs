//! A `no_std` global allocator for `wasm32` that reuses what is freed for any size: size
//! classes four to a doubling, in spans that go back to its own free pages (a bitmap of
//! free 4 KiB units) when they empty, over `memory.grow`. No dependencies beyond `core`.
//!
//! ```no_run
//! #[cfg(target_arch = "wasm32")]
//! #[global_allocator]
//! static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();
//! ```
//!
//! Gate the `static` with `#[cfg(target_arch = "wasm32")]`, so that host builds of the
//! same crate keep their own allocator (off wasm32 it is a compile-time error that says
//! so). It takes no memory until the first allocation; on `wasm32-unknown-unknown` and
//! `wasm32v1-none` it then uses the module's initial heap before it grows memory.
//!
//! | instance | constructor | memory it uses |
//! |---|---|---|
//! | the binary's `#[global_allocator]` | [`WasmAllocator::new`] | the initial heap (on `wasm32-unknown-unknown`, `wasm32v1-none`), then pages it grows |
//! | the same, never growing memory past `n` pages | [`WasmAllocator::with_max_pages`] | as above, up to the cap ([`Capped`]) |
//! | any other instance over wasm's memory (a `&dyn GlobalAlloc` beside the global allocator) | [`WasmAllocator::secondary`] | only pages it grows |
//! | over memory you own (an arena, a static buffer, host tests) | [`WasmAllocator::with_memory`] over a [`Region`] | only that memory |
//!
//! [`PageAllocator`] is the page layer alone, for programs that only make a few large
//! allocations.
//!
//! # Out of memory
//! Every allocation that cannot be served returns null, and every block stays intact:
//! at wasm32's 4 GiB, at a maximum the host or the linker set, and at a cap of your own
//! ([`Capped`], [`WasmAllocator::with_max_pages`]). Freed memory serves any size again.
//! Wasm memory never shrinks, so what is freed goes back to the allocator's own free
//! pages, not to the host.
//!
//! # Where memory went
//! [`WasmAllocator::stats`] returns [`Stats`]: bytes obtained, free, in use by blocks and
//! kept for the allocator itself, the memory's size and cap, and per size class
//! ([`CLASSES`] of them) its spans and bytes. `in_use_bytes` counts blocks only, so in a
//! wasm-bindgen-test suite it makes a leak check: on one thread, the figure before and
//! after a piece of work that frees what it allocates agrees. Declare the static `pub`
//! in your library and `use my_lib::ALLOC;` in each test file (a test file that names
//! nothing of the library does not link it, and runs on Rust's default allocator).
//!
//! # Features
//! - `checked`: verifies every pointer given to `dealloc` and `realloc` (foreign,
//!   interior, double free) and poisons freed slots (writes after free); a misuse is
//!   reported with the address and layout, then the program aborts. For test builds:
//!   `[target.'cfg(target_arch = "wasm32")'.dev-dependencies]`
//!   `wasm-alloc = { version = "0.1", features = ["checked"] }`.
//!
//! # Targets
//! `wasm32-unknown-unknown` (with or without `atomics`), `wasm32v1-none`,
//! `wasm32-wasip1` and `wasm32-wasip2` (where it only grows memory: wasi-libc's `malloc`
//! owns the initial heap; on wasip2 also [`wasip2_cabi_realloc_over_libc!`]).
//! `wasm32-unknown-emscripten` and `wasm64` are refused at compile time with the reason.
//! On native hosts only [`Region`]s work.
//!
//! The [repository's README](https://github.com/wasm-alloc/wasm-alloc#readme) has the
//! benchmark against dlmalloc, talc, rlsf and others (time, peak memory, code size), the
//! design, the checked mode's coverage, and how the crate is tested.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(all(test, not(target_arch = "wasm32")))]
extern crate std;

// The targets that are refused, rather than built into an allocator that returns null or
// hands memory out twice. See the README's "Targets".
#[cfg(target_arch = "wasm64")]
compile_error!(
    "wasm-alloc does not support wasm64 (memory64): its memory 0 backend uses \
     core::arch::wasm32, and wasm64's memory intrinsics are unstable. Use \
     wasm32-unknown-unknown, or Rust's default allocator on wasm64"
);
#[cfg(target_os = "emscripten")]
compile_error!(
    "wasm-alloc does not support wasm32-unknown-emscripten: emscripten's sbrk takes all \
     memory above its break as its own, so pages grown by another allocator would be \
     handed out twice. Keep emscripten's malloc (Rust's default allocator there)"
);

mod checked;
mod class;
mod global;
mod heap;
mod lock;
mod memory;
mod page;
mod wasip2;

use core::alloc::{GlobalAlloc, Layout};

pub use class::{ClassStats, CLASSES};
pub use memory::{Capped, Memory, Region, WasmMemory, PAGE_LIMIT, PAGE_SIZE};

use class::SizeClasses;
use global::Locked;
use heap::{ClassHeap, RunHeap};
use page::UNIT;

/// The allocator: size classes of 8 B to 14 KiB in spans that go back when they empty,
/// over a bitmap of free 4 KiB units, over a [`Memory`] (by default wasm's memory 0).
///
/// # Example
/// ```no_run
/// #[cfg(target_arch = "wasm32")]
/// #[global_allocator]
/// static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();
/// # fn main() {}
/// ```
pub struct WasmAllocator<M: Memory = WasmMemory> {
    heap: Locked<ClassHeap<M>>,
}

impl WasmAllocator<WasmMemory> {
    /// The module's allocator over wasm's memory 0, for `#[global_allocator]`. It takes no
    /// memory until the first allocation, and then first uses the initial heap (on
    /// `wasm32-unknown-unknown`; see [`WasmMemory::new`]).
    ///
    /// # Panics
    /// Off wasm32, where there is no memory 0: in a `static`, such as a
    /// `#[global_allocator]`, that is a compile-time error naming the cause. Gate the
    /// static with `#[cfg(target_arch = "wasm32")]`; on a host, [`WasmAllocator::with_memory`]
    /// over a [`Region`] works.
    #[track_caller]
    pub const fn new() -> Self {
        wasm32_only();
        Self::with_memory(WasmMemory::new())
    }

    /// An allocator over wasm's memory 0 that is not the module's `#[global_allocator]`,
    /// such as one a `no_std` crate holds as `&dyn GlobalAlloc` beside whatever global
    /// allocator the binary has: it uses only pages its own `memory.grow` calls return
    /// (see [`WasmMemory::secondary`]).
    ///
    /// # Example
    /// ```no_run
    /// # #[cfg(target_arch = "wasm32")] {
    /// use core::alloc::GlobalAlloc;
    /// static LOCAL: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::secondary();
    /// let heap: &dyn GlobalAlloc = &LOCAL;
    /// # }
    /// ```
    ///
    /// # Panics
    /// Off wasm32, as [`WasmAllocator::new`] does.
    #[track_caller]
    pub const fn secondary() -> Self {
        wasm32_only();
        Self::with_memory(WasmMemory::secondary())
    }
}

impl WasmAllocator<Capped<WasmMemory>> {
    /// The module's allocator over wasm's memory 0, as [`WasmAllocator::new`], that never
    /// grows memory past `max_pages` pages (64 KiB each) in all: at that size every
    /// allocation that needs more memory returns null, every block stays intact, and
    /// what is freed serves again. The static data, the stack and pages other code grew
    /// count toward the cap (see [`Capped`]); `stats()` reports it.
    ///
    /// # Example
    /// ```no_run
    /// // A 16 MiB memory budget (256 pages of 64 KiB).
    /// #[cfg(target_arch = "wasm32")]
    /// #[global_allocator]
    /// static ALLOC: wasm_alloc::WasmAllocator<wasm_alloc::Capped> =
    ///     wasm_alloc::WasmAllocator::with_max_pages(256);
    /// # fn main() {}
    /// ```
    ///
    /// # Panics
    /// Off wasm32, as [`WasmAllocator::new`] does.
    #[track_caller]
    pub const fn with_max_pages(max_pages: usize) -> Self {
        wasm32_only();
        Self::with_memory(Capped::new(WasmMemory::new(), max_pages))
    }
}

/// Stops an allocator over memory 0 from being built where there is none. In a `static`
/// (where a `#[global_allocator]` is built) the panic is a compile-time error; without
/// it, a host binary would compile and then abort at its first allocation ("memory
/// allocation of N bytes failed"), which names no cause.
#[track_caller]
const fn wasm32_only() {
    if cfg!(not(target_arch = "wasm32")) {
        panic!(
            "wasm-alloc: an allocator over wasm's memory 0 (WasmAllocator::new, ::secondary, \
             ::with_max_pages, PageAllocator::new, ::secondary) exists only on wasm32. Put the \
             #[global_allocator] static under #[cfg(target_arch = \"wasm32\")], or use \
             with_memory(Region) on this target"
        );
    }
}

/// Off wasm32, a `#[global_allocator]` over memory 0 does not compile (E0080: the
/// evaluation of the static panicked, with [`wasm32_only`]'s message):
/// ```compile_fail,E0080
/// #[global_allocator]
/// static ALLOC: wasm_alloc::WasmAllocator = wasm_alloc::WasmAllocator::new();
/// fn main() {}
/// ```
/// and neither does a secondary one:
/// ```compile_fail,E0080
/// static LOCAL: wasm_alloc::PageAllocator = wasm_alloc::PageAllocator::secondary();
/// fn main() {}
/// ```
#[cfg(all(doctest, not(target_arch = "wasm32")))]
pub struct OffWasm32AGlobalAllocatorIsACompileError;

impl Default for WasmAllocator<WasmMemory> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Memory> WasmAllocator<M> {
    /// An allocator over any [`Memory`], such as a [`Region`] of memory the caller owns.
    pub const fn with_memory(memory: M) -> Self {
        WasmAllocator { heap: Locked::new(ClassHeap::new(memory)) }
    }

    /// Where the memory went: bytes obtained from memory and free in the page layer,
    /// and for each size class its spans and the bytes they hold and have in use.
    /// Computed on demand by walking the bitmap and the lists of spans with room
    /// (nothing is counted on the allocation fast path), so call it when you want to
    /// know, not in a loop.
    pub fn stats(&self) -> Stats {
        let (pages, classes) = self.heap.with(|heap| (PageFigures::of(&heap.runs), heap.classes.counts()));
        Stats::new(pages, core::array::from_fn(|class| classes[class].stats(class)))
    }
}

impl<M: Memory> WasmAllocator<M> {
    /// Debug builds only, for tests and fuzzers: checks the page map's and the size
    /// classes' invariants (see `PageMap::check` and `SizeClasses::check`), walking every
    /// free list. `Err` names the first that does not hold. The check runs under the
    /// lock and returns its finding, so a caller's assertion never panics under it.
    #[cfg(any(debug_assertions, test))]
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.heap.with(|heap| {
            heap.runs.pages.check(&heap.runs.memory)?;
            heap.classes.check(&heap.runs.memory, &heap.runs.pages)
        })
    }
}

// SAFETY: blocks come from the size classes (slots at least the layout's size, aligned to
// its alignment: `class_of` picks a class whose size is a multiple of it, and slots lie at
// multiples of their size from a 64-byte aligned start) or from runs of units (4 KiB
// aligned, aligned to the layout's alignment in units, `units_for(size)` units long); the
// bitmap and free lists never hand out a block twice; every access to the state holds the
// lock.
unsafe impl<M: Memory + Send> GlobalAlloc for WasmAllocator<M> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the trait's contract is the caller's.
        unsafe { self.heap.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the trait's contract is the caller's.
        unsafe { self.heap.realloc(ptr, layout, new_size) }
    }
}

/// Where memory went: see [`WasmAllocator::stats`] and [`PageAllocator::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `memory.grow` calls the allocator made, refused ones included.
    pub grow_calls: usize,
    /// Bytes the allocator obtained from memory: the pages it grew, and the initial
    /// heap's whole 4 KiB units.
    pub obtained_bytes: usize,
    /// Of those, bytes free in the page layer (not held by a span or a run).
    pub free_bytes: usize,
    /// Bytes of the blocks handed out and not yet freed, each counted as what it takes:
    /// a slot at its class's size, and a block no class serves (larger than 14,336
    /// bytes, or aligned to more than 64) at its whole 4 KiB units. Nothing else: work
    /// that frees all it allocates leaves this figure as it found it (a leak check).
    /// `in_use_bytes / obtained_bytes` is the heap's efficiency.
    pub in_use_bytes: usize,
    /// Of the bytes obtained, those the allocator keeps for itself: the extended bitmap's
    /// 2 pages once memory has passed 128 MiB, and the `checked` feature's tag pages.
    /// What is obtained and neither free, in use nor overhead is held by spans for slots
    /// not in use (see `classes`).
    pub overhead_bytes: usize,
    /// The memory's size in bytes (`memory.size`): everything in it, the module's static
    /// data and stack and pages other code grew included.
    pub memory_bytes: usize,
    /// The size in bytes the allocator never grows memory past: a [`Capped`] memory's
    /// cap (as [`WasmAllocator::with_max_pages`] sets), a [`Region`]'s capacity. `None`
    /// over an uncapped [`WasmMemory`] (up to 4 GiB, or the maximum the host or the
    /// linker set, which wasm code cannot read). `max_memory_bytes - memory_bytes` is how
    /// far the allocator may still grow memory.
    pub max_memory_bytes: Option<usize>,
    /// Per size class, smallest first: spans, bytes held and bytes in use. A class
    /// served as runs of units holds nothing here, and nothing is held here by a
    /// [`PageAllocator`].
    pub classes: [ClassStats; CLASSES],
}

/// The page layer's counts, read under the lock; [`Stats::new`] does the arithmetic after
/// it is released, so a broken invariant cannot make it overflow under the lock (the
/// classes' counts likewise: [`SizeClasses::counts`]).
struct PageFigures {
    grow_calls: usize,
    units_obtained: usize,
    units_free: usize,
    /// Units of the page layer's own (the extended bitmap) and the checked mode's tags.
    units_overhead: usize,
    /// The memory's size in pages, and the cap it reports.
    memory_pages: usize,
    max_pages: Option<usize>,
}

impl PageFigures {
    fn of<M: Memory>(runs: &RunHeap<M>) -> Self {
        let (grow_calls, units_obtained) = runs.pages.growth();
        PageFigures {
            grow_calls,
            units_obtained,
            units_free: runs.pages.free_units(),
            units_overhead: runs.pages.own_units() + runs.checks.tag_units(),
            memory_pages: runs.memory.size(),
            max_pages: runs.memory.max_pages(),
        }
    }
}

impl Stats {
    fn new(pages: PageFigures, classes: [ClassStats; CLASSES]) -> Stats {
        let PageFigures { grow_calls, units_obtained, units_free, units_overhead, memory_pages, max_pages } =
            pages;
        let obtained_bytes = units_obtained * UNIT;
        let free_bytes = units_free * UNIT;
        let overhead_bytes = units_overhead * UNIT;
        // Units neither free, in a span nor overhead are runs.
        let (held, used) = classes.iter().fold((0, 0), |(h, u), c| (h + c.held_bytes, u + c.used_bytes));
        Stats {
            grow_calls,
            obtained_bytes,
            free_bytes,
            in_use_bytes: obtained_bytes - free_bytes - overhead_bytes - held + used,
            overhead_bytes,
            memory_bytes: memory_pages.saturating_mul(PAGE_SIZE),
            max_memory_bytes: max_pages.map(|pages| pages.saturating_mul(PAGE_SIZE)),
            classes,
        }
    }
}

/// The page layer alone: every allocation takes whole 4 KiB units (like Zig's
/// `WasmPageAllocator`, which takes 64 KiB pages). For programs that allocate few, large
/// blocks.
///
/// # Example
/// ```no_run
/// #[cfg(target_arch = "wasm32")]
/// #[global_allocator]
/// static ALLOC: wasm_alloc::PageAllocator = wasm_alloc::PageAllocator::new();
/// # fn main() {}
/// ```
pub struct PageAllocator<M: Memory = WasmMemory> {
    heap: Locked<RunHeap<M>>,
}

impl PageAllocator<WasmMemory> {
    /// The module's page allocator over wasm's memory 0, for `#[global_allocator]` (it
    /// may use the initial heap's whole pages: see [`WasmMemory::new`]).
    ///
    /// # Panics
    /// Off wasm32, as [`WasmAllocator::new`] does.
    #[track_caller]
    pub const fn new() -> Self {
        wasm32_only();
        Self::with_memory(WasmMemory::new())
    }

    /// A page allocator over wasm's memory 0 that is not the module's
    /// `#[global_allocator]`: only pages its own `memory.grow` calls return.
    ///
    /// # Panics
    /// Off wasm32, as [`WasmAllocator::new`] does.
    #[track_caller]
    pub const fn secondary() -> Self {
        wasm32_only();
        Self::with_memory(WasmMemory::secondary())
    }
}

impl Default for PageAllocator<WasmMemory> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Memory> PageAllocator<M> {
    /// A page allocator over any [`Memory`].
    pub const fn with_memory(memory: M) -> Self {
        PageAllocator { heap: Locked::new(RunHeap::new(memory)) }
    }
}

impl<M: Memory> PageAllocator<M> {
    /// Where the memory went: see [`WasmAllocator::stats`]. Every block is a run of
    /// units, so the classes hold nothing.
    pub fn stats(&self) -> Stats {
        Stats::new(self.heap.with(|heap| PageFigures::of(heap)), SizeClasses::empty_stats())
    }

    /// Debug builds only, for tests and fuzzers: checks the page map's invariants (see
    /// [`WasmAllocator::check_invariants`]).
    #[cfg(any(debug_assertions, test))]
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.heap.with(|heap| heap.pages.check(&heap.memory))
    }
}

// SAFETY: every block is `units_for(size)` whole units from the bitmap, 4 KiB aligned and
// aligned to the layout's alignment in units; every access to the state holds the lock.
unsafe impl<M: Memory + Send> GlobalAlloc for PageAllocator<M> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the trait's contract is the caller's.
        unsafe { self.heap.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the trait's contract is the caller's.
        unsafe { self.heap.realloc(ptr, layout, new_size) }
    }
}

/// The README's Rust examples, compiled and run as doctests (the README is the
/// repository's page; the crate docs above are written for this page).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod testing;
// Host tests over a region; the wasm tests are in tests/.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
