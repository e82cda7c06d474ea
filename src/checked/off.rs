//! Checked mode off: every hook does nothing and is inlined away.

use core::ops::Range;
use core::ptr::NonNull;

use super::Misuse;
use crate::class::SizeClasses;
use crate::memory::Memory;
use crate::page::PageMap;

/// Pages the tag table takes: none.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) const TAG_PAGES: usize = 0;

/// Free-list links are stored as they are.
pub(crate) const LINK_KEY: usize = 0;

/// No state, no checks.
pub(crate) struct Checks;

#[allow(clippy::unused_self)]
impl Checks {
    pub(crate) const fn new() -> Self {
        Checks
    }
    #[inline(always)]
    pub(crate) fn prepare<M: Memory>(&mut self, _: &M, _: &mut PageMap) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn tag_units(&self) -> usize {
        0
    }
    #[inline(always)]
    pub(crate) fn take_misuse(&mut self) -> Option<Misuse> {
        None
    }
    #[inline(always)]
    pub(crate) fn list_is_sound<M: Memory>(&mut self, _: &M, _: &SizeClasses, _: usize) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn took_span<M: Memory>(&mut self, _: &M, _: NonNull<u8>, _: usize) {}
    #[inline(always)]
    pub(crate) fn may_free_slot<M: Memory>(
        &mut self,
        _: &M,
        _: &SizeClasses,
        _: NonNull<u8>,
        _: usize,
    ) -> bool {
        true
    }
    /// # Safety
    /// None here; see the checked mode's.
    #[inline(always)]
    pub(crate) unsafe fn free_slot<M: Memory>(
        &mut self,
        _: &M,
        _: &SizeClasses,
        _: NonNull<u8>,
        _: usize,
    ) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn took_run(&mut self, _: Range<usize>) {}
    #[inline(always)]
    pub(crate) fn may_free_run<M: Memory>(&mut self, _: &M, _: NonNull<u8>, _: usize) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn freed_units(&mut self, _: Range<usize>) {}
}
