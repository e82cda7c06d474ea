//! Where pages come from: the [`Memory`] trait with the semantics of wasm's
//! `memory.size` / `memory.grow`, the wasm backend [`WasmMemory`], [`Region`], a
//! fixed block of memory the caller owns (host tests, Miri, fuzzing, embedded `no_std`),
//! and [`Capped`], any of them with a cap on its size.

use core::cell::Cell;
use core::ops::Range;
use core::ptr::NonNull;

use crate::page::BITMAP_PAGES;

/// The wasm page size: 64 KiB, the unit of `memory.grow`.
pub const PAGE_SIZE: usize = 64 * 1024;

/// Pages 0..`PAGE_LIMIT` are the only ones the allocator ever hands out.
///
/// Two bounds meet here. The page holding the last byte of the address space
/// (`usize::MAX / PAGE_SIZE` on wasm32: page 65535) is never handed out, because Rust
/// forbids an allocation that includes that byte. And the page layer's bitmaps cover
/// only 67,584 pages (4.125 GiB), which matters only on 64-bit hosts.
pub const PAGE_LIMIT: usize = {
    let addressable = usize::MAX / PAGE_SIZE;
    if addressable < BITMAP_PAGES {
        addressable
    } else {
        BITMAP_PAGES
    }
};

/// A linear memory that grows in 64 KiB pages, like wasm's memory 0.
///
/// # Safety
/// Implementors promise, for as long as the value lives:
/// - `ptr(0)` is aligned to [`PAGE_SIZE`] (64 KiB): the allocator finds a slot's span by
///   masking its address and aligns blocks by address, so a memory that is not gets
///   null from every allocation (and nothing else happens);
/// - `size()` never decreases, and pages `0..size()` stay valid for reads and writes;
/// - a successful `grow(n)` returns the old size `s`, and pages `s..s + n` are zero and
///   belong to the caller of `grow` alone (nobody else reads or writes them);
/// - `ptr(offset)` points at byte `offset` of the memory, with provenance over the
///   whole memory, so pointers into pages handed out this way may be written;
/// - `take_initial_heap` returns a byte range only once per memory (for wasm's memory 0:
///   once per module), the range is zero, lies in `0..size() * PAGE_SIZE`, and nothing
///   else uses it.
pub unsafe trait Memory {
    /// The current size in pages (`memory.size`).
    fn size(&self) -> usize;

    /// Grows the memory by `delta` pages and returns the old size in pages, or `None`
    /// when the memory cannot grow that far (`memory.grow` returned -1).
    fn grow(&self, delta: usize) -> Option<usize>;

    /// A pointer to byte `offset` of the memory.
    fn ptr(&self, offset: usize) -> *mut u8;

    /// The byte offset of `ptr` within the memory (the inverse of [`Memory::ptr`]).
    fn offset(&self, ptr: *const u8) -> usize;

    /// Memory that exists before any growth and that nobody uses yet, as byte offsets:
    /// for wasm, from `__heap_base` to the end of the initial memory. `Some` at most once.
    fn take_initial_heap(&self) -> Option<Range<usize>>;

    /// The size in pages this memory never grows past, when it knows one: a [`Capped`]
    /// memory's cap, a [`Region`]'s capacity. `stats()` reports it. `None` by default,
    /// and for [`WasmMemory`], whose maximum (set by the host or the linker) wasm code
    /// cannot read.
    fn max_pages(&self) -> Option<usize> {
        None
    }
}

/// Memory 0 of the running wasm module, through `memory.size` and `memory.grow`.
///
/// Any number of `WasmMemory` values may exist: they are all the same memory, and the
/// page layer only ever uses pages its own `grow` calls returned, plus, for the one
/// made by [`WasmMemory::new`], the module's initial heap.
///
/// On targets other than wasm32 it has no pages and cannot grow, so every allocation
/// from an allocator over it returns null; use [`Region`] there.
#[derive(Clone, Copy, Debug)]
pub struct WasmMemory {
    /// Whether this memory must leave the module's initial heap alone (see
    /// [`WasmMemory::secondary`]). `false` for [`WasmMemory::new`], so that the global
    /// allocator's `static` is all zero bytes: the linker then puts it in `.bss`, which
    /// takes no room in the module, rather than writing its 4.6 KB (mostly the page
    /// bitmap's zeros) into a data segment, as it must for a `static` with one byte set.
    /// Not on WASI, where there is no initial heap to take, so `new` may as well be
    /// secondary: there an all-zero static made the wasm32-wasip2 test binary fail at
    /// startup ("a slot freed into an empty span": std's `env::args` freed a block of
    /// wasi-libc's `malloc` through the global allocator; the README's "wasm32-wasip2"
    /// says why that is not safe yet, in either layout).
    /// Off wasm32 there is no initial heap to take.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    secondary: bool,
}

impl WasmMemory {
    /// Memory 0 as the module's global allocator sees it: besides the pages its own
    /// `memory.grow` calls return, it may use the initial heap, the bytes from
    /// `__heap_base` to `__heap_end` (the end of the memory the module started with).
    ///
    /// Only on `wasm32-unknown-unknown` and `wasm32v1-none` (no C library), where the
    /// global allocator is the only code that uses those bytes. On WASI the C library's
    /// `malloc` owns them, so there this memory only ever grows. And only the
    /// first allocator of the module to ask gets the initial heap.
    pub const fn new() -> Self {
        WasmMemory { secondary: cfg!(target_os = "wasi") }
    }

    /// Memory 0 for an allocator that is not the module's `#[global_allocator]`: it uses
    /// only the pages its own `memory.grow` calls return, never the initial heap, which
    /// belongs to the global allocator (dlmalloc, Rust's default, uses it too).
    pub const fn secondary() -> Self {
        WasmMemory { secondary: true }
    }
}

impl Default for WasmMemory {
    /// [`WasmMemory::new`].
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::ops::Range;

    pub(super) fn size() -> usize {
        core::arch::wasm32::memory_size(0)
    }

    pub(super) fn grow(delta: usize) -> Option<usize> {
        match core::arch::wasm32::memory_grow(0, delta) {
            usize::MAX => None,
            old => Some(old),
        }
    }

    /// The module's initial heap, the first time it is asked for: `__heap_base` to
    /// `__heap_end`, both set by the linker. `__heap_end` is the end of the memory the
    /// module was instantiated with, not the current size: pages that JavaScript or other
    /// code grew since are theirs.
    #[cfg(any(target_os = "unknown", target_os = "none"))]
    pub(super) fn take_initial_heap() -> Option<Range<usize>> {
        use core::sync::atomic::{AtomicBool, Ordering};

        /// Set once some allocator has taken the initial heap: there is one per module.
        static INITIAL_HEAP_TAKEN: AtomicBool = AtomicBool::new(false);

        extern "C" {
            /// Defined by the linker: the first byte after the stack and static data.
            static __heap_base: u8;
            /// Defined by the linker: the end of the module's initial memory.
            static __heap_end: u8;
        }

        if INITIAL_HEAP_TAKEN.swap(true, Ordering::Relaxed) {
            return None;
        }
        let start = core::ptr::addr_of!(__heap_base) as usize;
        let end = (core::ptr::addr_of!(__heap_end) as usize).min(super::PAGE_LIMIT * super::PAGE_SIZE);
        (start < end).then_some(start..end)
    }

    /// On WASI the C library's `malloc` starts at `__heap_base`: the initial heap is not
    /// ours to take.
    #[cfg(not(any(target_os = "unknown", target_os = "none")))]
    pub(super) fn take_initial_heap() -> Option<Range<usize>> {
        None
    }
}

// SAFETY: memory 0 only grows; `memory.grow` returns the old size and the new pages are
// zero; only our own `grow` calls' pages are used. Offsets are addresses, and exposed
// provenance is how wasm code refers to linear memory. The initial heap is taken once
// per module (an atomic flag), only by a memory made with `new`, only where no C library
// owns it, and ends at `__heap_end`, the end of the initial memory, which is zero until
// an allocator uses it (wasm memory starts zeroed; data segments lie below
// `__heap_base`).
#[cfg(target_arch = "wasm32")]
unsafe impl Memory for WasmMemory {
    #[inline]
    fn size(&self) -> usize {
        wasm::size()
    }

    #[inline]
    fn grow(&self, delta: usize) -> Option<usize> {
        wasm::grow(delta)
    }

    #[inline]
    fn ptr(&self, offset: usize) -> *mut u8 {
        core::ptr::with_exposed_provenance_mut(offset)
    }

    #[inline]
    fn offset(&self, ptr: *const u8) -> usize {
        ptr.expose_provenance()
    }

    fn take_initial_heap(&self) -> Option<Range<usize>> {
        if self.secondary {
            return None;
        }
        wasm::take_initial_heap()
    }
}

// SAFETY: without wasm's memory 0 there are no pages and growth always fails, so no
// pointer is ever derived from this memory.
#[cfg(not(target_arch = "wasm32"))]
unsafe impl Memory for WasmMemory {
    fn size(&self) -> usize {
        0
    }

    fn grow(&self, _delta: usize) -> Option<usize> {
        None
    }

    fn ptr(&self, offset: usize) -> *mut u8 {
        core::ptr::without_provenance_mut(offset)
    }

    fn offset(&self, ptr: *const u8) -> usize {
        ptr.addr()
    }

    fn take_initial_heap(&self) -> Option<Range<usize>> {
        None
    }
}

/// A block of memory the caller owns, used as if it were a wasm memory that starts
/// with `initial` pages and can grow up to `capacity` pages.
///
/// Pointers handed out are derived from the region's base pointer, so allocators over a
/// region run under Miri with strict provenance. Growth zeroes the new pages, as
/// `memory.grow` does, so the caller's buffer need not be zero.
///
/// # Example
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// use wasm_alloc::{Region, WasmAllocator, PAGE_SIZE};
///
/// let pages = 4;
/// let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
/// let base = unsafe { std::alloc::alloc(layout) };
/// // SAFETY: `base` is 64 KiB aligned, valid for `pages` pages, and used by nothing else
/// // until the allocator is gone.
/// let alloc = WasmAllocator::with_memory(unsafe { Region::new(base, pages) });
/// let p = unsafe { alloc.alloc(Layout::new::<u64>()) };
/// assert!(!p.is_null());
/// unsafe { alloc.dealloc(p, Layout::new::<u64>()) };
/// drop(alloc);
/// unsafe { std::alloc::dealloc(base, layout) };
/// ```
#[derive(Debug)]
pub struct Region {
    base: NonNull<u8>,
    capacity: usize,
    size: Cell<usize>,
    initial_heap: Cell<Option<(usize, usize)>>,
}

impl Region {
    /// A region of `capacity` pages at `base`, starting with no pages (every page is
    /// obtained by growing). At most [`PAGE_LIMIT`] pages are used.
    ///
    /// # Safety
    /// `base` is non-null, valid for reads and writes of `capacity * PAGE_SIZE` bytes, and
    /// used by nothing else for as long as the region or any pointer allocated from it
    /// lives.
    ///
    /// # Errors
    /// `base` must be aligned to [`PAGE_SIZE`]. A `const fn` cannot look at an address,
    /// so a misaligned region is found out when it is used: every allocation from an
    /// allocator over it returns null (a global allocator over it then fails with
    /// Rust's "memory allocation of N bytes failed"), as over any [`Memory`] that is not
    /// aligned. [`Region::is_aligned`] tells.
    ///
    /// # Panics
    /// If `base` is null.
    pub const unsafe fn new(base: *mut u8, capacity: usize) -> Self {
        let Some(base) = NonNull::new(base) else {
            panic!("Region::new: base must not be null");
        };
        let capacity = if capacity < PAGE_LIMIT { capacity } else { PAGE_LIMIT };
        Region { base, capacity, size: Cell::new(0), initial_heap: Cell::new(None) }
    }

    /// The same region, but starting as a wasm module starts: `initial` pages exist, and
    /// bytes `heap_start..initial * PAGE_SIZE` of them are free for the allocator (what
    /// lies below `heap_start` plays the part of the stack and static data).
    ///
    /// # Panics
    /// If the base is not aligned to [`PAGE_SIZE`], `initial` exceeds the capacity, or
    /// `heap_start` lies beyond `initial` pages.
    pub fn with_initial_heap(self, initial: usize, heap_start: usize) -> Self {
        assert!(self.is_aligned(), "Region: base must be 64 KiB aligned");
        assert!(initial <= self.capacity, "Region: initial pages exceed capacity");
        let end = initial * PAGE_SIZE;
        assert!(heap_start <= end, "Region: heap start lies beyond the initial pages");
        self.zero(heap_start..end);
        self.size.set(initial);
        self.initial_heap.set(Some((heap_start, end)));
        self
    }

    /// The pages this region may grow to.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the base is aligned to [`PAGE_SIZE`], as it must be for an allocator to use
    /// the region.
    pub fn is_aligned(&self) -> bool {
        self.base.as_ptr().addr() % PAGE_SIZE == 0
    }

    fn zero(&self, bytes: Range<usize>) {
        // SAFETY: callers pass ranges within `capacity` pages, which `new`'s contract makes
        // valid for writes, and that nobody else uses yet.
        unsafe { self.ptr(bytes.start).write_bytes(0, bytes.end - bytes.start) };
    }
}

// SAFETY: a `Region` owns its block exclusively (the contract of `new`), so moving it to
// another thread moves that ownership; it is only used behind the allocator's lock.
unsafe impl Send for Region {}

// SAFETY: `size` only grows, up to `capacity`, and pages below it stay valid (the
// contract of `new`); `grow` zeroes the new pages before handing them out; `ptr` derives
// from `base`, whose provenance covers the whole block; the initial heap is a `Cell`
// emptied by the first `take`, and was zeroed by `with_initial_heap`.
unsafe impl Memory for Region {
    fn size(&self) -> usize {
        self.size.get()
    }

    fn grow(&self, delta: usize) -> Option<usize> {
        let old = self.size.get();
        let new = old.checked_add(delta).filter(|&new| new <= self.capacity)?;
        self.zero(old * PAGE_SIZE..new * PAGE_SIZE);
        self.size.set(new);
        Some(old)
    }

    fn ptr(&self, offset: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(offset)
    }

    fn offset(&self, ptr: *const u8) -> usize {
        ptr.addr().wrapping_sub(self.base.as_ptr().addr())
    }

    fn take_initial_heap(&self) -> Option<Range<usize>> {
        self.initial_heap.take().map(|(start, end)| start..end)
    }

    fn max_pages(&self) -> Option<usize> {
        Some(self.capacity)
    }
}

/// A [`Memory`] that is never grown past `max_pages` pages in all: an allocator over it
/// returns null there, as it does when the host's or the linker's maximum
/// (`--max-memory`) stops `memory.grow`, with every block intact, and serves again what
/// is freed. For hosts that give a module a budget (plugin hosts, workers) below
/// wasm32's 4 GiB. [`WasmAllocator::with_max_pages`](crate::WasmAllocator::with_max_pages)
/// is the global allocator over a capped memory 0.
///
/// The cap is on the memory's size (`memory.size`), so the module's static data and
/// stack, and pages other code grew, count toward it; it stops the allocator's own
/// growth only, not other code's (JavaScript, another allocator). `stats()` reports the
/// cap as `max_memory_bytes` and the memory's size as `memory_bytes`.
///
/// # Example
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// use wasm_alloc::{Capped, Region, WasmAllocator, PAGE_SIZE};
///
/// let layout = Layout::from_size_align(8 * PAGE_SIZE, PAGE_SIZE).unwrap();
/// let base = unsafe { std::alloc::alloc(layout) };
/// // SAFETY: `base` is 64 KiB aligned, valid for 8 pages and used by nothing else until
/// // the allocator is gone. Of its 8 pages, the allocator may grow 2.
/// let alloc = WasmAllocator::with_memory(Capped::new(unsafe { Region::new(base, 8) }, 2));
/// let big = Layout::from_size_align(PAGE_SIZE, 8).unwrap();
/// let (a, b) = unsafe { (alloc.alloc(big), alloc.alloc(big)) };
/// assert!(!a.is_null() && !b.is_null());
/// assert!(unsafe { alloc.alloc(big) }.is_null()); // the cap: null, a and b intact
/// let stats = alloc.stats();
/// assert_eq!((stats.memory_bytes, stats.max_memory_bytes), (2 * PAGE_SIZE, Some(2 * PAGE_SIZE)));
/// unsafe { alloc.dealloc(a, big) };
/// assert_eq!(unsafe { alloc.alloc(big) }, a); // what is freed serves again
/// # unsafe { alloc.dealloc(a, big); alloc.dealloc(b, big) };
/// drop(alloc);
/// unsafe { std::alloc::dealloc(base, layout) };
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Capped<M = WasmMemory> {
    memory: M,
    /// At most [`PAGE_LIMIT`], so `max_pages * PAGE_SIZE` fits in a `usize`.
    max_pages: usize,
}

impl<M> Capped<M> {
    /// `memory`, never grown past `max_pages` pages (64 KiB each) in all. A cap above
    /// [`PAGE_LIMIT`] is [`PAGE_LIMIT`]; a cap at or below the memory's size when the
    /// allocator first grows it leaves the allocator only what it already has (for the
    /// global allocator on `wasm32-unknown-unknown`, the initial heap).
    pub const fn new(memory: M, max_pages: usize) -> Self {
        let max_pages = if max_pages < PAGE_LIMIT { max_pages } else { PAGE_LIMIT };
        Capped { memory, max_pages }
    }
}

// SAFETY: every call goes to `memory`, whose contract holds; `grow` only refuses more
// often (a refused growth changes nothing), and `max_pages` only reports.
unsafe impl<M: Memory> Memory for Capped<M> {
    #[inline]
    fn size(&self) -> usize {
        self.memory.size()
    }

    fn grow(&self, delta: usize) -> Option<usize> {
        if delta > self.max_pages.saturating_sub(self.memory.size()) {
            return None;
        }
        self.memory.grow(delta)
    }

    #[inline]
    fn ptr(&self, offset: usize) -> *mut u8 {
        self.memory.ptr(offset)
    }

    #[inline]
    fn offset(&self, ptr: *const u8) -> usize {
        self.memory.offset(ptr)
    }

    fn take_initial_heap(&self) -> Option<Range<usize>> {
        self.memory.take_initial_heap()
    }

    fn max_pages(&self) -> Option<usize> {
        Some(match self.memory.max_pages() {
            Some(inner) if inner < self.max_pages => inner,
            _ => self.max_pages,
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
