//! The opt-in checked mode (cargo feature `checked`): `dealloc` and `realloc` verify the
//! pointer they are given, and freed slots are poisoned so a write after free is caught
//! when the slot is handed out again. Without the feature, [`Checks`] is an empty type
//! whose methods do nothing and compile away.
//!
//! Checks return a [`Misuse`] instead of panicking: the caller reports it once the
//! allocator's lock is released, because the panic machinery allocates, and the report
//! aborts rather than unwinds out of `GlobalAlloc`.

use core::alloc::Layout;
use core::fmt;

/// Whether the `checked` feature is on. The glue tests it beside each misuse, which is
/// always `None` without the feature: then the report path is dead code even where the
/// locked section is not inlined (a build without LTO), and is not compiled in (3.2 KB of
/// reporting and formatting in a default release build).
pub(crate) const ENABLED: bool = cfg!(feature = "checked");

/// What a check found, for the panic message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "checked"), allow(dead_code))]
pub(crate) enum Misuse {
    /// The pointer is not in a page this allocator handed out for such a block.
    Foreign,
    /// The pointer is inside a slot or page of the right kind, but not at its start.
    Misaligned,
    /// The slot is already free.
    DoubleFree,
    /// The free slot at this offset in memory was written to after it was freed.
    UseAfterFree {
        /// The slot's address (offset in the memory).
        slot: usize,
    },
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misuse::Foreign => {
                f.write_str("the pointer was never handed out by this allocator for this layout")
            }
            Misuse::Misaligned => f.write_str("the pointer is not the start of a block of this layout"),
            Misuse::DoubleFree => f.write_str("the block is already free (double free)"),
            Misuse::UseAfterFree { slot } => {
                write!(f, "the free block at {slot:#x} was written to after it was freed (use after free)")
            }
        }
    }
}

/// Reports a misuse and aborts: prints a message that names the operation, the address
/// (for `dealloc` and `realloc`) and the layout, through the panic machinery, and never
/// unwinds, since unwinding out of a `GlobalAlloc` method is undefined behaviour.
/// Called once the allocator's lock is released, because the panic machinery allocates.
#[cold]
#[inline(never)]
pub(crate) fn report(misuse: Misuse, operation: &str, addr: Option<usize>, layout: Layout) -> ! {
    abort_with_message(&Report { misuse, operation, addr, layout })
}

/// What [`report`] says.
struct Report<'a> {
    misuse: Misuse,
    operation: &'a str,
    addr: Option<usize>,
    layout: Layout,
}

/// Panics in a function that cannot unwind: the panic hook prints the message, then
/// the process aborts instead of unwinding into the allocator's caller.
#[allow(improper_ctypes_definitions)] // only called from Rust, never through C
extern "C" fn abort_with_message(report: &Report<'_>) -> ! {
    let Report { misuse, operation, layout, .. } = report;
    let (size, align) = (layout.size(), layout.align());
    match report.addr {
        Some(addr) => {
            panic!("wasm-alloc (checked): {operation} of {addr:#x} (size {size}, align {align}): {misuse}")
        }
        None => panic!("wasm-alloc (checked): {operation} (size {size}, align {align}): {misuse}"),
    }
}

#[cfg(feature = "checked")]
mod on;
#[cfg(all(feature = "checked", test, not(target_arch = "wasm32")))]
pub(crate) use on::TAG_PAGES;
#[cfg(feature = "checked")]
pub(crate) use on::{Checks, LINK_KEY};

#[cfg(not(feature = "checked"))]
mod off;
#[cfg(all(not(feature = "checked"), test, not(target_arch = "wasm32")))]
pub(crate) use off::TAG_PAGES;
#[cfg(not(feature = "checked"))]
pub(crate) use off::{Checks, LINK_KEY};

#[cfg(all(test, feature = "checked", not(target_arch = "wasm32")))]
mod tests;
