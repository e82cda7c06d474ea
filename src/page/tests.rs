use super::*;
use crate::testing::{OwnedRegion, SharedMemory};

fn alloc(map: &mut PageMap, memory: &impl Memory, count: usize, align: usize) -> usize {
    map.alloc(memory, count, align).expect("pages").start
}

#[test]
fn runs_are_first_fit_and_aligned() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 1), 0);
    assert_eq!(alloc(&mut map, &memory, 3, 1), 1);
    // Aligned to 4 pages: page 4, right after the 3-page run.
    assert_eq!(alloc(&mut map, &memory, 2, 4), 4);
    map.release(&memory, 1..4);
    // The freed run is found again, first fit.
    assert_eq!(alloc(&mut map, &memory, 2, 1), 1);
    assert_eq!(alloc(&mut map, &memory, 1, 1), 3);
    // Aligned to 8: the first free page on an 8-page boundary.
    assert_eq!(alloc(&mut map, &memory, 1, 8), 8);
}

/// Alignment is of addresses: in a region whose page 0 is 3 pages past a 128 MiB
/// boundary, a 4-page-aligned block starts at index 1.
#[test]
fn alignment_is_of_addresses_not_page_indexes() {
    let memory = OwnedRegion::skewed(16, 3);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 4), 1);
    assert_eq!(alloc(&mut map, &memory, 1, 8), 5);
    assert_eq!(memory.ptr(5 * PAGE_SIZE).addr() % (8 * PAGE_SIZE), 0);
    assert_eq!(map.free_pages(), 4, "padding pages 0 and 2..5");
    assert_eq!(alloc(&mut map, &memory, 1, 4), 9);
}

#[test]
fn a_run_spanning_words_is_found() {
    let memory = OwnedRegion::new(200);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 150, 1), 0);
    map.release(&memory, 60..130);
    assert_eq!(alloc(&mut map, &memory, 70, 1), 60);
    assert_eq!(map.free_pages(), 0);
}

#[test]
fn the_free_run_at_the_top_grows_by_only_the_missing_pages() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 2, 1);
    let block = alloc(&mut map, &memory, 3, 1);
    map.release(&memory, block..block + 3);
    assert_eq!(memory.size(), 5);
    // Pages 2..5 are free at the top: 5 pages need only 2 more.
    assert_eq!(alloc(&mut map, &memory, 5, 1), 2);
    assert_eq!(memory.size(), 7);
    assert_eq!(map.growth(), (3, 7));
}

#[test]
fn memory_grows_ahead_by_an_eighth_and_keeps_the_rest_free() {
    let memory = OwnedRegion::new(200);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 64, 1), 0);
    assert_eq!(memory.size(), 64, "nothing ahead of an empty memory");
    assert_eq!(alloc(&mut map, &memory, 1, 1), 64);
    assert_eq!((memory.size(), map.free_pages()), (73, 8), "1 page + 64/8 ahead");
    for _ in 0..8 {
        alloc(&mut map, &memory, 1, 1);
    }
    assert_eq!((memory.size(), map.growth().0), (73, 2), "served by the pages grown ahead");

    // Near the cap, the pages ahead are dropped, never the request.
    let memory = OwnedRegion::new(70);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 64, 1);
    assert_eq!(alloc(&mut map, &memory, 6, 1), 64);
    assert_eq!((memory.size(), map.free_pages()), (70, 0));

    // In a big memory, at most 64 pages (4 MiB) ahead, not an eighth.
    let memory = OwnedRegion::new(1000);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 800, 1);
    assert_eq!(alloc(&mut map, &memory, 1, 1), 800);
    assert_eq!((memory.size(), map.free_pages()), (865, 64), "1 page + 64 ahead, not 100");
}

#[test]
fn alignment_padding_from_growth_is_reused() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    // Aligned to 4 pages: memory grows to 8, pages 1..4 are padding.
    assert_eq!(alloc(&mut map, &memory, 4, 4), 4);
    assert_eq!(memory.size(), 8);
    assert_eq!(map.free_pages(), 3);
    assert_eq!(alloc(&mut map, &memory, 3, 1), 1);
    assert_eq!(memory.size(), 8, "the padding served it without growing");
}

#[test]
fn pages_other_code_grew_are_never_used() {
    // Before each of our grow calls, "someone else" grows 1 page.
    let memory = SharedMemory::new(64, 1, usize::MAX);
    let mut map = PageMap::new();
    let mut ours = std::vec::Vec::new();
    for count in [1, 2, 1, 3] {
        let start = alloc(&mut map, &memory, count, 1);
        ours.extend(start..start + count);
    }
    // Free everything and take it all again, one page at a time.
    for &page in &ours {
        map.release(&memory, page..page + 1);
    }
    let foreign = memory.foreign_pages.borrow().clone();
    assert!(!foreign.is_empty());
    while let Some(run) = map.alloc(&memory, 1, 1) {
        assert!(!foreign.contains(&run.start), "page {} belongs to someone else", run.start);
        if memory.size() > 40 {
            break;
        }
    }
}

#[test]
fn a_raced_growth_keeps_its_pages_and_tries_again() {
    let memory = SharedMemory::new(64, 1, 0);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    map.release(&memory, 0..1);
    // Page 0 is free at the top; someone grows 1 page between our look and our grow.
    memory.races.set(1);
    let start = alloc(&mut map, &memory, 2, 1);
    assert!(!memory.foreign_pages.borrow().contains(&start));
    assert!(!memory.foreign_pages.borrow().contains(&(start + 1)));
    // Page 0 and the page of the raced growth (2) stay free and ours; the retry found
    // page 2 free at the top and grew one more page to serve 2..4.
    assert_eq!((start, memory.size()), (2, 4));
    assert!(map.is_free(0));
    assert_eq!(*memory.foreign_pages.borrow(), [1]);
}

#[test]
fn out_of_memory_changes_nothing() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    assert_eq!(alloc(&mut map, &memory, 1, 1), 0);
    assert!(map.alloc(&memory, 4, 1).is_none());
    assert!(map.alloc(&memory, 1, 4).is_none(), "aligned to 4 needs page 4");
    assert_eq!((memory.size(), map.free_pages(), map.growth()), (1, 0, (1, 1)));
    assert_eq!(alloc(&mut map, &memory, 3, 1), 1);
}

#[test]
fn impossible_sizes_and_alignments_fail_without_overflow() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    assert!(map.alloc(&memory, PAGE_LIMIT + 1, 1).is_none());
    assert!(map.alloc(&memory, usize::MAX, 1).is_none());
    assert!(map.alloc(&memory, 1, 1 << (usize::BITS - 1)).is_none());
    assert!(map.alloc(&memory, usize::MAX / 2, 1 << (usize::BITS - 2)).is_none());
    assert_eq!(memory.size(), 0);
    assert!(!map.resize(&memory, 0, 1, usize::MAX));
}

#[test]
fn shrink_and_grow_in_place() {
    let memory = OwnedRegion::new(64);
    let mut map = PageMap::new();
    let block = alloc(&mut map, &memory, 4, 1);
    assert!(map.resize(&memory, block, 4, 2));
    assert!(map.is_free(2) && map.is_free(3));
    // Pages 2 and 3 are free and the block then reaches the top: grow memory by 1.
    assert!(map.resize(&memory, block, 2, 5));
    assert_eq!((memory.size(), map.free_pages()), (5, 0));
    // A neighbour blocks growth; the top is not reachable.
    let next = alloc(&mut map, &memory, 1, 1);
    assert_eq!(next, 5);
    assert!(!map.resize(&memory, block, 5, 6));
    // Freeing the neighbour lets it grow over it.
    map.release(&memory, next..next + 1);
    assert!(map.resize(&memory, block, 5, 6));
    assert_eq!(memory.size(), 6);
}

#[test]
fn grown_pages_are_zeroed_recycled_ones_are_not() {
    let memory = OwnedRegion::new(8);
    let mut map = PageMap::new();
    let run = map.alloc(&memory, 2, 1).unwrap();
    assert!(run.zeroed);
    map.release(&memory, run.start..run.start + 2);
    assert!(!map.alloc(&memory, 1, 1).unwrap().zeroed);
    // Page 1 was handed out before; page 2 is fresh. Together they are not zero.
    assert!(!map.alloc(&memory, 2, 1).unwrap().zeroed);
    assert!(map.alloc(&memory, 1, 1).unwrap().zeroed);
}

#[test]
fn the_initial_heap_is_used_before_growing() {
    // 3 initial pages; the heap starts half way through page 1.
    let memory = OwnedRegion::with_initial_heap(8, 3, PAGE_SIZE + PAGE_SIZE / 2);
    let mut map = PageMap::new();
    let fragment = map.claim_initial_heap(&memory);
    assert_eq!(fragment, Some(PAGE_SIZE + PAGE_SIZE / 2..2 * PAGE_SIZE));
    assert_eq!(map.claim_initial_heap(&memory), None, "claimed once");
    assert_eq!(alloc(&mut map, &memory, 1, 1), 2);
    assert_eq!(memory.size(), 3, "no growth");
    assert_eq!(map.growth(), (0, 1));
}

/// The extended bitmap: pages past the conventional 2048 are tracked in a page stolen
/// from the first such range freed, which is never handed out again.
#[test]
#[cfg_attr(miri, ignore = "needs 130 MiB of region")]
fn the_extended_bitmap_is_stolen_once_and_never_handed_out() {
    let memory = OwnedRegion::new(CONVENTIONAL_PAGES + 8);
    let mut map = PageMap::new();
    let big = alloc(&mut map, &memory, CONVENTIONAL_PAGES + 2, 1);
    assert!(map.extended_bitmap().is_null());
    map.release(&memory, big..big + CONVENTIONAL_PAGES + 2);
    let stolen = CONVENTIONAL_PAGES + 1;
    assert_eq!(map.extended_bitmap(), memory.ptr(stolen * PAGE_SIZE).cast());
    assert!(!map.is_free(stolen));
    assert!(map.is_free(CONVENTIONAL_PAGES), "a page above 2048 is tracked");

    // A run that crosses the conventional/extended boundary is found.
    assert_eq!(alloc(&mut map, &memory, 10, 1), 0);
    map.release(&memory, 0..10);
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_PAGES + 1, 1), 0);
    // Every page is now handed out but the stolen one; the next grows memory.
    let next = alloc(&mut map, &memory, 1, 1);
    assert_eq!(next, CONVENTIONAL_PAGES + 2);
    let mut seen = std::vec::Vec::new();
    map.release(&memory, 0..CONVENTIONAL_PAGES + 1);
    while let Some(run) = map.alloc(&memory, 1, 1) {
        seen.push(run.start);
    }
    assert!(!seen.contains(&stolen));
    assert_eq!(seen.len(), CONVENTIONAL_PAGES + 1 + 5, "every other page once");
}

#[test]
#[cfg_attr(miri, ignore = "needs 130 MiB of region")]
fn growth_across_the_boundary_frees_padding_into_the_extended_bitmap() {
    let memory = OwnedRegion::new(2 * CONVENTIONAL_PAGES + 4);
    let mut map = PageMap::new();
    alloc(&mut map, &memory, 1, 1);
    // Aligned to 2048 pages: pages 1..2048 are padding, the block starts at 2048.
    assert_eq!(alloc(&mut map, &memory, 4, CONVENTIONAL_PAGES), CONVENTIONAL_PAGES);
    assert_eq!(map.free_pages(), CONVENTIONAL_PAGES - 1);
    map.release(&memory, CONVENTIONAL_PAGES..CONVENTIONAL_PAGES + 4);
    // Page 2051 became the extended bitmap; 2048..2051 joined the padding run.
    assert_eq!(map.free_pages(), CONVENTIONAL_PAGES + 2);
    assert_eq!(alloc(&mut map, &memory, CONVENTIONAL_PAGES + 2, 1), 1);
}

/// Pages at or past `PAGE_LIMIT` are never marked free, whatever a caller releases.
#[test]
fn pages_past_the_limit_are_ignored() {
    let memory = OwnedRegion::new(4);
    let mut map = PageMap::new();
    map.release(&memory, PAGE_LIMIT..usize::MAX);
    assert_eq!(map.free_pages(), 0);
    assert!(map.extended_bitmap().is_null());
}
