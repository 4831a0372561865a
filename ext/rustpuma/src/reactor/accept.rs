//! Taking new connections off the listeners.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::{far_future, Reactor, Slot, ACCEPT_BACKOFF};
use crate::client::Client;
use crate::log;

impl Reactor {
    pub(super) fn accept(&mut self, index: usize) {
        if self.shared.stopping() {
            return;
        }
        if let Some(delay) = self.accept_delay() {
            let at = Instant::now() + delay;
            self.retry_accept_at = Some(self.retry_accept_at.map_or(at, |r| r.min(at)));
            return;
        }
        self.accept_pending(index);
    }

    /// Puma's cluster accept delay (`wait_for_less_busy_worker`): up to the
    /// configured delay, reached at 25 requests in flight per pool thread;
    /// none when idle. The retry in `run` accepts without a second delay.
    fn accept_delay(&self) -> Option<Duration> {
        let (max_delay, max_threads) = self.limits.accept_delay?;
        if self.busy == 0 {
            return None;
        }
        let ceiling = 25 * max_threads.max(1);
        Some(max_delay.mul_f64(self.busy.min(ceiling) as f64 / ceiling as f64))
    }

    pub(super) fn accept_pending(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index).and_then(Option::as_ref) else {
                return;
            };
            match listener.accept() {
                Ok((stream, remote_addr)) => {
                    let entry = self.clients.vacant_entry();
                    let key = entry.key();
                    let mut client = Box::new(Client::new(stream, remote_addr));
                    if self
                        .poll
                        .registry()
                        .register(client.stream.source(), Token(key), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Slot::Waiting {
                        client,
                        deadline: far_future(self.now),
                    });
                    let held = self
                        .clients
                        .len()
                        .saturating_sub(self.busy + self.tunnel_slots);
                    self.shared.reactor_max.fetch_max(held, Ordering::Relaxed);
                    self.set_deadline(key, self.timeouts.first_data);
                    // The client may have sent its request with the handshake.
                    self.on_readable(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE and friends: the pending connection stays in
                    // the backlog; try again shortly.
                    self.accept_errors.report(&e);
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}

/// How often a failing `accept` may log: running out of descriptors under a
/// flood fails on every retry, and one line per failure would flood the log.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Rate-limits the "accept failed" line to one per interval, with the number
/// of failures it stands for.
#[derive(Default)]
pub(super) struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn report(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < ACCEPT_ERROR_LOG_INTERVAL)
        {
            self.unlogged = self.unlogged.saturating_add(1);
            return;
        }
        let more = std::mem::take(&mut self.unlogged);
        if more > 0 {
            log::warn(&format!(
                "! accept failed: {e} ({more} more failures since the last report)"
            ));
        } else {
            log::warn(&format!("! accept failed: {e}"));
        }
        self.last_logged = Some(now);
    }
}
