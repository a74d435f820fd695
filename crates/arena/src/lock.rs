//! A minimal spin lock, so that [`SystemOs`](crate::SystemOs) can guard its
//! page states without `std`.
//!
//! The lock is held across one system call at most; with `std` a waiter
//! yields its time slice instead of burning it.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A mutual-exclusion lock around a `T`.
pub(crate) struct Lock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY:
// - `value` is only reached through a `Guard`, and `lock` hands out at most
//   one guard at a time (the `locked` flag is taken with an acquire CAS and
//   released with a release store), so sharing the lock across threads gives
//   each thread exclusive access in turn; that needs `T: Send`, not `Sync`.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    /// A new unlocked lock.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock and takes it.
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            #[cfg(feature = "std")]
            std::thread::yield_now();
            #[cfg(not(feature = "std"))]
            core::hint::spin_loop();
        }
        Guard { lock: self }
    }
}

/// Exclusive access to the value of a [`Lock`] until dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY:
        // - This guard exists, so `locked` is set and no other guard exists:
        //   nothing else reads or writes `value` while the borrow lives.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY:
        // - As in `deref`: this guard is the only access path to `value`, and
        //   `&mut self` makes this borrow the only one through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
