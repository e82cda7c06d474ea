//! Each detection of the checked mode firing, with the message it panics with; and no
//! false alarm on correct use (the model test also runs with the feature on).

use core::alloc::{GlobalAlloc, Layout};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::string::String;

use crate::testing::OwnedRegion;
use crate::{PageAllocator, WasmAllocator, PAGE_SIZE};

fn allocator() -> WasmAllocator<OwnedRegion> {
    WasmAllocator::with_memory(OwnedRegion::new(32))
}

/// Runs `f`, which must panic, and returns the panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("no panic");
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => String::from(*payload.downcast::<&str>().expect("a string panic")),
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn a_double_free_of_a_slot_is_caught() {
    let alloc = allocator();
    let l = layout(48, 8);
    // SAFETY: deliberately broken: the second dealloc is a double free, which the
    // checked mode must catch before it touches anything.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        alloc.dealloc(p, l);
    });
    assert!(message.contains("double free") && message.contains("size 48, align 8"), "{message}");
}

#[test]
fn a_double_free_behind_other_frees_is_caught_by_the_poison() {
    let alloc = allocator();
    let l = layout(100, 4);
    // SAFETY: deliberately broken: `a` is freed twice, with `b` freed in between.
    let message = panic_message(|| unsafe {
        let a = alloc.alloc(l);
        let b = alloc.alloc(l);
        alloc.dealloc(a, l);
        alloc.dealloc(b, l);
        alloc.dealloc(a, l);
    });
    assert!(message.contains("double free"), "{message}");
}

#[test]
fn a_write_after_free_is_caught_when_the_slot_is_handed_out_again() {
    let alloc = allocator();
    let l = layout(64, 8);
    // SAFETY: deliberately broken: a write into a freed slot.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        p.add(20).write(1);
        alloc.alloc(l);
    });
    assert!(message.contains("use after free"), "{message}");
}

#[test]
fn a_pointer_never_handed_out_is_caught() {
    let alloc = allocator();
    let mut local = [0u64; 8];
    let foreign = local.as_mut_ptr().cast::<u8>();
    // SAFETY: deliberately broken: a pointer this allocator never handed out.
    let message = panic_message(|| unsafe {
        alloc.alloc(layout(8, 8));
        alloc.dealloc(foreign, layout(8, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
    assert!(message.contains(&std::format!("{:#x}", foreign.addr())), "{message}");
}

#[test]
fn a_slot_freed_with_the_wrong_class_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken: a 16-byte block freed as a 1000-byte one.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(layout(16, 8));
        alloc.dealloc(p, layout(1000, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
}

#[test]
fn a_pointer_into_the_middle_of_a_slot_or_block_is_caught() {
    let alloc = allocator();
    // SAFETY: deliberately broken: interior pointers.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(layout(64, 8));
        alloc.dealloc(p.add(8), layout(64, 8));
    });
    assert!(message.contains("not the start"), "{message}");
    let big = layout(3 * PAGE_SIZE, 8);
    // SAFETY: as above, for whole pages.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p.add(PAGE_SIZE), big);
    });
    assert!(message.contains("not the start"), "{message}");
}

#[test]
fn big_blocks_freed_twice_or_with_the_wrong_size_are_caught() {
    let alloc = allocator();
    let big = layout(2 * PAGE_SIZE, 8);
    // SAFETY: deliberately broken: freed with a larger size than allocated.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p, layout(5 * PAGE_SIZE, 8));
    });
    assert!(message.contains("never handed out"), "{message}");
    // SAFETY: deliberately broken: a double free of whole pages.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(big);
        alloc.dealloc(p, big);
        alloc.dealloc(p, big);
    });
    assert!(message.contains("never handed out") && message.contains("dealloc"), "{message}");
}

#[test]
fn realloc_checks_the_old_pointer_first() {
    let alloc = allocator();
    let l = layout(40, 8);
    // SAFETY: deliberately broken: realloc of a freed block.
    let message = panic_message(|| unsafe {
        let p = alloc.alloc(l);
        alloc.dealloc(p, l);
        alloc.realloc(p, l, 4000);
    });
    assert!(message.starts_with("wasm-alloc (checked): realloc of"), "{message}");
}

#[test]
fn the_page_allocator_checks_its_blocks_too() {
    let alloc = PageAllocator::with_memory(OwnedRegion::new(16));
    let l = layout(PAGE_SIZE + 1, 8);
    // SAFETY: deliberately broken: a double free.
    let message = panic_message(|| unsafe {
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
