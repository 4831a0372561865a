//! What a process forked from one running the native core does with it.
//!
//! Ruby's `Process._fork` hook (`lib/rustpuma/fork_hook.rb`) pauses every
//! reactor of the parent just before the fork (`Shared::pause`: they wait
//! where they hold no lock) and, in the child, calls [`after_fork_child`],
//! which closes exactly the descriptors the parent's core owned
//! ([`crate::fds`]). The child has none of the parent's native threads, so
//! the inherited `Native::Server`s and `Native::Request`s are dead state:
//! their parts are [`ProcessLocal`], never used there (an `IOError` if Ruby
//! tries) and never dropped (a drop would close descriptor numbers the
//! child has reused, or take a lock that a thread of the parent held).

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use magnus::Error;

use crate::ruby::error::Failure;

/// Bumped by [`after_fork_child`] in each child. Checked on every use of a
/// native object, several times per request: a load, where comparing
/// `std::process::id()` was a `getpid(2)` system call each time (it cost
/// the hello benchmark 12-15 %). Every Ruby-level fork runs the hook.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A value that belongs to the process that made it. In a forked child it
/// is leaked instead of dropped.
pub(crate) struct ProcessLocal<T> {
    value: Option<T>,
    generation: u64,
}

impl<T> ProcessLocal<T> {
    pub(crate) fn new(value: T) -> Self {
        ProcessLocal {
            value: Some(value),
            generation: GENERATION.load(Ordering::Relaxed),
        }
    }

    /// True in a child that inherited this value with the parent's memory.
    pub(crate) fn is_inherited(&self) -> bool {
        self.generation != GENERATION.load(Ordering::Relaxed)
    }

    /// `Err(IOError)` in a forked child, for the Ruby methods that use it.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.is_inherited() {
            return Err(Failure::Io(
                "this native server belongs to the process this one was forked from".into(),
            )
            .into());
        }
        Ok(())
    }
}

impl<T> Deref for ProcessLocal<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `drop` takes the value out.
        self.value.as_ref().expect("ProcessLocal used after drop")
    }
}

impl<T> Drop for ProcessLocal<T> {
    fn drop(&mut self) {
        if self.is_inherited() {
            std::mem::forget(self.value.take());
        }
    }
}

/// `Native.after_fork_child`: in the child, right after the fork. Returns
/// how many inherited descriptors were closed.
pub(crate) fn after_fork_child() -> usize {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    if let Ok(ruby) = magnus::Ruby::get() {
        crate::ruby::pins::forget_in_child(&ruby);
    }
    crate::fds::close_all()
}
