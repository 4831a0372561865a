//! Log lines written by native threads, which cannot use Ruby's logger.
//!
//! They go to file descriptor 2, so `stdout_redirect` (which reopens
//! `$stderr`, and with it fd 2) captures them too. The timestamp has Puma's
//! shape (`2026-11-25 16:27:51 +0000`) so log scrapers see one format.
//!
//! The reactor must never wait on stderr: a supervisor that stops reading
//! our stderr pipe would otherwise freeze every connection. Lines go through
//! a bounded queue to a logger thread that does the blocking writes; when
//! the queue is full, lines are counted and dropped, and the count is
//! reported once stderr moves again. The logger writes with `write(2)` on fd
//! 2, never through Rust's `stderr()` lock, so no lock of ours can be held
//! across a fork. A forked child finds a logger whose thread does not exist
//! there (its pid differs) and starts its own.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use crossbeam_utils::atomic::AtomicCell;

/// Lines waiting for stderr; beyond this they are dropped (and counted).
const QUEUE_LINES: usize = 4096;

struct Logger {
    pid: u32,
    lines: Sender<String>,
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

/// A logger is leaked (a few bytes per process) and never freed, so a
/// reference to it can be shared without a lock: a lock held by another
/// thread at `fork` would stay locked forever in the child.
#[derive(Clone, Copy)]
struct Installed(&'static Logger);

impl PartialEq for Installed {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Installed {}

static LOGGER: AtomicCell<Option<Installed>> = AtomicCell::new(None);

// A pointer-sized cell is a plain atomic; a bigger one would hide a spin
// lock, with the same fork hazard.
const _: () = assert!(AtomicCell::<Option<Installed>>::is_lock_free());

/// Replaces Rust's default panic hook, which writes through `stderr()`
/// and so holds std's stderr lock while it prints: a fork at that moment
/// (worker 0 under fork_worker forks while its threads run) would leave
/// the lock held forever in the child. Ours formats the message and queues
/// it like any native line (never blocking, never that lock). Installed
/// once, when the extension loads.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        warn(&format!(
            "thread '{}' {info}",
            thread.name().unwrap_or("<unnamed>")
        ));
    }));
}

/// Queues one line for stderr; never blocks.
pub(crate) fn warn(message: &str) {
    let line = format!("{} {}\n", timestamp(), message);
    let Some(logger) = logger() else { return };
    match logger.lines.try_send(line) {
        Ok(()) => {
            logger.queued.fetch_add(1, Ordering::AcqRel);
        }
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            logger.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits (at most `limit`) until every line queued so far has reached
/// stderr. The process calls it before it ends or re-executes itself: the
/// logger thread writes asynchronously, and the last lines (a parse error
/// logged just before a TERM) are the ones tooling and tests look for.
/// Starts no logger: with none running there is nothing to wait for.
pub(crate) fn flush(limit: Duration) {
    let Some(Installed(logger)) = LOGGER.load() else {
        return;
    };
    if logger.pid != std::process::id() {
        return;
    }
    let until = Instant::now() + limit;
    while logger.written.load(Ordering::Acquire) < logger.queued.load(Ordering::Acquire)
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Ruby's `Native.flush_log`: see `flush`. One second is enough for any
/// stderr that is being read; an unread one must not hold up the exit.
pub(crate) fn flush_for_ruby() {
    flush(Duration::from_secs(1));
}

/// The logger of this process, started on first use (and again in a forked
/// child, where the parent's logger thread does not exist).
fn logger() -> Option<&'static Logger> {
    let pid = std::process::id();
    let current = LOGGER.load();
    if let Some(Installed(logger)) = current {
        if logger.pid == pid {
            return Some(logger);
        }
    }
    let (tx, rx) = bounded(QUEUE_LINES);
    let fresh: &'static Logger = Box::leak(Box::new(Logger {
        pid,
        lines: tx,
        queued: AtomicU64::new(0),
        written: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    }));
    match LOGGER.compare_exchange(current, Some(Installed(fresh))) {
        Ok(_) => {
            let spawned = std::thread::Builder::new()
                .name("rustpuma-log".into())
                .spawn(move || write_lines(fresh, rx));
            spawned.is_ok().then_some(fresh)
        }
        // Another thread installed one first; ours (a few bytes) is leaked.
        Err(installed) => installed.map(|Installed(logger)| logger),
    }
}

fn write_lines(logger: &'static Logger, lines: Receiver<String>) {
    crate::reactor::block_signals();
    for line in lines {
        let dropped = logger.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "{} ! {dropped} log lines dropped: stderr was not being read\n",
                timestamp()
            );
            write_stderr(note.as_bytes());
        }
        write_stderr(line.as_bytes());
        logger.written.fetch_add(1, Ordering::AcqRel);
    }
}

/// Blocking write of all of `bytes` to fd 2; gives up on a real error.
fn write_stderr(mut bytes: &[u8]) {
    // fd 2 itself, not Rust's `stderr()` buffer or lock: Ruby reopens it in
    // place for `stdout_redirect`, never closes it.
    let stderr = std::io::stderr();
    let fd = stderr.as_fd();
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm), so we need no date crate for one log prefix.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn converts_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
    }
}
