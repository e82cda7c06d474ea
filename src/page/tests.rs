use core::ops::Range;

use super::*;
use crate::testing::{OwnedRegion, Rng, SharedMemory};

/// Units per page, short.
const P: usize = UNITS_PER_PAGE;

/// Panics unless the page map's invariants hold.
fn assert_sound(map: &PageMap, memory: &impl Memory) {
    if let Err(broken) = map.check(memory) {
        panic!("{broken}");
    }
}

/// A run handed out, as the tests look at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    /// Its first unit.
    start: usize,
    /// Whether it starts at or above `fresh_from` as read before the call.
    zeroed: bool,
}

/// [`PageMap::alloc`], with the run's first unit and whether it is still zero.
fn hand_out(map: &mut PageMap, memory: &impl Memory, count: usize, align: usize) -> Option<Run> {
    let fresh = map.fresh_from();
    let ptr = map.alloc(memory, count, align)?;
    let start = memory.offset(ptr.as_ptr()) / UNIT;
    Some(Run { start, zeroed: start >= fresh })
}

/// Allocates a run that must succeed and checks the invariants afterwards.
fn alloc(map: &mut PageMap, memory: &impl Memory, count: usize, align: usize) -> usize {
    let start = hand_out(map, memory, count, align).expect("units").start;
    assert_sound(map, memory);
    start
}

/// Releases units and checks the invariants afterwards.
fn release(map: &mut PageMap, memory: &impl Memory, units: Range<usize>) {
    // SAFETY: the tests release only units they took from `map` (or, where a test
    // says so, units beyond the region, which the map must ignore), and never read or
    // write them afterwards.
    unsafe { map.release(memory, units) };
    assert_sound(map, memory);
}

/// Resizes a run in place.
fn resize(map: &mut PageMap, memory: &impl Memory, start: usize, old: usize, new: usize) -> bool {
    // SAFETY: the tests resize only runs they took from `map` and still hold, and never
    // use a shrunk tail again.
    unsafe { map.resize(memory, start, old, new) }
}

#[test]
fn units_for_and_align_in_units_round_up_without_overflow() {
    assert_eq!((units_for(0), units_for(1), units_for(UNIT), units_for(UNIT + 1)), (1, 1, 1, 2));
    assert_eq!(units_for(PAGE_SIZE), P);
    assert_eq!(units_for(usize::MAX), usize::MAX / UNIT + 1);
    assert_eq!((align_in_units(1), align_in_units(UNIT), align_in_units(2 * UNIT)), (1, 1, 2));
    assert_eq!(align_in_units(PAGE_SIZE), P);
}

#[test]
fn runs_are_first_fit_and_aligned() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 1), 0);
    assert_eq!(alloc(&mut map, &memory, 3, 1), 1);
    // Aligned to 4 units: unit 4, right after the 3-unit run.
    assert_eq!(alloc(&mut map, &memory, 2, 4), 4);
    release(&mut map, &memory, 1..4);
    // The freed run is found again, first fit.
    assert_eq!(alloc(&mut map, &memory, 2, 1), 1);
    assert_eq!(alloc(&mut map, &memory, 1, 1), 3);
    // Aligned to 8: the first free unit on an 8-unit boundary.
    assert_eq!(alloc(&mut map, &memory, 1, 8), 8);
    assert_eq!(memory.size(), 1, "all of it in the first page");
    // Aligned to a page: no free unit of page 0 is, so memory grows by a page.
    assert_eq!(alloc(&mut map, &memory, 1, P), P);
    // 32 units aligned to 32: after the free units 17..32, memory grows by 2 pages.
    assert_eq!(alloc(&mut map, &memory, 2 * P, 2 * P), 2 * P);
    assert_eq!(memory.size(), 4);
    // The gaps are filled first fit: 6..8, 9..16, 17..32.
    assert_eq!(alloc(&mut map, &memory, 2, 1), 6);
    assert_eq!(alloc(&mut map, &memory, 7, 1), 9);
    assert_eq!(alloc(&mut map, &memory, P - 1, 1), P + 1);
    assert_eq!((memory.size(), map.free_units()), (4, 0));
}

/// Alignment is of addresses: in a region whose page 0 is 3 pages (48 units) past a
/// 1 MiB boundary, a 32-unit (128 KiB) aligned run starts at index 16.
#[test]
fn alignment_is_of_addresses_not_unit_indexes() {
    let memory = OwnedRegion::skewed(16, 3);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 2 * P), P);
    assert_eq!(memory.ptr(P * UNIT).addr() % (2 * P * UNIT), 0);
    assert_eq!(memory.size(), 2);
    // Aligned to 64 units: unit 80 (address unit 128); memory grows from 2 to 6 pages.
    assert_eq!(alloc(&mut map, &memory, 1, 4 * P), 5 * P);
    assert_eq!(memory.ptr(5 * P * UNIT).addr() % (4 * P * UNIT), 0);
    assert_eq!(memory.size(), 6);
    assert_eq!(map.free_units(), 6 * P - 2, "padding units 0..16, 17..80 and 81..96");
    assert_eq!(alloc(&mut map, &memory, 1, 2 * P), 3 * P);
    // Up to a page, index and address alignment agree: page 0 is 64 KiB aligned.
    assert_eq!(alloc(&mut map, &memory, 1, P), 0);
    assert_eq!(memory.size(), 6);
}

#[test]
fn a_run_spanning_words_is_found() {
    let memory = OwnedRegion::new(16);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 150, 1), 0);
    assert_eq!((memory.size(), map.free_units()), (10, 10), "150 units take 10 pages");
    release(&mut map, &memory, 60..130);
    assert_eq!(alloc(&mut map, &memory, 70, 1), 60);
    assert_eq!(map.free_units(), 10);
    // 1..64 (63 units, in word 0) is too short; 65..140 (over words 1 and 2) fits.
    release(&mut map, &memory, 1..64);
    release(&mut map, &memory, 65..140);
    assert_eq!(alloc(&mut map, &memory, 70, 1), 65);
    assert_eq!(alloc(&mut map, &memory, 63, 1), 1);
    assert_eq!(memory.size(), 10, "no growth");
}

#[test]
fn the_free_run_at_the_top_grows_by_only_the_missing_pages() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 2, 1);
    let block = alloc(&mut map, &memory, 3, 1);
    release(&mut map, &memory, block..block + 3);
    assert_eq!(memory.size(), 1);
    // Units 2..16 are free at the top: 30 units need only 1 more page, not 2.
    assert_eq!(alloc(&mut map, &memory, 30, 1), 2);
    assert_eq!(memory.size(), 2);
    assert_eq!((map.growth(), map.free_units()), ((2, 2 * P), 0));
    // Units 20..32 free at the top: 52 units need 40 more, 3 pages.
    release(&mut map, &memory, 20..32);
    assert_eq!(alloc(&mut map, &memory, 52, 1), 20);
    assert_eq!(memory.size(), 5);
    assert_eq!((map.growth(), map.free_units()), ((3, 5 * P), 8));
}

#[test]
fn memory_grows_ahead_by_an_eighth_and_keeps_the_rest_free() {
    let memory = OwnedRegion::new(200);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 64 * P, 1), 0);
    assert_eq!(memory.size(), 64, "nothing ahead of an empty memory");
    assert_eq!(alloc(&mut map, &memory, 1, 1), 64 * P);
    assert_eq!((memory.size(), map.free_units()), (73, 9 * P - 1), "1 page + 64/8 ahead");
    for unit in 64 * P + 1..73 * P {
        assert_eq!(hand_out(&mut map, &memory, 1, 1).map(|run| run.start), Some(unit));
    }
    assert_sound(&map, &memory);
    assert_eq!((memory.size(), map.growth().0), (73, 2), "served by the pages grown ahead");

    // Near the cap, the pages ahead are dropped, never the request.
    let memory = OwnedRegion::new(70);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 64 * P, 1);
    assert_eq!(alloc(&mut map, &memory, 6 * P - 5, 1), 64 * P);
    // Three calls: the first page, the request with the pages ahead (refused), without.
    assert_eq!((memory.size(), map.free_units(), map.growth()), (70, 5, (3, 70 * P)));

    // In a big memory, at most 64 pages (4 MiB) ahead, not an eighth.
    let memory = OwnedRegion::new(1000);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 800 * P, 1);
    assert_eq!(alloc(&mut map, &memory, 1, 1), 800 * P);
    assert_eq!((memory.size(), map.free_units()), (865, 65 * P - 1), "1 page + 64 ahead, not 100");
}

#[test]
fn alignment_padding_from_growth_is_reused() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    // Aligned to 4 pages: memory grows to 5 pages, units 1..64 are padding.
    assert_eq!(alloc(&mut map, &memory, P, 4 * P), 4 * P);
    assert_eq!(memory.size(), 5);
    assert_eq!(map.free_units(), 4 * P - 1);
    assert_eq!(alloc(&mut map, &memory, 4 * P - 1, 1), 1);
    assert_eq!((memory.size(), map.free_units()), (5, 0), "the padding served it without growing");
}

#[test]
fn a_run_of_one_unit_leaves_the_rest_of_its_page_free() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 1), 0);
    assert_eq!((memory.size(), map.growth()), (1, (1, P)));
    assert_eq!(map.free_units(), P - 1);
    assert!((1..P).all(|unit| map.is_free(unit)));
    assert!(!map.is_free(0) && !map.is_free(P));
}

#[test]
fn a_grown_page_serves_sixteen_one_unit_runs_without_growing_again() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    for unit in 0..P {
        assert_eq!(alloc(&mut map, &memory, 1, 1), unit);
        assert_eq!(map.growth(), (1, P));
    }
    assert_eq!((memory.size(), map.free_units()), (1, 0));
    // The seventeenth grows the next page.
    assert_eq!(alloc(&mut map, &memory, 1, 1), P);
    assert_eq!((memory.size(), map.growth(), map.free_units()), (2, (2, 2 * P), P - 1));
}

#[test]
fn units_of_pages_other_code_grew_are_never_used() {
    // Before each of our grow calls, "someone else" grows 1 page.
    let memory = SharedMemory::new(64, 1, usize::MAX);
    let mut map = PageMap::new();
    let foreign = |unit: usize| memory.foreign_pages.borrow().contains(&(unit / P));
    let mut ours = std::vec::Vec::new();
    for count in [1, 20, 1, 40] {
        let start = alloc(&mut map, &memory, count, 1);
        assert!(!(start..start + count).any(foreign), "run {start}+{count} in someone else's page");
        ours.extend(start..start + count);
    }
    // Free everything and take it all again, one unit at a time.
    for &unit in &ours {
        release(&mut map, &memory, unit..unit + 1);
    }
    assert!(!memory.foreign_pages.borrow().is_empty());
    while let Some(run) = hand_out(&mut map, &memory, 1, 1) {
        assert!(!foreign(run.start), "unit {} belongs to someone else", run.start);
        if memory.size() > 40 {
            break;
        }
    }
    assert_sound(&map, &memory);
}

#[test]
fn a_raced_growth_keeps_its_pages_and_tries_again() {
    let memory = SharedMemory::new(64, 1, 0);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    release(&mut map, &memory, 0..1);
    // Page 0's units are free at the top; someone grows 1 page between our look and our
    // grow, which returns page 2 rather than page 1.
    memory.races.set(1);
    let start = alloc(&mut map, &memory, 20, 1);
    assert_eq!(*memory.foreign_pages.borrow(), [1]);
    // Page 0 and the page of the raced growth stay free and ours; the retry found page
    // 2's units free at the top and grew one more page to serve units 32..52.
    assert_eq!((start, memory.size()), (2 * P, 4));
    assert!((0..P).all(|unit| map.is_free(unit)));
    assert!((P..2 * P).all(|unit| !map.is_free(unit)), "the foreign page is not ours");
    assert_eq!((map.free_units(), map.growth()), (P + 12, (3, 3 * P)));
}

/// Growing ahead follows the allocator's own heap, not the memory's size: pages other
/// code grew (or a large stack and static data) do not make a small heap grow far ahead.
#[test]
fn memory_grows_ahead_by_an_eighth_of_its_own_heap() {
    let memory = OwnedRegion::new(200);
    assert_eq!(memory.grow(64), Some(0), "other code's pages");
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 16 * P, 1), 64 * P);
    assert_eq!(memory.size(), 80, "nothing obtained yet: nothing ahead");
    assert_eq!(alloc(&mut map, &memory, 1, 1), 80 * P);
    assert_eq!(memory.size(), 83, "an eighth of the 16 pages obtained, not of the 80 of memory");
    assert_eq!(map.growth(), (2, 19 * P));
    assert_sound(&map, &memory);
}

#[test]
fn out_of_memory_changes_nothing() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 1), 0);
    assert!(hand_out(&mut map, &memory, 4 * P, 1).is_none());
    assert!(hand_out(&mut map, &memory, 1, 4 * P).is_none(), "aligned to 4 pages needs page 4");
    // The two refused calls count too.
    assert_eq!((memory.size(), map.free_units(), map.growth()), (1, P - 1, (3, P)));
    assert_sound(&map, &memory);
    assert_eq!(alloc(&mut map, &memory, 4 * P - 1, 1), 1);
    assert_eq!(memory.size(), 4);
}

#[test]
fn impossible_sizes_and_alignments_fail_without_overflow() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    assert!(hand_out(&mut map, &memory, UNIT_LIMIT + 1, 1).is_none());
    assert!(hand_out(&mut map, &memory, UNIT_LIMIT, 1).is_none());
    assert!(hand_out(&mut map, &memory, usize::MAX, 1).is_none());
    assert!(hand_out(&mut map, &memory, 1, 1 << (usize::BITS - 1)).is_none());
    assert!(hand_out(&mut map, &memory, usize::MAX / 2, 1 << (usize::BITS - 2)).is_none());
    assert_eq!(memory.size(), 0);
    assert!(!resize(&mut map, &memory, 0, 1, usize::MAX));
    assert!(!resize(&mut map, &memory, 0, 1, UNIT_LIMIT + 1));
    // One refused call (`UNIT_LIMIT` units fit the bitmap, not the region); the rest are
    // refused before memory is asked.
    assert_eq!((memory.size(), map.free_units(), map.growth()), (0, 0, (1, 0)));
    assert_sound(&map, &memory);
}

#[test]
fn shrink_and_grow_in_place() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    let block = alloc(&mut map, &memory, 4, 1);
    assert!(resize(&mut map, &memory, block, 4, 2));
    assert_sound(&map, &memory);
    assert!(map.is_free(2) && map.is_free(3));
    // Units 2..16 are free and reach the top: 20 units grow memory by 1 page.
    assert!(resize(&mut map, &memory, block, 2, 20));
    assert_sound(&map, &memory);
    assert_eq!((memory.size(), map.free_units()), (2, 12));
    // A neighbour blocks growth; the top is not reachable.
    let next = alloc(&mut map, &memory, 1, 1);
    assert_eq!(next, 20);
    assert!(!resize(&mut map, &memory, block, 20, 21));
    // Freeing the neighbour lets it grow over it, and up to the top without growing.
    release(&mut map, &memory, next..next + 1);
    assert!(resize(&mut map, &memory, block, 20, 21));
    assert!(resize(&mut map, &memory, block, 21, 2 * P));
    assert_sound(&map, &memory);
    assert_eq!((memory.size(), map.free_units()), (2, 0));

    // When memory cannot grow, the run stays as it was.
    let memory = OwnedRegion::new(2);
    let mut map = PageMap::new();
    let block = alloc(&mut map, &memory, P, 1);
    assert!(resize(&mut map, &memory, block, P, 2 * P));
    assert!(!resize(&mut map, &memory, block, 2 * P, 2 * P + 1));
    assert_eq!((memory.size(), map.free_units(), map.growth()), (2, 0, (3, 2 * P)), "one refused");
    assert_sound(&map, &memory);
}

#[test]
fn grown_units_are_zeroed_recycled_ones_are_not() {
    let memory = OwnedRegion::new(8);
    let mut map = PageMap::new();
    let run = hand_out(&mut map, &memory, 2, 1).unwrap();
    assert!(run.zeroed);
    release(&mut map, &memory, run.start..run.start + 2);
    assert!(!hand_out(&mut map, &memory, 1, 1).unwrap().zeroed);
    // Unit 1 was handed out before; unit 2 is fresh. Together they are not zero.
    assert!(!hand_out(&mut map, &memory, 2, 1).unwrap().zeroed);
    // Unit 3, never handed out, in the page grown for the first run.
    assert!(hand_out(&mut map, &memory, 1, 1).unwrap().zeroed);
    // Units 4..20: the rest of page 0 and a new page.
    let run = hand_out(&mut map, &memory, P, 1).unwrap();
    assert_eq!((run.start, run.zeroed), (4, true));
    assert!(resize(&mut map, &memory, 4, P, 1));
    assert!(!hand_out(&mut map, &memory, 1, 1).unwrap().zeroed, "unit 5, freed by shrinking");
    assert_sound(&map, &memory);
}

/// Marks `units` as handed out; panics if one already was.
fn take(owned: &mut [bool], units: Range<usize>) {
    let first = units.start;
    for (i, unit) in owned[units].iter_mut().enumerate() {
        assert!(!*unit, "unit {} handed out twice", first + i);
        *unit = true;
    }
}

/// Random runs, released and resized: none overlaps another, each is aligned, and every
/// run said to be zero is (each run handed out is filled with a pattern).
#[test]
fn random_runs_never_overlap_and_zeroed_runs_are_zero() {
    const CAP: usize = 48;
    let memory = OwnedRegion::new(CAP);
    let mut map = PageMap::new();
    let mut rng = Rng::new(7);
    let mut owned = [false; CAP * P];
    let mut live: std::vec::Vec<(usize, usize)> = std::vec::Vec::new();
    let fill = |units: Range<usize>| {
        // SAFETY: the units are handed out to this test and lie in the region.
        unsafe { memory.ptr(units.start * UNIT).write_bytes(0xA5, (units.end - units.start) * UNIT) };
    };
    // Under Miri, short runs and fewer steps: every byte of a run is written.
    let long = if cfg!(miri) { 2 * P } else { 4 * P };
    let count = |rng: &mut Rng| 1 + if rng.below(4) == 0 { rng.below(long) } else { rng.below(8) };
    let steps = if cfg!(miri) { 60 } else { 4000 };
    for _ in 0..steps {
        match rng.below(4) {
            0 | 1 => {
                let (count, align) = (count(&mut rng), 1 << rng.below(7));
                if let Some(run) = hand_out(&mut map, &memory, count, align) {
                    let units = run.start..run.start + count;
                    assert_eq!(run.start % align, 0);
                    assert!(units.end <= memory.size() * P);
                    take(&mut owned, units.clone());
                    if run.zeroed {
                        // Every unit handed out was filled whole: its first and last 64
                        // bytes tell whether it is still zero.
                        for unit in units.clone() {
                            for offset in [0, UNIT - 64] {
                                // SAFETY: the run's units are ours and initialised.
                                let bytes = unsafe {
                                    core::slice::from_raw_parts(memory.ptr(unit * UNIT + offset), 64)
                                };
                                assert!(
                                    bytes.iter().all(|&b| b == 0),
                                    "unit {unit} of {units:?} said zero is not"
                                );
                            }
                        }
                    }
                    fill(units);
                    live.push((run.start, count));
                }
            }
            2 if !live.is_empty() => {
                let (start, count) = live.swap_remove(rng.below(live.len()));
                owned[start..start + count].fill(false);
                // SAFETY: a run this test took and no longer uses.
                unsafe { map.release(&memory, start..start + count) };
            }
            3 if !live.is_empty() => {
                let i = rng.below(live.len());
                let (start, old) = live[i];
                let new = count(&mut rng);
                // SAFETY: a live run this test took; a shrunk tail is not used again.
                if resize(&mut map, &memory, start, old, new) {
                    if new > old {
                        take(&mut owned, start + old..start + new);
                        fill(start + old..start + new);
                    } else {
                        owned[start + new..start + old].fill(false);
                    }
                    live[i] = (start, new);
                }
            }
            _ => {}
        }
        assert_sound(&map, &memory);
        let held: usize = live.iter().map(|&(_, count)| count).sum();
        assert_eq!(map.free_units() + held, map.growth().1, "every unit obtained is free or held");
    }
}

#[test]
fn the_initial_heap_is_used_before_growing() {
    // 3 initial pages; the heap starts 100 bytes into unit 24 (half way through page 1).
    let heap_start = PAGE_SIZE + PAGE_SIZE / 2 + 100;
    let memory = OwnedRegion::with_initial_heap(8, 3, heap_start);
    let mut map = PageMap::new();
    map.claim_initial_heap(&memory);
    assert_sound(&map, &memory);
    let whole = 3 * P - 25;
    assert_eq!((map.free_units(), map.growth()), (whole, (0, whole)), "whole units 25..48");
    map.claim_initial_heap(&memory);
    assert_eq!(map.free_units(), whole, "claimed once");
    // Unit 24 holds the heap's first bytes but not all of its own: never used.
    assert!(!map.is_free(24) && map.is_free(25));
    let first = hand_out(&mut map, &memory, 1, 1).unwrap();
    assert_eq!(first, Run { start: 25, zeroed: true });
    for unit in 26..3 * P {
        assert_eq!(alloc(&mut map, &memory, 1, 1), unit);
    }
    assert_eq!((memory.size(), map.growth()), (3, (0, whole)), "no growth");
    assert_eq!(alloc(&mut map, &memory, 1, 1), 3 * P);
    assert_eq!((memory.size(), map.growth()), (4, (1, whole + P)));

    // A heap that starts on a unit boundary is used from there.
    let memory = OwnedRegion::with_initial_heap(8, 1, 2 * UNIT);
    let mut map = PageMap::new();
    map.claim_initial_heap(&memory);
    assert_eq!(alloc(&mut map, &memory, 1, 1), 2);
    assert_eq!(map.free_units(), P - 3);

    // A heap within one unit gives nothing: the first run grows memory.
    let memory = OwnedRegion::with_initial_heap(8, 1, PAGE_SIZE - 100);
    let mut map = PageMap::new();
    map.claim_initial_heap(&memory);
    assert_eq!((map.free_units(), map.growth()), (0, (0, 0)));
    assert_eq!(alloc(&mut map, &memory, 1, 1), P);
    assert_eq!(memory.size(), 2);
}

/// The extended bitmap: units past the conventional 32768 are tracked in 2 pages taken
/// the first time such units are freed (here, by the growth that crosses the
/// conventional bitmap, which grows them), and they are never handed out.
#[test]
#[cfg_attr(miri, ignore = "needs 130 MiB of region")]
fn the_extended_bitmap_is_taken_once_and_never_handed_out() {
    let memory = OwnedRegion::new(CONVENTIONAL_UNITS / P + 8);
    let mut map = PageMap::new();
    let big = CONVENTIONAL_UNITS + 2 * P;
    assert_eq!(alloc(&mut map, &memory, big, 1), 0);
    // The growth crossed the conventional bitmap: 2 more pages, the extended bitmap.
    assert_eq!(memory.size(), big / P + EXTENDED_PAGES);
    let stolen = big..big + EXTENDED_UNITS;
    let bitmap = map.extended_bitmap();
    assert_eq!(bitmap, memory.ptr(stolen.start * UNIT).cast());
    assert!(stolen.clone().all(|unit| !map.is_free(unit)));
    assert_eq!(map.free_units(), 0);
    release(&mut map, &memory, 0..big);
    assert!(map.is_free(CONVENTIONAL_UNITS), "a unit above the conventional bitmap is tracked");
    assert_eq!((map.free_units(), map.extended_bitmap()), (big, bitmap));

    // A run that crosses the conventional/extended boundary is found.
    assert_eq!(alloc(&mut map, &memory, 10, 1), 0);
    release(&mut map, &memory, 0..10);
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS + P, 1), 0);
    assert_eq!(alloc(&mut map, &memory, P, 1), CONVENTIONAL_UNITS + P);
    // Every unit below the bitmap is handed out: the next run grows memory above it.
    assert_eq!(alloc(&mut map, &memory, 1, 1), stolen.end);
    release(&mut map, &memory, 0..big);
    let mut seen = std::vec::Vec::new();
    while let Some(run) = hand_out(&mut map, &memory, 1, 1) {
        seen.push(run.start);
    }
    assert_sound(&map, &memory);
    assert!(!seen.iter().any(|unit| stolen.contains(unit)));
    assert_eq!(seen.len(), memory.size() * P - EXTENDED_UNITS - 1, "every other unit once");
    assert_eq!(map.extended_bitmap(), bitmap, "taken once");
}

#[test]
#[cfg_attr(miri, ignore = "needs 256 MiB of region")]
fn growth_across_the_boundary_frees_padding_into_the_extended_bitmap() {
    let memory = OwnedRegion::new(2 * CONVENTIONAL_UNITS / P + 4);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    // Aligned to 2048 pages: units 1..32768 are padding, the run starts at 32768.
    assert_eq!(alloc(&mut map, &memory, 4 * P, CONVENTIONAL_UNITS), CONVENTIONAL_UNITS);
    // Memory grew 2 more pages, for the extended bitmap right above the run.
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P + 4 + EXTENDED_PAGES);
    assert_eq!(map.extended_bitmap(), memory.ptr((CONVENTIONAL_UNITS + 4 * P) * UNIT).cast());
    assert_eq!(map.free_units(), CONVENTIONAL_UNITS - 1);
    release(&mut map, &memory, CONVENTIONAL_UNITS..CONVENTIONAL_UNITS + 4 * P);
    // The run's units joined the padding run, across the boundary.
    assert_eq!(map.free_units(), CONVENTIONAL_UNITS - 1 + 4 * P);
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS - 1 + 4 * P, 1), 1);
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P + 6, "no growth");
}

/// Growth that only reaches past the conventional bitmap by growing ahead still grows the
/// extended bitmap's 2 pages, at the very top, and they are never handed out.
#[test]
#[cfg_attr(miri, ignore = "needs 133 MiB of region")]
fn growth_that_crosses_the_conventional_bitmap_grows_the_extended_bitmap() {
    let cap = CONVENTIONAL_UNITS / P + 80;
    let memory = OwnedRegion::new(cap);
    let mut map = PageMap::new();
    // 2047 pages: nothing ahead (memory was empty), no extended bitmap.
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS - P, 1), 0);
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P - 1);
    assert!(map.extended_bitmap().is_null());
    // 1 page + 64 ahead reaches past page 2048: memory grows 2 more, the bitmap's.
    assert_eq!(alloc(&mut map, &memory, 1, 1), CONVENTIONAL_UNITS - P);
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P + 64 + EXTENDED_PAGES);
    let stolen = (memory.size() - EXTENDED_PAGES) * P..memory.size() * P;
    let bitmap = map.extended_bitmap();
    assert_eq!(bitmap, memory.ptr(stolen.start * UNIT).cast());
    assert_eq!(map.free_units(), 65 * P - 1);
    assert_eq!(map.growth(), (2, memory.size() * P));
    // Take every unit until memory is exhausted: never the bitmap's.
    let mut seen = 0;
    while let Some(run) = hand_out(&mut map, &memory, 1, 1) {
        assert!(!stolen.contains(&run.start), "unit {} is the extended bitmap", run.start);
        seen += 1;
    }
    assert_sound(&map, &memory);
    assert_eq!(memory.size(), cap);
    assert_eq!(seen, cap * P - (CONVENTIONAL_UNITS - P) - 1 - EXTENDED_UNITS);
    assert_eq!(map.extended_bitmap(), bitmap, "taken once");
}

/// The extended bitmap's 2 pages are grown exactly when growth reaches past page 2048.
#[test]
#[cfg_attr(miri, ignore = "needs 128 MiB of region")]
fn the_extended_bitmap_is_grown_only_past_the_conventional_bitmap() {
    // Up to page 2048: no extra pages, no bitmap.
    let memory = OwnedRegion::new(CONVENTIONAL_UNITS / P + 4);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS, 1), 0);
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P);
    assert!(map.extended_bitmap().is_null());

    // One unit past it: 2049 pages and the bitmap's 2, right above the run.
    let memory = OwnedRegion::new(CONVENTIONAL_UNITS / P + 4);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS + 1, 1), 0);
    assert_eq!(memory.size(), CONVENTIONAL_UNITS / P + 1 + EXTENDED_PAGES);
    assert_eq!(map.extended_bitmap(), memory.ptr((CONVENTIONAL_UNITS + P) * UNIT).cast());
    assert_eq!(map.free_units(), P - 1);

    // When memory cannot grow the bitmap's pages, the run fails and nothing changes.
    let memory = OwnedRegion::new(CONVENTIONAL_UNITS / P + 1);
    let mut map = PageMap::new();
    assert!(hand_out(&mut map, &memory, CONVENTIONAL_UNITS + 1, 1).is_none());
    assert_eq!((memory.size(), map.growth()), (0, (1, 0)), "one refused call");
    assert_sound(&map, &memory);
}

/// An initial heap with exactly 32 units above the conventional bitmap gives them to the
/// extended bitmap.
#[test]
#[cfg_attr(miri, ignore = "needs 129 MiB of region")]
fn the_extended_bitmap_is_taken_from_the_initial_heap() {
    let initial = CONVENTIONAL_UNITS / P + EXTENDED_PAGES;
    let memory = OwnedRegion::with_initial_heap(initial + 1, initial, 0);
    let mut map = PageMap::new();
    map.claim_initial_heap(&memory);
    assert_sound(&map, &memory);
    assert_eq!(map.extended_bitmap(), memory.ptr(CONVENTIONAL_UNITS * UNIT).cast());
    assert_eq!((map.free_units(), map.growth()), (CONVENTIONAL_UNITS, (0, initial * P)));
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS, 1), 0);
    // The next run grows memory above the bitmap; no second bitmap is grown.
    assert_eq!(alloc(&mut map, &memory, 1, 1), initial * P);
    assert_eq!(memory.size(), initial + 1);
}

/// Units above the conventional bitmap freed while there is no extended bitmap, too few
/// to hold one (here: the initial heap's last page), are not recorded: never handed out.
#[test]
#[cfg_attr(miri, ignore = "needs 133 MiB of region")]
fn too_few_units_above_the_conventional_bitmap_are_lost_not_handed_out() {
    let initial = CONVENTIONAL_UNITS / P + 1;
    let memory = OwnedRegion::with_initial_heap(initial + 67, initial, 0);
    let mut map = PageMap::new();
    map.claim_initial_heap(&memory);
    assert!(map.extended_bitmap().is_null());
    assert_eq!(map.free_units(), CONVENTIONAL_UNITS, "units 32768..32784 are lost");
    assert_sound(&map, &memory);
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_UNITS, 1), 0);
    // The next run grows 1 page + 64 ahead + the extended bitmap's 2.
    assert_eq!(alloc(&mut map, &memory, 1, 1), initial * P);
    assert_eq!(memory.size(), initial + 67);
    let stolen = (initial + 65) * P..(initial + 67) * P;
    assert_eq!(map.extended_bitmap(), memory.ptr(stolen.start * UNIT).cast());
    let mut seen = 0;
    while let Some(run) = hand_out(&mut map, &memory, 1, 1) {
        assert!(run.start > initial * P && !stolen.contains(&run.start), "unit {}", run.start);
        seen += 1;
    }
    assert_eq!(seen, 65 * P - 1);
    assert_sound(&map, &memory);
}

/// A memory that other code grew to `first` pages before the page layer's first look
/// (so it has no extended bitmap) and that may grow to `PAGE_LIMIT + 1` pages, as wasm32's
/// memory grows to 65536 pages, one more than its `PAGE_LIMIT`. Only pages from `first`
/// on are backed (by `window`): the page layer touches no page it did not grow.
struct HighMemory {
    window: OwnedRegion,
    first: usize,
}

// SAFETY: pages from `first` on are `window`'s, whose contract `OwnedRegion` keeps; the
// pages below exist only as numbers, and nothing dereferences them (the page layer only
// touches pages its own `grow` returned). Test only.
unsafe impl Memory for HighMemory {
    fn size(&self) -> usize {
        self.first + self.window.size()
    }
    fn grow(&self, delta: usize) -> Option<usize> {
        self.window.grow(delta).map(|old| self.first + old)
    }
    fn ptr(&self, offset: usize) -> *mut u8 {
        self.window.ptr(0).wrapping_sub(self.first * PAGE_SIZE).wrapping_add(offset)
    }
    fn offset(&self, ptr: *const u8) -> usize {
        self.window.offset(ptr).wrapping_add(self.first * PAGE_SIZE)
    }
    fn take_initial_heap(&self) -> Option<Range<usize>> {
        None
    }
}

/// Near `PAGE_LIMIT`, the extended bitmap's 2 pages must still lie above the run that
/// grew them, below `PAGE_LIMIT`: a run that leaves no room for them fails rather than
/// sharing its units with the bitmap.
#[test]
fn the_extended_bitmap_never_lies_in_a_run_near_the_limit() {
    for (count, served) in [(8 * P, true), (9 * P, false), (8 * P + 1, false)] {
        let first = PAGE_LIMIT - 10;
        let memory = HighMemory { window: OwnedRegion::new(11), first };
        let mut map = PageMap::new();
        let run = hand_out(&mut map, &memory, count, 1);
        assert_sound(&map, &memory);
        let bitmap = map.extended_bitmap();
        if let Some(run) = run {
            assert!(!bitmap.is_null());
            let bitmap = memory.offset(bitmap.cast()) / UNIT;
            assert!(
                bitmap >= run.start + count,
                "run {}+{count} holds the extended bitmap at {bitmap}",
                run.start
            );
            assert!(bitmap + EXTENDED_UNITS <= UNIT_LIMIT);
        }
        assert_eq!(run.map(|run| run.start), served.then_some(first * P), "{count} units");
    }
}

/// Units at or past `UNIT_LIMIT` are never marked free, whatever a caller releases.
#[test]
fn units_past_the_limit_are_ignored() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    // SAFETY: units beyond the limit, which the map ignores.
    unsafe { map.release(&memory, UNIT_LIMIT..usize::MAX) };
    assert_eq!(map.free_units(), 0);
    assert!(map.extended_bitmap().is_null());
    assert_sound(&map, &memory);
}

/// Regression (found by the allocator fuzz target's growth model): when growing ahead
/// failed, the fallback still grew the extended bitmap's 2 pages, decided with the pages
/// ahead counted. A request that fit exactly below page 2048 failed; one that ended a
/// page past it lost that page's units (too few for the bitmap).
#[test]
#[cfg_attr(miri, ignore = "needs 128 MiB of region")]
fn growth_without_the_pages_ahead_takes_the_bitmap_pages_only_if_it_crosses() {
    let memory = OwnedRegion::new(2048);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1000 * P, 1), 0);
    assert_eq!(memory.size(), 1000);
    // 1048 pages end exactly at page 2048: with 64 pages ahead they would cross it (and
    // need the bitmap's 2), which the cap refuses; without them they fit.
    assert_eq!(alloc(&mut map, &memory, 1048 * P, 1), 1000 * P);
    assert_eq!(memory.size(), 2048);
    assert!(map.check(&memory).is_ok());
}
