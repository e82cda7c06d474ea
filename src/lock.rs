//! The allocator's one lock, chosen by target.
//!
//! - wasm32 without the `atomics` feature has exactly one thread, so there is nothing to
//!   lock: [`Lock`] is a bare `UnsafeCell` and the build contains no lock code.
//! - Everywhere else (wasm32 with `atomics`, native hosts) a spin lock. It spins rather
//!   than waits because the browser's main thread may not block (`memory.atomic.wait`
//!   traps there) and allocator critical sections are short.

use core::cell::UnsafeCell;

/// Guards the allocator's state; `with` runs a closure with exclusive access.
pub(crate) struct Lock<T> {
    #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
    locked: core::sync::atomic::AtomicBool,
    value: UnsafeCell<T>,
}

// No lock word at all without atomics: the wasm32 build carries no lock code. (The
// size probe agrees: no atomic instruction without `atomics`; with it, 12, of which 3
// are compare-exchanges.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
const _: () = assert!(core::mem::size_of::<Lock<()>>() == 0);

// SAFETY: every access to `value` goes through `with`, which holds the spin lock, or, on
// wasm32 without atomics, runs on the module's only thread and is not re-entered (the
// allocator never calls back into itself).
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub(crate) const fn new(value: T) -> Self {
        Lock {
            #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
            locked: core::sync::atomic::AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value.
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: single-threaded target, and `f` (allocator code) never calls `with` on
        // the same lock, so this is the only reference to the value while `f` runs.
        f(unsafe { &mut *self.value.get() })
    }

    /// Runs `f` with exclusive access to the value.
    #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        use core::sync::atomic::Ordering;

        /// Releases the lock when dropped, so an unwinding panic cannot leave it held.
        struct Unlock<'a>(&'a core::sync::atomic::AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }

        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: the compare-exchange above made this thread the lock's only holder
        // until `_unlock` drops, so no other reference to the value exists meanwhile.
        f(unsafe { &mut *self.value.get() })
    }
}
