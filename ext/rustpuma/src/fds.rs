//! The file descriptors the native core owns in this process: each reactor's
//! epoll instance (and the registry's duplicate of it) and eventfd, its
//! copies of the listeners, client sockets, the reactor's end of a relayed
//! hijack's socket pair, spilled request bodies and files being sent.
//! Descriptors handed to Ruby (a hijacked socket, a body file for
//! `rack.input`) are Ruby's and are not here.
//!
//! A forked child must not keep them: a client connection the parent closes
//! would stay open in the child, and the child's copy of an upload would
//! hold its disk space. The after-fork hook ([`crate::ruby::fork`]) closes exactly
//! these in the child.
//!
//! The registry is a bitmap indexed by descriptor number, changed and read
//! with atomics only: the hook runs in the child, where the thread that
//! may have been changing it at the fork no longer exists, so it must not
//! need a lock that thread could have held. A descriptor is added after it
//! is opened and removed before it is closed ([`Owned`], and the `Drop` of
//! the socket types): a fork in between makes the child keep one descriptor
//! it could have closed, never close a number that meanwhile means
//! something else.

use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors 0 to 4 Mi - 1 are tracked, beyond any usual `ulimit -n`
/// (a larger number is simply not tracked, and not closed in a child). The
/// 512 KiB are zeroed static memory: the kernel backs only the pages in use.
const TRACKED_FDS: usize = 4 * 1024 * 1024;
static BITMAP: [AtomicU64; TRACKED_FDS / 64] = [const { AtomicU64::new(0) }; TRACKED_FDS / 64];

fn slot(fd: RawFd) -> Option<(&'static AtomicU64, u64)> {
    let fd = usize::try_from(fd).ok().filter(|fd| *fd < TRACKED_FDS)?;
    Some((&BITMAP[fd / 64], 1u64 << (fd % 64)))
}

/// Records `fd` as the core's (call right after opening it).
pub fn track(fd: RawFd) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_or(bit, Ordering::AcqRel);
    }
}

/// Forgets `fd` (call right before closing it).
pub fn untrack(fd: RawFd) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_and(!bit, Ordering::AcqRel);
    }
}

/// Whether `fd` is recorded as the core's.
pub fn is_tracked(fd: RawFd) -> bool {
    slot(fd).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

/// In a forked child: closes every descriptor the parent's core owned and
/// empties the registry. Returns how many were closed.
pub fn close_all() -> usize {
    let mut closed = 0;
    for (w, word) in BITMAP.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let fd = (w * 64 + bits.trailing_zeros() as usize) as RawFd;
            bits &= bits - 1;
            if nix::unistd::close(fd).is_ok() {
                closed += 1;
            }
        }
    }
    closed
}

/// A descriptor-owning value (a `File`, an epoll instance, a socket) that
/// is in the registry for exactly as long as it is open.
#[derive(Debug)]
pub struct Owned<T: AsRawFd>(T);

impl<T: AsRawFd> Owned<T> {
    /// Takes an open descriptor-owning value and records its descriptor.
    pub fn new(value: T) -> Self {
        track(value.as_raw_fd());
        Owned(value)
    }
}

impl<T: AsRawFd> Drop for Owned<T> {
    // Runs before the inner value's own drop, which closes the descriptor.
    fn drop(&mut self) {
        untrack(self.0.as_raw_fd());
    }
}

impl<T: AsRawFd> Deref for Owned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: AsRawFd> DerefMut for Owned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_values_are_tracked_while_open() {
        let file = Owned::new(tempfile::tempfile().unwrap());
        let fd = file.as_raw_fd();
        assert!(is_tracked(fd));
        drop(file);
        assert!(!is_tracked(fd));
    }

    #[test]
    fn numbers_past_the_bitmap_are_ignored() {
        track(-1);
        track(TRACKED_FDS as RawFd);
        assert!(!is_tracked(TRACKED_FDS as RawFd));
        assert!(!is_tracked(-1));
    }
}
