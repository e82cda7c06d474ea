use super::*;
use crate::page::PageMap;
use crate::testing::OwnedRegion;

/// The slot a request should get, computed the slow, obvious way.
fn expected_slot(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align).max(MIN_SLOT).checked_next_power_of_two()?;
    (need <= MAX_SLOT).then_some(need)
}

#[test]
fn class_selection_at_every_edge() {
    let mut sizes = std::vec![0, 1, usize::MAX, usize::MAX / 2, usize::MAX / 2 + 2];
    for k in 0..usize::BITS - 1 {
        sizes.extend([(1 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    for &size in &sizes {
        for a in 0..usize::BITS {
            let align = 1 << a;
            let slot = class_of(size, align).map(slot_size);
            assert_eq!(slot, expected_slot(size, align), "size {size} align {align}");
            if let Some(slot) = slot {
                assert!(slot >= size && slot >= align && slot % align == 0);
            }
        }
    }
    assert_eq!(CLASSES, 13);
    assert_eq!(class_of(MAX_SLOT, 1), Some(CLASSES - 1));
    assert_eq!(class_of(MAX_SLOT + 1, 1), None);
    assert_eq!(class_of(1, MAX_SLOT * 2), None, "over-aligned requests take pages");
}

#[test]
fn every_size_in_the_small_range_gets_the_smallest_slot_that_fits() {
    for size in 0..=MAX_SLOT {
        let slot = slot_size(class_of(size, 1).unwrap());
        assert!(slot >= size.max(MIN_SLOT) && (slot == MIN_SLOT || slot / 2 < size));
    }
}

/// Unlike Zig's allocator, a slot in use has no footer: 2^k bytes use a 2^k-byte slot,
/// so consecutive slots of a fresh page are exactly 2^k apart.
#[test]
fn a_power_of_two_request_uses_a_slot_of_its_own_size() {
    let memory = OwnedRegion::new(CLASSES);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    for class in 0..CLASSES {
        let size = slot_size(class);
        assert_eq!(class_of(size, 1), Some(class));
        let first = classes.refill(&memory, &mut pages, class).unwrap();
        let second = classes.pop(class).unwrap();
        assert_eq!(second.as_ptr().addr() - first.as_ptr().addr(), size, "class {size}");
    }
}

#[test]
fn a_page_holds_exactly_page_size_over_slot_size_slots() {
    let memory = OwnedRegion::new(CLASSES + 1);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    for class in 0..CLASSES {
        let first = classes.refill(&memory, &mut pages, class).unwrap();
        let mut count = 1;
        while let Some(slot) = classes.pop(class) {
            assert_eq!(slot.as_ptr().addr() - first.as_ptr().addr(), count * slot_size(class));
            count += 1;
        }
        assert_eq!(count, PAGE_SIZE / slot_size(class));
    }
}

#[test]
fn freed_slots_are_reused_last_in_first_out() {
    let memory = OwnedRegion::new(1);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    let a = classes.refill(&memory, &mut pages, 2).unwrap();
    let b = classes.pop(2).unwrap();
    // SAFETY: both slots came from class 2 and are not used.
    unsafe {
        classes.push(2, a);
        classes.push(2, b);
    }
    assert_eq!(classes.pop(2), Some(b));
    assert_eq!(classes.pop(2), Some(a));
    let stats = classes.stats();
    assert_eq!(stats[2].held_bytes, PAGE_SIZE);
    assert_eq!(stats[2].free_bytes, PAGE_SIZE - 2 * slot_size(2));
}

/// The bytes of the initial heap before its first page boundary are carved into slots,
/// and every 8-byte-aligned byte of them ends up in exactly one slot.
#[test]
fn the_fragment_is_carved_without_losing_a_byte() {
    let memory = OwnedRegion::new(2);
    assert_eq!(memory.grow(1), Some(0));
    let mut classes = SizeClasses::new();
    let (start, end) = (8 * 3 + 5, PAGE_SIZE - 8);
    classes.adopt_fragment(memory.ptr(start)..memory.ptr(end));
    let mut shadow = crate::testing::ShadowHeap::default();
    let mut total = 0;
    // Ask for every class, biggest first, until the fragment is gone, then drain lists.
    for class in (0..CLASSES).rev() {
        while let Some(slot) = classes.pop(class).or_else(|| classes.carve_fragment(class)) {
            let addr = memory.offset(slot.as_ptr());
            assert!(addr >= start && addr + slot_size(class) <= end, "slot {addr:#x} outside the fragment");
            assert_eq!(addr % slot_size(class), 0);
            shadow.insert(addr, slot_size(class));
            total += slot_size(class);
        }
    }
    assert_eq!(total, end - start.next_multiple_of(MIN_SLOT));
    assert_eq!(memory.size(), 1, "no page was taken");
    let held: usize = classes.stats().iter().map(|c| c.held_bytes).sum();
    assert_eq!(held, total);
}
