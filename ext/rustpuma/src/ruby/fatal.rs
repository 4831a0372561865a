//! Ending a process whose reactor died. A process that keeps its listener
//! but serves nothing must go, so that the cluster master (or systemd)
//! replaces it.
//!
//! It lives at the Ruby boundary because of how it ends: other threads are
//! still running Ruby, so the process must not go through Ruby's or libc's
//! exit path (`at_exit` blocks, finalizers, atexit handlers, destructors)
//! from a native thread. Only `_exit(2)` does that, and no safe wrapper of
//! it exists in the crates we use.

use std::time::Duration;

use crate::log;

/// How long the last line waits to reach stderr before the process ends.
const FATAL_FLUSH: Duration = Duration::from_secs(2);

/// Logs `message` and ends the process with status 1 at once.
pub(crate) fn fatal(message: &str) -> ! {
    log::warn(message);
    log::flush(FATAL_FLUSH);
    // SAFETY: `_exit` takes no pointer and cannot fail; it ends the process
    // immediately and nothing after it runs.
    unsafe { libc::_exit(1) }
}
