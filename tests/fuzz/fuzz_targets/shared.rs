//! Shared by both targets: the input reader, the block pattern, the host buffer the
//! region lives in, and a `Memory` wrapper around `Region` that logs `grow` calls and,
//! under AddressSanitizer, keeps the pages beyond the region's current size poisoned.

use std::alloc::Layout;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use wasm_alloc::{Memory, Region, PAGE_SIZE};

/// The most pages any input's region has.
pub const MAX_CAP: usize = 2304;

/// 128 MiB: every alignment the targets use (up to 2048 pages) is an alignment of page
/// indexes too.
pub const BASE_ALIGN: usize = 1 << 27;

/// Reads the input; zeros once it is exhausted.
pub struct Bytes<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    #[allow(dead_code)]
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// The byte block `id` holds at offset `off`: never zero.
pub fn pattern(id: u32, off: usize) -> u8 {
    let x = id.wrapping_mul(0x9E37_79B9) ^ (off as u32).wrapping_mul(0x85EB_CA6B);
    ((x >> 24) as u8 ^ (x >> 11) as u8) | 1
}

#[cfg(sanitize = "address")]
mod asan {
    extern "C" {
        fn __asan_poison_memory_region(addr: *const u8, size: usize);
        fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    }
    pub fn poison(addr: *const u8, size: usize) {
        // SAFETY: ASan's interface; `addr..addr + size` lies in the fuzz buffer.
        unsafe { __asan_poison_memory_region(addr, size) }
    }
    pub fn unpoison(addr: *const u8, size: usize) {
        // SAFETY: as above.
        unsafe { __asan_unpoison_memory_region(addr, size) }
    }
}
#[cfg(not(sanitize = "address"))]
mod asan {
    pub fn poison(_: *const u8, _: usize) {}
    pub fn unpoison(_: *const u8, _: usize) {}
}

/// The host buffer: `MAX_CAP` pages, 128 MiB aligned, allocated with `std::alloc::alloc`
/// once per process and reused by every input (allocating a 128 MiB-aligned block per
/// input under ASan costs ~40 ms, which capped the fuzzer at ~25 exec/s). Between inputs
/// all of it is poisoned under ASan, so the allocator cannot touch a page it has not grown.
pub fn buffer() -> *mut u8 {
    static BUF: OnceLock<usize> = OnceLock::new();
    *BUF.get_or_init(|| {
        let layout = Layout::from_size_align(MAX_CAP * PAGE_SIZE, BASE_ALIGN).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null(), "host out of memory");
        asan::poison(base, MAX_CAP * PAGE_SIZE);
        base as usize
    }) as *mut u8
}

pub type GrowLog = Arc<Mutex<Vec<(usize, bool)>>>;

/// A `Region` over the first `cap` pages of [`buffer`], logging `grow` calls as
/// (delta, succeeded); drop poisons what was grown again.
pub struct Logged {
    region: Region,
    pub log: GrowLog,
}

impl Logged {
    /// `initial`: pages the region starts with and the byte where its initial heap starts
    /// (the bytes below it stay poisoned under ASan).
    pub fn new(cap: usize, initial: Option<(usize, usize)>) -> Self {
        assert!(cap <= MAX_CAP);
        let base = buffer();
        // SAFETY: 128 MiB aligned, `cap <= MAX_CAP` pages; one input at a time uses it.
        let mut region = unsafe { Region::new(base, cap) };
        if let Some((pages, heap_start)) = initial {
            asan::unpoison(base, pages * PAGE_SIZE);
            region = region.with_initial_heap(pages, heap_start);
            // What lies below the initial heap (the stack and static data) is not the
            // allocator's to touch.
            asan::poison(base, heap_start);
        }
        Logged { region, log: Arc::default() }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        asan::poison(self.region.ptr(0), self.region.size() * PAGE_SIZE);
    }
}

// SAFETY: every method delegates to `Region`, whose contract `Region::new` and
// `with_initial_heap` satisfy (the buffer is used by one input at a time); logging and
// (un)poisoning change nothing the allocator can see.
unsafe impl Memory for Logged {
    fn size(&self) -> usize {
        self.region.size()
    }
    fn grow(&self, delta: usize) -> Option<usize> {
        let old = self.region.size();
        if old.checked_add(delta).is_some_and(|new| new <= self.region.capacity()) {
            asan::unpoison(self.region.ptr(old * PAGE_SIZE), delta * PAGE_SIZE);
        }
        let r = self.region.grow(delta);
        self.log.lock().unwrap().push((delta, r.is_some()));
        r
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
