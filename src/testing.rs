//! Test support: memory for the allocator that owns its buffer, a memory that another
//! party grows behind the allocator's back, a shadow model of live blocks, and a small
//! deterministic random number generator.

use core::alloc::Layout;
use core::ops::Range;
use std::collections::BTreeMap;

use crate::memory::{Memory, Region, PAGE_SIZE};

/// A [`Region`] over a 64 KiB-aligned buffer from the host allocator, freed on drop.
pub(crate) struct OwnedRegion {
    region: Region,
    base: *mut u8,
    layout: Layout,
    /// The next `refusals` `grow` calls fail, as if memory were exhausted for a while.
    refusals: std::cell::Cell<usize>,
}

impl OwnedRegion {
    /// Room for `capacity` pages; starts with none. The buffer is aligned to 128 MiB, so
    /// page indexes and addresses are aligned alike for every alignment the tests use.
    pub(crate) fn new(capacity: usize) -> Self {
        Self::build(capacity, 0, |region| region)
    }

    /// Like `new`, but the region starts `skip` pages into a 128 MiB-aligned buffer, so
    /// its page 0 is only 64 KiB aligned.
    pub(crate) fn skewed(capacity: usize, skip: usize) -> Self {
        Self::build(capacity, skip, |region| region)
    }

    /// Room for `capacity` pages, starting with `initial` pages whose bytes from
    /// `heap_start` on are the initial heap.
    pub(crate) fn with_initial_heap(capacity: usize, initial: usize, heap_start: usize) -> Self {
        Self::build(capacity, 0, |region| region.with_initial_heap(initial, heap_start))
    }

    /// The same region, whose next `refusals` `grow` calls fail.
    pub(crate) fn refusing(self, refusals: usize) -> Self {
        self.refusals.set(refusals);
        self
    }

    fn build(capacity: usize, skip: usize, configure: impl FnOnce(Region) -> Region) -> Self {
        let align = if cfg!(miri) { 1 << 20 } else { 1 << 27 };
        let layout = Layout::from_size_align((capacity + skip).max(1) * PAGE_SIZE, align).unwrap();
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null(), "host out of memory");
        // SAFETY: the start is 64 KiB aligned, valid for `capacity` pages (the buffer has
        // `skip` more), used by nothing else, and outlives the region (both are dropped
        // together).
        let region = configure(unsafe { Region::new(base.wrapping_add(skip * PAGE_SIZE), capacity) });
        OwnedRegion { region, base, layout, refusals: 0.into() }
    }

    /// The byte range of the buffer, as addresses.
    pub(crate) fn addresses(&self) -> Range<usize> {
        let base = self.region.ptr(0).addr();
        base..base + self.region.capacity() * PAGE_SIZE
    }
}

impl Drop for OwnedRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; whoever owned this region (an
        // allocator) is being dropped, so no pointer into the buffer is used again.
        unsafe { std::alloc::dealloc(self.base, self.layout) };
    }
}

// SAFETY: the buffer is owned exclusively, like `Region`'s.
unsafe impl Send for OwnedRegion {}

// SAFETY: delegates to `Region`, whose contract `new` satisfies; a refused growth
// changes nothing.
unsafe impl Memory for OwnedRegion {
    fn size(&self) -> usize {
        self.region.size()
    }
    fn grow(&self, delta: usize) -> Option<usize> {
        if self.refusals.get() > 0 {
            self.refusals.set(self.refusals.get() - 1);
            return None;
        }
        self.region.grow(delta)
    }
    fn ptr(&self, offset: usize) -> *mut u8 {
        self.region.ptr(offset)
    }
    fn offset(&self, ptr: *const u8) -> usize {
        self.region.offset(ptr)
    }
    fn take_initial_heap(&self) -> Option<Range<usize>> {
        self.region.take_initial_heap()
    }
}

/// A memory that other code also grows: before each of the allocator's next `races`
/// `grow` calls it grows `foreign` pages itself (as JS or a second allocator would), and
/// records them.
pub(crate) struct SharedMemory {
    pub(crate) inner: OwnedRegion,
    pub(crate) foreign: usize,
    pub(crate) races: std::cell::Cell<usize>,
    pub(crate) foreign_pages: std::cell::RefCell<std::vec::Vec<usize>>,
}

impl SharedMemory {
    pub(crate) fn new(capacity: usize, foreign: usize, races: usize) -> Self {
        SharedMemory {
            inner: OwnedRegion::new(capacity),
            foreign,
            races: races.into(),
            foreign_pages: Default::default(),
        }
    }
}

// SAFETY: delegates to `OwnedRegion`; the foreign pages are grown before ours and never
// reported as ours, so the pages a `grow` returns are still the caller's alone.
unsafe impl Memory for SharedMemory {
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn grow(&self, delta: usize) -> Option<usize> {
        if self.races.get() > 0 {
            self.races.set(self.races.get() - 1);
            if let Some(old) = self.inner.grow(self.foreign) {
                self.foreign_pages.borrow_mut().extend(old..old + self.foreign);
            }
        }
        self.inner.grow(delta)
    }
    fn ptr(&self, offset: usize) -> *mut u8 {
        self.inner.ptr(offset)
    }
    fn offset(&self, ptr: *const u8) -> usize {
        self.inner.offset(ptr)
    }
    fn take_initial_heap(&self) -> Option<Range<usize>> {
        None
    }
}

/// The live blocks, by address: panics on any block handed out twice or overlapping.
#[derive(Default)]
pub(crate) struct ShadowHeap {
    live: BTreeMap<usize, usize>,
}

impl ShadowHeap {
    /// Records a new block `[addr, addr + len)`; panics if it overlaps a live one.
    pub(crate) fn insert(&mut self, addr: usize, len: usize) {
        let len = len.max(1);
        if let Some((&below, &below_len)) = self.live.range(..=addr).next_back() {
            assert!(below + below_len <= addr, "block {addr:#x}+{len} overlaps {below:#x}+{below_len}");
        }
        if let Some((&above, &above_len)) = self.live.range(addr..).next() {
            assert!(addr + len <= above, "block {addr:#x}+{len} overlaps {above:#x}+{above_len}");
        }
        self.live.insert(addr, len);
    }

    /// Forgets a block; panics if it was not live.
    pub(crate) fn remove(&mut self, addr: usize) {
        assert!(self.live.remove(&addr).is_some(), "block {addr:#x} freed but not live");
    }
}

/// xorshift64*: deterministic, tiny, good enough to pick operations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0), close enough.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
