//! The pool's side of the hand-off: Ruby threads park here, without the GVL,
//! until the reactor has a complete request for them.

use crossbeam_channel::{select, Receiver};

use crate::reactor::Handoff;
use crate::ruby::gvl::without_gvl;

pub(crate) enum Wait {
    Request(Handoff),
    /// Ruby interrupted the wait (signal, `Thread#kill`): return to Ruby so
    /// it can act, then wait again.
    Interrupted,
    /// The reactor is gone: the server has stopped.
    Closed,
}

pub(crate) struct Pool {
    requests: Receiver<Handoff>,
}

impl Pool {
    pub(crate) fn new(requests: Receiver<Handoff>) -> Self {
        Pool { requests }
    }

    /// Requests that wait for a free thread (Puma's `backlog`).
    pub(crate) fn backlog(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn wait(&self) -> Wait {
        // Fast path: work is already queued, no need to give up the GVL.
        if let Ok(handoff) = self.requests.try_recv() {
            return Wait::Request(handoff);
        }
        let waited = without_gvl(|interrupt| {
            select! {
                recv(self.requests) -> msg => match msg {
                    Ok(handoff) => Wait::Request(handoff),
                    Err(_) => Wait::Closed,
                },
                recv(interrupt.receiver()) -> _ => Wait::Interrupted,
            }
        });
        waited.unwrap_or(Wait::Interrupted)
    }
}
