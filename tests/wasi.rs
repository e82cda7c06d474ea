//! Regression test for issue 7, item 1: wasm32-wasip1 with the allocator as
//! `#[global_allocator]`.
//!
//! On WASI, std's environment and file calls go through wasi-libc, whose `malloc` starts
//! in the module's initial heap, `__heap_base..__heap_end`, and then grows memory.
//! Before the fix, the allocator took `__heap_base .. memory.size()` at its first slow
//! path on every wasm32 target, so Rust's blocks and libc's blocks overlapped. Now it
//! takes the initial heap only on `wasm32-unknown-unknown`; on WASI it only uses pages
//! its own `memory.grow` calls return.
//!
//! The same binary built for wasm32-wasip2 is a component: there it also needs
//! `wasm_alloc::wasip2_cabi_realloc_over_libc!()` (below), without which it traps at its
//! first read of the environment, inside wasi-libc's `free`.
//!
//! Plain `#[test]`s, compiled only for WASI. `bash .ci/test` runs them under Node:
//! `WASM_ALLOC_WASI_TEST=from-the-host cargo test --target wasm32-wasip1 --test wasi`
//! (Node's built-in WASI, `.ci/wasi-run.mjs`) and the same with `--target wasm32-wasip2`
//! (jco's transpiler and preview2-shim from npm, `.ci/wasip2-run.mjs`). The runners pass
//! the host environment through and preopen a fresh, empty host directory as `/tmp`. A
//! panic aborts on WASI, so the first failing test ends the binary.
#![cfg(target_os = "wasi")]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{HashMap, HashSet};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::ops::Range;
use std::path::Path;

use wasm_alloc::WasmAllocator;

mod common;

/// `WasmAllocator::new()` as the global allocator, behind a check of every block it hands
/// out (libtest's and std's included): none may lie in the initial heap, which is
/// wasi-libc's. Before the fix the very first one did, and the corruption crashed libtest
/// before any test ran; now the first such block ends the binary with a message naming it.
struct OutsideLibcsHeap(WasmAllocator);

#[global_allocator]
static ALLOC: OutsideLibcsHeap = OutsideLibcsHeap(WasmAllocator::new());

// On wasm32-wasip2, what the host passes in is allocated by wasi-libc, which frees it.
wasm_alloc::wasip2_cabi_realloc_over_libc!();

extern "C" {
    /// wasi-libc's allocator, the one its own functions (environment, directories) use.
    fn malloc(size: usize) -> *mut u8;
    /// Frees a block from [`malloc`].
    fn free(ptr: *mut u8);
    /// wasi-libc's `write`: used to report from inside the allocator, where nothing may
    /// allocate.
    fn write(fd: i32, bytes: *const u8, len: usize) -> isize;
    /// Defined by the linker: the first byte after the stack and static data.
    static __heap_base: u8;
    /// Defined by the linker: the end of the module's initial memory.
    static __heap_end: u8;
}

impl OutsideLibcsHeap {
    /// Returns `block`, or ends the binary if it lies in the initial heap.
    fn check(&self, block: *mut u8, size: usize) -> *mut u8 {
        let heap = initial_heap();
        let start = block as usize;
        if !block.is_null() && start < heap.end && heap.start < start + size.max(1) {
            let mut message = Message::default();
            let _ = writeln!(
                message,
                "wasm-alloc handed out {size} bytes at {start:#x}, in wasi-libc's initial heap {heap:#x?}"
            );
            // SAFETY: `message.bytes[..len]` is initialized; fd 2 is stderr.
            unsafe { write(2, message.bytes.as_ptr(), message.len) };
            std::process::abort();
        }
        block
    }
}

/// A message formatted without allocating (truncated to its buffer).
struct Message {
    bytes: [u8; 200],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Message { bytes: [0; 200], len: 0 }
    }
}

impl std::fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

// SAFETY: every call is delegated unchanged to `WasmAllocator`, a sound `GlobalAlloc`;
// the wrapper only reads the addresses it returns.
unsafe impl GlobalAlloc for OutsideLibcsHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        self.check(unsafe { self.0.realloc(ptr, layout, new_size) }, new_size)
    }
}

/// The variable `.ci/test` sets for [`std_environment_works_on_wasi_with_the_allocator`].
const HOST_VARIABLE: &str = "WASM_ALLOC_WASI_TEST";
/// Its value there.
const HOST_VALUE: &str = "from-the-host";
/// The directory the runner preopens (a fresh temporary directory on the host).
const PREOPENED: &str = "/tmp";

/// The module's initial heap, as byte addresses.
fn initial_heap() -> Range<usize> {
    core::ptr::addr_of!(__heap_base) as usize..core::ptr::addr_of!(__heap_end) as usize
}

/// A deterministic byte for position `i` of a block seeded by `seed`.
fn byte(seed: usize, i: usize) -> u8 {
    seed.wrapping_mul(2654435761).wrapping_add(i.wrapping_mul(40503)).to_le_bytes()[1]
}

/// The environment goes through wasi-libc (`environ`, `getenv`), whose strings live in
/// libc's heap; before the fix Rust's blocks could lie over them.
#[test]
fn std_environment_works_on_wasi_with_the_allocator() {
    let value = env::var(HOST_VARIABLE).unwrap_or_else(|e| {
        panic!("{HOST_VARIABLE}: {e}; run as .ci/test does: {HOST_VARIABLE}={HOST_VALUE} cargo test ...")
    });
    assert_eq!(value, HOST_VALUE);
    assert_eq!(env::var("CARGO_PKG_NAME").as_deref(), Ok(env!("CARGO_PKG_NAME")));
    let vars: HashMap<String, String> = env::vars().collect();
    assert_eq!(vars.get(HOST_VARIABLE).map(String::as_str), Some(HOST_VALUE));
    assert!(vars.len() > 3, "only {} variables passed through", vars.len());
    for (key, value) in &vars {
        assert_eq!(env::var(key).as_ref(), Ok(value), "{key}");
    }
    // Setting and removing variables allocates in libc's heap as well.
    for k in 0..200 {
        env::set_var(format!("WASM_ALLOC_WASI_{k}"), "v".repeat(k));
    }
    for k in 0..200 {
        assert_eq!(env::var(format!("WASM_ALLOC_WASI_{k}")), Ok("v".repeat(k)));
        env::remove_var(format!("WASM_ALLOC_WASI_{k}"));
    }
    assert_eq!(env::var(HOST_VARIABLE).as_deref(), Ok(HOST_VALUE));
}

/// Files through the preopened directory: wasi-libc resolves the path against its
/// preopens and `read_dir` uses libc's `opendir` and `readdir`, all allocating in libc's
/// heap while Rust's buffers come from the allocator.
#[test]
fn files_in_a_preopened_directory_work_on_wasi_with_the_allocator() {
    let dir = Path::new(PREOPENED).join("wasm-alloc-files");
    fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the runner must preopen {PREOPENED})", dir.display()));
    let sizes = [0, 1, 100, 4096, 65_536, 300_000, 1 << 20];
    for (k, &size) in sizes.iter().enumerate() {
        let contents: Vec<u8> = (0..size).map(|i| byte(k, i)).collect();
        fs::write(dir.join(format!("file-{k}.bin")), &contents).unwrap();
    }
    for (k, &size) in sizes.iter().enumerate() {
        let contents = fs::read(dir.join(format!("file-{k}.bin"))).unwrap();
        assert_eq!(contents.len(), size, "file {k}");
        assert!(contents.iter().enumerate().all(|(i, &b)| b == byte(k, i)), "file {k} changed");
    }
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..sizes.len()).map(|k| format!("file-{k}.bin")).collect();
    expected.sort();
    assert_eq!(names, expected);
    fs::write(dir.join("text.txt"), "line one\nline two\n").unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("text.txt")).unwrap().lines().collect::<Vec<_>>(),
        ["line one", "line two"]
    );
    fs::remove_dir_all(&dir).unwrap();
    assert!(!dir.exists());
}

/// Collections on the allocator alone (HashMap's seed comes from WASI's `random_get`).
#[test]
fn collections_work_on_wasi_with_the_allocator() {
    common::btreemap_and_string_churn(10);
    let set: HashSet<Vec<u8>> = (0..5000usize).map(|k| vec![k as u8; k % 300]).collect();
    assert_eq!(set.len(), 5000 - 5000usize.div_ceil(300) + 1);
}

/// Blocks from libc's `malloc` and from the allocator, interleaved so that both grow
/// memory in turn: none overlaps another, both keep their contents, and none of the
/// allocator's lies in the initial heap, which is libc's. Before the fix the allocator's
/// first slow path took `__heap_base .. memory.size()`, libc's initial heap and the pages
/// its `sbrk` had grown, so its blocks lay over libc's.
#[test]
fn libc_malloc_and_the_allocator_never_overlap_on_wasi() {
    let sizes = [1, 8, 24, 100, 1000, 4096, 20_000, 40_000, 70_000, 200_000];
    let mut libc_blocks: Vec<LibcBlock> = Vec::new();
    let mut ours: Vec<(Vec<u8>, usize)> = Vec::new();
    for k in 0..400 {
        libc_blocks.push(LibcBlock::new(sizes[k % sizes.len()] + k % 7, k));
        let size = sizes[(k * 3 + 1) % sizes.len()] + k % 5;
        ours.push(((0..size).map(|i| byte(k + 100_000, i)).collect(), k + 100_000));
        if k % 4 == 3 {
            let gone = libc_blocks.swap_remove(k * 7 % libc_blocks.len());
            assert!(gone.intact(), "libc block {} overwritten before it was freed", gone.seed);
            let (v, seed) = ours.swap_remove(k * 5 % ours.len());
            assert!(v.iter().enumerate().all(|(i, &b)| b == byte(seed, i)), "our block {seed} overwritten");
        }
    }

    let initial = initial_heap();
    assert!(!initial.is_empty(), "no initial heap, so the check of every block is vacuous");
    let mut ranges: Vec<(Range<usize>, &str, usize)> = Vec::new();
    ranges.extend(libc_blocks.iter().map(|b| (b.range(), "libc block", b.seed)));
    for (v, k) in &ours {
        let range = v.as_ptr() as usize..v.as_ptr() as usize + v.capacity();
        assert!(
            range.end <= initial.start || initial.end <= range.start,
            "our block {k} at {range:#x?} lies in libc's initial heap {initial:#x?}"
        );
        ranges.push((range, "our block", *k));
    }
    ranges.sort_by_key(|(r, _, _)| r.start);
    for pair in ranges.windows(2) {
        let ((a, a_kind, a_k), (b, b_kind, b_k)) = (&pair[0], &pair[1]);
        assert!(a.end <= b.start, "{a_kind} {a_k} at {a:#x?} overlaps {b_kind} {b_k} at {b:#x?}");
    }

    for b in &libc_blocks {
        assert!(b.intact(), "libc block {} at {:#x?} overwritten", b.seed, b.range());
    }
    for (v, seed) in &ours {
        assert!(v.iter().enumerate().all(|(i, &b)| b == byte(*seed, i)), "our block {seed} overwritten");
    }
}

/// A block from wasi-libc's `malloc`, filled with the pattern of `seed`; freed on drop.
struct LibcBlock {
    ptr: *mut u8,
    size: usize,
    seed: usize,
}

impl LibcBlock {
    fn new(size: usize, seed: usize) -> Self {
        // SAFETY: wasi-libc's `malloc`; a non-zero size.
        let ptr = unsafe { malloc(size) };
        assert!(!ptr.is_null(), "malloc({size}) failed");
        for i in 0..size {
            // SAFETY: within the block `malloc` just returned.
            unsafe { ptr.add(i).write(byte(seed, i)) };
        }
        LibcBlock { ptr, size, seed }
    }

    fn range(&self) -> Range<usize> {
        self.ptr as usize..self.ptr as usize + self.size
    }

    fn intact(&self) -> bool {
        // SAFETY: a live block from `malloc` of `size` bytes, written when allocated.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.size) };
        bytes.iter().enumerate().all(|(i, &b)| b == byte(self.seed, i))
    }
}

impl Drop for LibcBlock {
    fn drop(&mut self) {
        // SAFETY: from `malloc`, freed once, here.
        unsafe { free(self.ptr) };
    }
}
