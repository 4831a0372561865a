//! The one budget for response bytes the reactor holds in memory
//! (`slow_reader_buffer_limit`), shared by the reactor and the pool threads.
//!
//! A pool thread reserves a response's in-memory bytes before it hands the
//! response to the reactor; the reactor gives them back as the client takes
//! them, and whatever is left when the response ends (or the connection is
//! dropped) when the [`Reservation`] drops. Past the limit a hand-off
//! waits for bytes to drain instead of growing memory: slow readers slow
//! the app down, they never make the process grow without bound. A
//! response larger than the whole budget still goes when nothing else is
//! held, so no response can wait forever. Files being sent hold no memory
//! and are not counted.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often a waiting hand-off looks at its cancel flag.
const WAIT_SLICE: Duration = Duration::from_millis(100);

pub(crate) struct Budget {
    limit: usize,
    held: AtomicUsize,
    /// Hand-offs waiting for bytes to drain: releases notify only then, so
    /// the common case costs an atomic subtraction and no lock.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    drained: Condvar,
}

/// Bytes of the budget one response holds, given back as they are written
/// and, for the rest, on drop.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            held: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            drained: Condvar::new(),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now (all responses in the reactor's hands).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Whether `bytes` would fit now (a hint: others may reserve meanwhile).
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        let held = self.held.load(Ordering::SeqCst);
        bytes == 0 || held == 0 || held.saturating_add(bytes) <= self.limit
    }

    /// Reserves `bytes` if they fit now (or nothing else is held; nothing
    /// always fits: a file alone holds no memory).
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut held = self.held.load(Ordering::SeqCst);
        loop {
            if bytes != 0 && held != 0 && held.saturating_add(bytes) > self.limit {
                return None;
            }
            match self.held.compare_exchange_weak(
                held,
                held + bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => held = now,
            }
        }
    }

    /// Reserves `bytes`, waiting for other responses to drain: at most
    /// `timeout` (`TimedOut`), or until `cancel` is set (`Interrupted`).
    /// Call without the GVL.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        bytes: usize,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> io::Result<Reservation> {
        if let Some(r) = self.try_reserve(bytes) {
            return Ok(r);
        }
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = loop {
            // Under the lock, after `waiters` went up: a release in between
            // either is seen here or notifies once we wait.
            if let Some(r) = self.try_reserve(bytes) {
                break Ok(r);
            }
            if cancel.load(Ordering::Acquire) {
                break Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "interrupted by Ruby",
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response bytes held for slow readers stayed over slow_reader_buffer_limit",
                ));
            }
            let wait = WAIT_SLICE.min(deadline - now);
            guard = match self.drained.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.held.fetch_sub(bytes, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.drained.notify_all();
        }
    }
}

impl Reservation {
    /// Gives back `bytes` that left memory (written to the socket).
    pub(crate) fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.release(bytes);
    }

    /// Takes over `other`'s bytes (from the same budget): a streamed body
    /// holds one reservation that grows with each chunk pushed.
    pub(crate) fn absorb(&mut self, mut other: Reservation) {
        debug_assert!(Arc::ptr_eq(&self.budget, &other.budget));
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn what_fits_is_reserved_at_once_and_given_back_on_drop() {
        let budget = Budget::new(100);
        let a = budget.try_reserve(60).unwrap();
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.held(), 100);
        assert!(!budget.fits(1));
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert_eq!(budget.held(), 40);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_response_larger_than_the_budget_goes_when_nothing_else_is_held() {
        let budget = Budget::new(100);
        let big = budget.try_reserve(500).unwrap();
        assert!(budget.try_reserve(1).is_none());
        assert!(
            budget.try_reserve(0).is_some(),
            "a response with nothing in memory (a file) never waits"
        );
        drop(big);
        assert!(budget.try_reserve(500).is_some());
    }

    #[test]
    fn a_waiting_reservation_proceeds_when_bytes_drain() {
        let budget = Budget::new(100);
        let mut held = budget.try_reserve(100).unwrap();
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(50, 10 * SECOND, &AtomicBool::new(false)))
        };
        while budget.waiters.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        held.release(30);
        assert_eq!(budget.held(), 70, "30 bytes drained, 50 do not fit yet");
        assert!(!waiter.is_finished());
        held.release(20);
        let reserved = waiter.join().unwrap().unwrap();
        assert_eq!(reserved.bytes, 50);
        assert_eq!(budget.held(), 100);
    }

    #[test]
    fn a_wait_ends_on_cancel_or_timeout() {
        let budget = Budget::new(10);
        let _held = budget.try_reserve(10).unwrap();
        let err = budget
            .reserve(5, 10 * SECOND, &AtomicBool::new(true))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        let err = budget
            .reserve(5, Duration::from_millis(50), &AtomicBool::new(false))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(budget.held(), 10);
    }
}
