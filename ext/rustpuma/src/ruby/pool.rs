//! The pool's side of the hand-off: Ruby threads park here, without the GVL,
//! until the reactor has a complete request for them ([`crate::queue`]).

use std::cell::RefCell;
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

/// The queue this thread took its last request from, as long as the queue
/// counts it awake (until it parks). A thread killed mid-request stops
/// counting when its native thread ends (or the next Ruby thread reusing
/// it waits on a queue).
struct Awake(Option<Arc<Queue<Handoff>>>);

impl Drop for Awake {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            queue.gone();
        }
    }
}

thread_local! {
    static AWAKE: RefCell<Awake> = const { RefCell::new(Awake(None)) };
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
        let awake = AWAKE.with(|cell| {
            let mut cell = cell.borrow_mut();
            match &cell.0 {
                Some(queue) if Arc::ptr_eq(queue, &self.requests) => true,
                // Another server's queue (tests start several): `gone` there.
                Some(_) => {
                    *cell = Awake(None);
                    false
                }
                None => false,
            }
        });
        // Fast path: work is already queued, no need to give up the GVL.
        if let Some(mut handoff) = self.requests.try_take(awake) {
            self.set_awake(true);
            // Taken while holding the GVL: no wait for it (one clock read).
            let timing = &mut handoff.client.timing;
            timing.taken = timing.stamp();
            timing.resumed = timing.taken;
            return Wait::Request(handoff);
        }
        let waited = without_gvl(
            |interrupt| match self.requests.take(awake, interrupt.flag()) {
                Taken::Item(mut handoff) => {
                    handoff.client.timing.taken = handoff.client.timing.stamp();
                    Taken::Item(handoff)
                }
                other => other,
            },
        );
        match waited {
            Some(Taken::Item(handoff)) => {
                self.set_awake(true);
                Wait::Request(handoff)
            }
            Some(Taken::Closed) => {
                self.set_awake(false);
                Wait::Closed
            }
            Some(Taken::Interrupted) => {
                self.set_awake(false);
                Wait::Interrupted
            }
            // Ruby did not run the wait at all: the count is unchanged.
            None => Wait::Interrupted,
        }
    }

    /// Records what the queue now counts (no `gone`: the queue did it).
    fn set_awake(&self, awake: bool) {
        AWAKE.with(|cell| cell.borrow_mut().0 = awake.then(|| Arc::clone(&self.requests)));
    }
}
