use super::*;
use crate::page::PageMap;
use crate::testing::OwnedRegion;

/// The class sizes, computed the slow, obvious way: 8, 16, …, 64, then four steps per
/// doubling.
fn expected_sizes() -> std::vec::Vec<usize> {
    let mut sizes: std::vec::Vec<usize> = (1..=8).map(|k| 8 * k).collect();
    let mut base = 64;
    while base < MAX_SLOT {
        sizes.extend((1..=4).map(|k| base + k * base / 4));
        base *= 2;
    }
    sizes
}

/// The class a request should get: the smallest class size that holds `size` and is a
/// multiple of `align`, unless that is the largest (16 KiB, a run), or the request is
/// too big or aligned to more than 64.
fn expected_slot(size: usize, align: usize) -> Option<usize> {
    if align > MAX_CLASS_ALIGN {
        return None;
    }
    let slot = *expected_sizes().iter().find(|&&s| s >= size && s % align == 0)?;
    (slot < MAX_SLOT).then_some(slot)
}

#[test]
fn the_classes_are_eight_byte_steps_then_four_per_doubling() {
    let sizes = expected_sizes();
    assert_eq!(CLASSES, sizes.len());
    assert_eq!(CLASSES, 40);
    for (class, &size) in sizes.iter().enumerate() {
        assert_eq!(slot_size(class), size, "class {class}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "arithmetic only, and slow under Miri")]
fn class_selection_at_every_edge() {
    let mut sizes = std::vec![0, 1, usize::MAX, usize::MAX / 2, usize::MAX / 2 + 2];
    for k in 0..usize::BITS - 1 {
        sizes.extend([(1 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    sizes.extend(expected_sizes().iter().flat_map(|&s| [s - 1, s, s + 1]));
    for &size in &sizes {
        for a in 0..usize::BITS {
            let align = 1 << a;
            let slot = class_of(size, align).map(slot_size);
            assert_eq!(slot, expected_slot(size, align), "size {size} align {align}");
        }
    }
    assert_eq!(class_of(MAX_SLOT + 1, 1), None);
    assert_eq!(class_of(1, 128), None, "aligned to more than 64: a run");
    assert_eq!(class_of(MAX_SLOT, 8), None, "the largest class: a run");
}

/// Every size up to the largest class: the smallest class that fits, which wastes less
/// than a fifth of it above 64 B, and at most 7 bytes up to 64 B (what the README says).
#[test]
#[cfg_attr(miri, ignore = "arithmetic only, and slow under Miri")]
fn every_size_in_the_class_range_gets_the_smallest_class_that_fits() {
    let sizes = expected_sizes();
    for size in 0..=MAX_SLOT {
        let expected = *sizes.iter().find(|&&s| s >= size).unwrap();
        match class_of(size, 1) {
            Some(class) => {
                assert_eq!(slot_size(class), expected, "size {size}");
                assert!(size <= 64 || (slot_size(class) - size) * 5 < slot_size(class), "size {size}");
                assert!(size > 64 || slot_size(class) - size.max(1) <= 7, "size {size}");
            }
            None => assert_eq!(expected, MAX_SLOT, "size {size} is a run only in the largest class"),
        }
    }
}

/// A span's header and tail waste at most an eighth of it (a sixteenth for most), and
/// its slots follow the 64-byte header back to back: no footer, no gap.
#[test]
fn spans_waste_little_and_slots_are_back_to_back() {
    let memory = OwnedRegion::new(64);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    for class in (0..CLASSES).filter(|&c| SPAN_UNITS[c] != 0) {
        let (size, bytes) = (slot_size(class), span_bytes(class));
        let slots = CAPACITY[class] as usize;
        assert!((bytes - slots * size) * 8 <= bytes, "class {size}: {slots} slots in {bytes} B");
        let first = classes.refill(&memory, &mut pages, class).unwrap();
        assert_eq!(
            memory.offset(first.as_ptr()) % bytes,
            HEADER,
            "class {size}: first slot after the header"
        );
        let mut count = 1;
        while let Some(slot) = classes.pop(class) {
            assert_eq!(slot.as_ptr().addr() - first.as_ptr().addr(), count * size);
            count += 1;
        }
        assert_eq!(count, slots);
        assert!(slot_size(class) % 64 != 0 || memory.offset(first.as_ptr()) % 64 == 0);
    }
    assert!(classes.check(&memory, &pages).is_ok());
}

#[test]
fn freed_slots_are_reused_last_in_first_out() {
    let memory = OwnedRegion::new(1);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    let a = classes.refill(&memory, &mut pages, 2).unwrap();
    let b = classes.pop(2).unwrap();
    let c = classes.pop(2).unwrap();
    // SAFETY: the slots came from class 2 and are not used.
    unsafe {
        assert!(!classes.push(&memory, &mut pages, 2, a));
        assert!(!classes.push(&memory, &mut pages, 2, b));
    }
    assert_eq!(classes.pop(2), Some(b));
    assert_eq!(classes.pop(2), Some(a));
    let stats = classes.stats();
    assert_eq!((stats[2].spans, stats[2].held_bytes, stats[2].used_bytes), (1, UNIT, 3 * slot_size(2)));
    let _ = c;
}

/// A slot of `class` as `ClassHeap::alloc` takes one: from the first span in the list,
/// which is dropped from it when found full, else from a refill.
fn take(
    classes: &mut SizeClasses,
    memory: &OwnedRegion,
    pages: &mut PageMap,
    class: usize,
) -> Option<NonNull<u8>> {
    loop {
        if let Some(slot) = classes.pop(class) {
            return Some(slot);
        }
        if !classes.drop_full(class) {
            return classes.refill(memory, pages, class);
        }
    }
}

/// Full spans leave the list lazily: a span that fills stays first until an allocation
/// finds it full, so a slot freed into it at once is handed out again with no link or
/// unlink; a span dropped as full rejoins the list, first, when a slot comes back.
#[test]
fn a_full_span_leaves_the_list_only_when_an_allocation_finds_it_full() {
    let memory = OwnedRegion::new(4);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    let class = class_of(1000, 8).unwrap();
    let capacity = CAPACITY[class] as usize;
    let first: std::vec::Vec<_> =
        (0..capacity).map(|_| take(&mut classes, &memory, &mut pages, class).unwrap()).collect();
    assert_eq!(classes.pop(class), None, "full, and still first in the list");
    assert!(classes.check(&memory, &pages).is_ok());
    // SAFETY: a slot of this class, freed once.
    unsafe { classes.push(&memory, &mut pages, class, first[3]) };
    assert_eq!(classes.pop(class), Some(first[3]), "the same span, not relinked");
    // Found full: dropped, and a second span serves.
    let second = take(&mut classes, &memory, &mut pages, class).unwrap();
    assert_eq!(classes.stats()[class].spans, 2);
    // SAFETY: as above.
    unsafe { classes.push(&memory, &mut pages, class, first[5]) };
    assert_eq!(classes.pop(class), Some(first[5]), "the first span, linked again at the head");
    assert_eq!(classes.pop(class), None);
    assert!(classes.drop_full(class));
    assert!(classes.pop(class).is_some_and(|slot| slot != second), "then the second span");
    assert!(classes.check(&memory, &pages).is_ok());
}

/// The heart of the redesign: a span whose last slot is freed goes back to the page
/// layer (where any size can use it), except one empty span a class keeps in its list,
/// which serves its next allocations as it is.
#[test]
fn an_emptied_span_goes_back_unless_its_class_keeps_none() {
    let memory = OwnedRegion::new(4);
    let (mut pages, mut classes) = (PageMap::new(), SizeClasses::new());
    let class = class_of(1000, 8).unwrap();
    let capacity = CAPACITY[class] as usize;
    let mut slots = std::vec![classes.refill(&memory, &mut pages, class).unwrap()];
    while slots.len() < 2 * capacity {
        slots.push(take(&mut classes, &memory, &mut pages, class).unwrap());
    }
    assert_eq!(classes.stats()[class].spans, 2);
    let free_before = pages.free_units();
    let (first, second) = slots.split_at(capacity);
    // The first span empties: the class keeps it.
    // SAFETY: each slot came from this class and is freed once.
    unsafe {
        for &slot in first {
            assert!(!classes.push(&memory, &mut pages, class, slot));
        }
    }
    let stats = classes.stats()[class];
    assert_eq!((stats.spans, stats.empty_spans, pages.free_units()), (2, 1, free_before));
    assert!(classes.check(&memory, &pages).is_ok());
    // The second empties too: with one empty span kept already, it goes back.
    // SAFETY: as above.
    unsafe {
        for (i, &slot) in second.iter().enumerate() {
            let released = classes.push(&memory, &mut pages, class, slot);
            assert_eq!(released, i == capacity - 1, "slot {i}");
        }
    }
    assert_eq!(pages.free_units(), free_before + SPAN_UNITS[class] as usize);
    let stats = classes.stats()[class];
    assert_eq!((stats.spans, stats.empty_spans, stats.used_bytes), (1, 1, 0));
    assert!(classes.check(&memory, &pages).is_ok());
    // The class's next allocations come from the span it kept, as it is (the slot freed
    // last first): the page layer is not asked, and it is an ordinary span again.
    let again = take(&mut classes, &memory, &mut pages, class).unwrap();
    assert_eq!(pages.free_units(), free_before + SPAN_UNITS[class] as usize);
    assert_eq!((again, classes.pop(class)), (first[capacity - 1], Some(first[capacity - 2])));
    assert_eq!(classes.stats()[class].empty_spans, 0);
    assert!(classes.check(&memory, &pages).is_ok());
}
