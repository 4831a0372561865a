//! The pool's side of the hand-off: Ruby threads park here, without the GVL,
//! until the reactor has a complete request for them ([`crate::queue`]).

use std::sync::Arc;

use crate::queue::{Queue, Taken};
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
    requests: Arc<Queue<Handoff>>,
}

impl Pool {
    pub(crate) fn new(requests: Arc<Queue<Handoff>>) -> Self {
        Pool { requests }
    }

    /// Requests that wait for a free thread (Puma's `backlog`).
    pub(crate) fn backlog(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn wait(&self) -> Wait {
        // Fast path: work is already queued, no need to give up the GVL.
        if let Some(mut handoff) = self.requests.try_take() {
            // Taken while holding the GVL: no wait for it (one clock read).
            let timing = &mut handoff.client.timing;
            timing.taken = timing.stamp();
            timing.resumed = timing.taken;
            return Wait::Request(handoff);
        }
        let waited = without_gvl(|interrupt| match self.requests.take(interrupt.flag()) {
            Taken::Item(mut handoff) => {
                handoff.client.timing.taken = handoff.client.timing.stamp();
                Wait::Request(handoff)
            }
            Taken::Interrupted => Wait::Interrupted,
            Taken::Closed => Wait::Closed,
        });
        waited.unwrap_or(Wait::Interrupted)
    }
}
