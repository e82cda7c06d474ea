//! Each detection of the checked mode firing, with the message it reports before it
//! aborts; and no false alarm on correct use (the model test also runs with the feature
//! on). A report aborts the process, so each test that expects one runs its misuse in
//! a child process: this test binary, asked to run only that test.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::string::{String, ToString};
use std::vec::Vec;

use super::on::{POISON, TAG_PAGES};
use super::Misuse;
use crate::global::Heap;
use crate::heap::ClassHeap;
use crate::page::UNIT;
use crate::testing::OwnedRegion;
use crate::{Memory, PageAllocator, WasmAllocator, PAGE_SIZE};

fn allocator() -> WasmAllocator<OwnedRegion> {
    WasmAllocator::with_memory(OwnedRegion::new(32))
}

/// Set in the child process that runs one test's misuse.
const CHILD: &str = "WASM_ALLOC_CHECKED_CHILD";

/// The signal `abort` raises.
const SIGABRT: i32 = 6;

/// Runs `f`, which must report a misuse, in a child process, and returns what the child
/// printed. Asserts that the child aborted: a report must never unwind out of the
/// allocator. One call per test (the child reruns the whole test).
fn report_of(f: impl FnOnce()) -> String {
    if std::env::var_os(CHILD).is_some() {
        f();
        // Not reached when `f` reports: the child exits normally, and the parent fails.
        return String::new();
    }
    // libtest runs each test on a thread named after it.
    let test = std::thread::current().name().expect("a test thread has the test's name").to_string();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), Some(SIGABRT), "the child did not abort: {:?}\n{stderr}", out.status);
    stderr
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_double_free_of_a_slot_is_caught() {
    let alloc = allocator();
    let l = layout(48, 8);
    // SAFETY: deliberately broken: the second dealloc is a double free, which the
    // checked mode must catch before it touches anything.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        alloc.dealloc(p, l);
    });
    assert!(message.contains("double free") && message.contains("size 48, align 8"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_double_free_behind_other_frees_is_caught() {
    let alloc = allocator();
    let l = layout(100, 4);
    // SAFETY: deliberately broken: `a` is freed twice, with `b` freed in between.
    let message = report_of(|| unsafe {
        let a = alloc.alloc(l);
        let b = alloc.alloc(l);
        alloc.dealloc(a, l);
        alloc.dealloc(b, l);
        alloc.dealloc(a, l);
    });
    assert!(message.contains("double free"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_write_after_free_is_caught_when_the_slot_is_handed_out_again() {
    let alloc = allocator();
    let l = layout(64, 8);
    // SAFETY: deliberately broken: a write into a freed slot.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        p.add(20).write(1);
        alloc.alloc(l);
    });
    assert!(message.contains("use after free"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_pointer_never_handed_out_is_caught() {
    let alloc = allocator();
    let mut local = [0u64; 8];
    let foreign = local.as_mut_ptr().cast::<u8>();
    // SAFETY: deliberately broken: a pointer this allocator never handed out.
    let message = report_of(|| unsafe {
        alloc.alloc(layout(8, 8));
        alloc.dealloc(foreign, layout(8, 8));
    });
    // The child's stack is elsewhere: the message names its address, in the form:
    assert!(message.contains("never handed out") && message.contains("dealloc of 0x"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_slot_freed_with_the_wrong_class_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken: a 16-byte block freed as a 1000-byte one.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(layout(16, 8));
        alloc.dealloc(p, layout(1000, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_pointer_into_the_middle_of_a_slot_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken: an interior pointer.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(layout(64, 8));
        alloc.dealloc(p.add(8), layout(64, 8));
    });
    assert!(message.contains("not the start"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_pointer_into_the_middle_of_a_big_block_is_caught() {
    let alloc = allocator();
    let big = layout(3 * PAGE_SIZE, 8);
    // SAFETY: as above, for whole pages.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p.add(PAGE_SIZE), big);
    });
    assert!(message.contains("not the start"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_big_block_freed_with_the_wrong_size_is_caught() {
    let alloc = allocator();
    let big = layout(2 * PAGE_SIZE, 8);
    // SAFETY: deliberately broken: freed with a larger size than allocated.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p, layout(5 * PAGE_SIZE, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_big_block_freed_twice_is_caught() {
    let alloc = allocator();
    let big = layout(2 * PAGE_SIZE, 8);
    // SAFETY: deliberately broken: a double free of whole pages.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p, big);
        alloc.dealloc(p, big);
    });
    assert!(message.contains("never handed out") && message.contains("dealloc"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn realloc_checks_the_old_pointer_first() {
    let alloc = allocator();
    let l = layout(40, 8);
    // SAFETY: deliberately broken: realloc of a freed block.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        alloc.realloc(p, l, 4000);
    });
    assert!(message.contains("wasm-alloc (checked): realloc of 0x"), "{message}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn the_page_allocator_checks_its_blocks_too() {
    let alloc = PageAllocator::with_memory(OwnedRegion::new(16));
    let l = layout(PAGE_SIZE + 1, 8);
    // SAFETY: deliberately broken: a double free.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        alloc.dealloc(p, l);
    });
    assert!(message.contains("dealloc"), "{message}");
}

/// Correct use never trips a check: blocks freed without ever being written (their
/// poison stays), reused, reallocated in place and not.
#[test]
fn correct_use_is_not_reported() {
    let alloc = allocator();
    // SAFETY: every block is used within its layout and freed once, with it.
    unsafe {
        for size in [8, 24, 100, 4096, 32768, 3 * PAGE_SIZE] {
            let l = layout(size, 8);
            for _ in 0..3 {
                let p = alloc.alloc(l);
                alloc.dealloc(p, l);
            }
            let p = alloc.alloc(l);
            let q = alloc.realloc(p, l, size + 1);
            let q = alloc.realloc(q, layout(size + 1, 8), size / 2 + 1);
            alloc.dealloc(q, layout(size / 2 + 1, 8));
        }
    }
}

/// An allocator whose region starts like a wasm module: `pages` pages, the heap
/// starting in the first one's middle (after "static data"), its first `refusals`
/// growths refused.
fn allocator_with_initial_heap(pages: usize, refusals: usize) -> WasmAllocator<OwnedRegion> {
    let region = OwnedRegion::with_initial_heap(16, pages, HEAP_START);
    WasmAllocator::with_memory(region.refusing(refusals))
}

/// Where the initial heap starts in [`allocator_with_initial_heap`]: mid-page, as
/// `__heap_base` almost always is.
const HEAP_START: usize = PAGE_SIZE / 4 + 24;

/// Pages a region starts with for the tests that take everything from the initial
/// heap: room for the tag table and the blocks.
const INITIAL_PAGES: usize = 1 + TAG_PAGES;

/// Allocates, frees and reallocates small blocks; a report would abort the test binary.
fn churn_small_blocks(alloc: &dyn GlobalAlloc) {
    let layouts = [layout(8, 8), layout(24, 8), layout(100, 4), layout(1000, 8)];
    let mut blocks = std::vec::Vec::new();
    for round in 0..3 {
        for (i, &l) in layouts.iter().cycle().take(40).enumerate() {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc.alloc(l) };
            assert!(!p.is_null(), "round {round}, block {i}");
            blocks.push((p, l));
        }
        for (p, l) in blocks.drain(..) {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { alloc.dealloc(p, l) };
        }
    }
}

/// Regression (of the first size-class design, whose slots also came from the initial
/// heap's bytes before its first page boundary): that fragment was recorded before the
/// tag page existed, so its slots had no tag, and freeing one was reported as "never
/// handed out". Slots from the initial heap are not reported.
#[test]
fn slots_from_the_initial_heap_are_not_reported() {
    let alloc = allocator_with_initial_heap(INITIAL_PAGES, 0);
    churn_small_blocks(&alloc);
    assert!(alloc.stats().classes.iter().any(|c| c.held_bytes > 0));
    // SAFETY: a non-zero size; freed at once.
    let p = unsafe { alloc.alloc(layout(8, 8)) };
    let offset = alloc.heap.with(|h| h.runs.memory.offset(p));
    assert!((HEAP_START..INITIAL_PAGES * PAGE_SIZE).contains(&offset), "from the initial heap: {offset:#x}");
    assert_eq!(alloc.stats().grow_calls, 0);
    // SAFETY: just allocated with this layout.
    unsafe { alloc.dealloc(p, layout(8, 8)) };
}

/// Regression: when the first slow path could not get the tag page (memory refused to
/// grow), the initial heap's first slots were later reported.
#[test]
fn the_initial_heap_is_not_reported_when_the_first_tag_page_is_refused() {
    let alloc = allocator_with_initial_heap(1, 1);
    // SAFETY: a non-zero size.
    let refused = unsafe { alloc.alloc(layout(16, 8)) };
    assert!(refused.is_null(), "no tag page, no allocation");
    churn_small_blocks(&alloc);
}

/// The page where the initial heap starts also holds "static data" below it: a pointer
/// there is foreign.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_pointer_into_the_static_data_below_the_initial_heap_is_caught() {
    let alloc = allocator_with_initial_heap(INITIAL_PAGES, 0);
    // SAFETY: deliberately broken: a pointer below the initial heap, in its page.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(layout(8, 8));
        let statics = alloc.heap.with(|h| h.runs.memory.ptr(HEAP_START - 64));
        alloc.dealloc(p, layout(8, 8));
        alloc.dealloc(statics, layout(8, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
}

/// Regression: tags covered only pages below 65536 while the free check wanted a tag on
/// every page of a block, so a block across page 65536 of a region over 4 GiB was
/// reported as "never handed out" when freed. Tags now cover every unit the page layer
/// can hand out: a run that ends at its very last unit is freed without a report.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_run_at_the_last_units_of_the_bitmap_is_freed_without_a_report() {
    use crate::checked::Checks;
    use crate::page::{PageMap, UNIT, UNIT_LIMIT};
    use crate::WasmMemory;
    let region = OwnedRegion::new(8);
    let mut checks = Checks::new();
    assert!(checks.prepare(&region, &mut PageMap::new()));
    // On the host, `WasmMemory`'s offsets are addresses: unit `u` is at `u * UNIT`. No
    // byte of the run is read.
    let memory = WasmMemory::new();
    for (start, count) in [(UNIT_LIMIT - 4, 4), (UNIT_LIMIT - 1, 1), (65535 * 16, 32)] {
        checks.took_run(start..start + count);
        let ptr = core::ptr::NonNull::new(memory.ptr(start * UNIT)).unwrap();
        assert!(checks.may_free_run(&memory, ptr, count), "units {start}..+{count}");
        assert_eq!(checks.take_misuse(), None);
        checks.freed_units(start..start + count);
    }
}

/// A block a program writes as a struct with padding: a byte equal to the checked
/// mode's poison, then 7 bytes of padding (uninitialised after a typed write), placed
/// after the free-list link, where the old double-free check compared bytes with the
/// poison until the first that differed.
#[repr(C)]
struct Padded {
    word: u64,
    byte: u8,
    rest: u64,
}

/// Regression: the double-free check read a live slot's bytes, where a struct's padding
/// is uninitialised: undefined behaviour, which Miri reports (`cargo +nightly miri test
/// --features checked --lib checked::`).
#[test]
fn freeing_a_struct_with_padding_reads_no_uninitialised_byte() {
    let alloc = allocator();
    let l = Layout::new::<Padded>();
    for _ in 0..3 {
        // SAFETY: a non-zero size; the block is written as a `Padded` (its 7 padding
        // bytes uninitialised) and freed once, with its layout.
        unsafe {
            let p = alloc.alloc(l).cast::<Padded>();
            p.write(Padded { word: 1, byte: POISON, rest: 2 });
            assert_eq!((*p).word + (*p).rest, 3);
            alloc.dealloc(p.cast(), l);
        }
    }
}

/// What the README promises for big blocks: a second free is caught unless a block of
/// the same size was handed out at the same address in between.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_big_block_freed_twice_after_its_pages_went_to_a_bigger_block_is_caught() {
    let alloc = allocator();
    let (small, bigger) = (layout(2 * PAGE_SIZE, 8), layout(3 * PAGE_SIZE, 8));
    // SAFETY: deliberately broken: `p` is freed twice; its pages went to `q` in between.
    let message = report_of(|| unsafe {
        let p = alloc.alloc(small);
        alloc.dealloc(p, small);
        let q = alloc.alloc(bigger);
        assert_eq!(q, p, "the freed pages are reused first");
        alloc.dealloc(p, small);
    });
    assert!(message.contains("never handed out"), "{message}");
}

/// The misuse that `f`'s calls on the heap found, taken under the lock instead of
/// reported: the same checks as the child-process tests, in this process, so that Miri
/// runs them (a check that reads a live block's bytes is undefined behaviour there).
fn misuse_of(
    alloc: &WasmAllocator<OwnedRegion>,
    f: impl FnOnce(&mut ClassHeap<OwnedRegion>),
) -> Option<Misuse> {
    alloc.heap.with(|heap| {
        f(heap);
        heap.take_misuse()
    })
}

/// Allocates 512-byte blocks until one lies in the second 4 KiB unit of its span (a span
/// of that class is two units), and returns them all; the last is that one.
fn blocks_into_a_spans_second_unit(alloc: &WasmAllocator<OwnedRegion>) -> Vec<*mut u8> {
    let mut blocks = Vec::new();
    loop {
        // SAFETY: a non-zero size.
        let p = unsafe { alloc.alloc(layout(512, 8)) };
        assert!(!p.is_null());
        blocks.push(p);
        if p.addr() % (2 * UNIT) >= UNIT {
            return blocks;
        }
    }
}

/// Regression: a slot of a two-unit span freed with the layout of a one-unit span's
/// class. The check masked its address to the span's second unit, which carried the
/// same tag as the first, and read the live block there as a span header (a debug build
/// panicked under the lock; a release build wrote a free-list link into the live block).
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_slot_freed_with_the_layout_of_a_smaller_span_class_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken: a 512-byte block freed as an 8-byte one.
    let message = report_of(|| unsafe {
        let blocks = blocks_into_a_spans_second_unit(&alloc);
        alloc.dealloc(*blocks.last().unwrap(), layout(8, 8));
    });
    assert!(message.contains("never handed out") && message.contains("size 8, align 8"), "{message}");
}

/// The same misuse, in this process (Miri runs it): the check reads only the span's
/// first unit's tag and header, never the live block that the second unit starts in,
/// whose bytes here are uninitialised; and nothing changes.
#[test]
fn a_slot_freed_with_the_layout_of_a_smaller_span_class_reads_no_live_block() {
    let alloc = allocator();
    let blocks = blocks_into_a_spans_second_unit(&alloc);
    let at_unit = blocks[blocks.len() - 2];
    // SAFETY: a live 512-byte block, made uninitialised (as a `MaybeUninit` write does).
    unsafe { at_unit.cast::<core::mem::MaybeUninit<[u8; 512]>>().write(core::mem::MaybeUninit::uninit()) };
    let last = NonNull::new(*blocks.last().unwrap()).unwrap();
    // SAFETY: deliberately broken (the checked mode stops it): a 512-byte block freed as
    // an 8-byte one.
    let found = misuse_of(&alloc, |heap| unsafe { heap.dealloc(last, layout(8, 8)) });
    assert_eq!(found, Some(Misuse::Foreign));
    assert_eq!(alloc.check_invariants(), Ok(()));
    for p in blocks {
        // SAFETY: live with this layout.
        unsafe { alloc.dealloc(p, layout(512, 8)) };
    }
}

/// Two 32-byte blocks freed, so that their span empties and stays as the class's empty
/// span; a byte written into the first; returns it.
fn write_into_an_empty_span(alloc: &WasmAllocator<OwnedRegion>) -> *mut u8 {
    let l = layout(32, 8);
    // SAFETY: deliberately broken: a write into a freed block.
    unsafe {
        let (a, b) = (alloc.alloc(l), alloc.alloc(l));
        alloc.dealloc(a, l);
        alloc.dealloc(b, l);
        a.add(20).write(1);
        a
    }
}

/// Regression: a class's emptied span was cached, then started afresh and handed out
/// its slots through its never-used cursor without looking at their poison, so a write
/// after free into it went unseen. Now it stays in the list as it is, and hands the slot
/// out again from its free list, checked.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_write_after_free_into_an_empty_span_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken, in `write_into_an_empty_span`.
    let message = report_of(|| unsafe {
        write_into_an_empty_span(&alloc);
        alloc.alloc(layout(32, 8));
        alloc.alloc(layout(32, 8));
    });
    assert!(
        message.contains("use after free") && message.contains("wasm-alloc (checked): alloc"),
        "{message}"
    );
}

/// The same, in this process: the report names the slot written to, when it is handed
/// out again (after the slot freed last).
#[test]
fn a_write_after_free_into_an_empty_span_names_the_slot() {
    let alloc = allocator();
    let a = write_into_an_empty_span(&alloc);
    let found = misuse_of(&alloc, |heap| {
        heap.alloc(layout(32, 8));
        heap.alloc(layout(32, 8));
    });
    assert_eq!(found, Some(Misuse::UseAfterFree { slot: a.addr() }));
}

/// A write after free into a span that then empties and goes back to the page layer is
/// caught when it empties (its slots are never handed out by it again).
#[test]
fn a_write_after_free_into_a_span_that_goes_back_is_caught_when_it_empties() {
    let alloc = allocator();
    let l = layout(4096, 8);
    // SAFETY: deliberately broken: a write into a freed block (the checked mode stops it
    // when the span empties).
    unsafe {
        let (a, b) = (alloc.alloc(l), alloc.alloc(l));
        alloc.dealloc(a, l);
        a.add(100).write(7);
        let b = NonNull::new(b).unwrap();
        let found = misuse_of(&alloc, |heap| heap.dealloc(b, l));
        assert_eq!(found, Some(Misuse::UseAfterFree { slot: a.addr() }));
    }
}

/// An 8-byte block freed, and the address of a live block of the same class written
/// over its free-list link (a pointer-sized write, as a program that still holds the
/// freed block writes a field); returns the freed block and the live one.
fn live_address_over_a_freed_link(alloc: &WasmAllocator<OwnedRegion>) -> (*mut u8, *mut u8) {
    let l = layout(8, 8);
    // SAFETY: deliberately broken: a write into a freed block.
    unsafe {
        let (a, b) = (alloc.alloc(l), alloc.alloc(l));
        alloc.dealloc(a, l);
        a.cast::<*mut u8>().write(b);
        (a, b)
    }
}

/// Regression: the link check accepted any handed-out slot of the class as the next
/// free one, and an 8-byte slot on a 64-bit host has no byte of poison, so a live
/// block's address written over a freed slot's link made the allocator hand out the
/// live block a second time.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_live_blocks_address_written_over_a_freed_link_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken, in `live_address_over_a_freed_link`.
    let message = report_of(|| unsafe {
        let (_, live) = live_address_over_a_freed_link(&alloc);
        let first = alloc.alloc(layout(8, 8));
        let second = alloc.alloc(layout(8, 8));
        assert!(second != live && first != live, "a live block handed out again");
    });
    assert!(message.contains("use after free"), "{message}");
}

/// The same, in this process.
#[test]
fn a_live_blocks_address_written_over_a_freed_link_names_the_slot() {
    let alloc = allocator();
    let (freed, _) = live_address_over_a_freed_link(&alloc);
    let found = misuse_of(&alloc, |heap| {
        heap.alloc(layout(8, 8));
    });
    assert_eq!(found, Some(Misuse::UseAfterFree { slot: freed.addr() }));
}
