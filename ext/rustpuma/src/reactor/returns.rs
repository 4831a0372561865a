//! The way back from the pool threads to the reactor: connections and
//! responses handed back ([`Returned`]), in the order they came.
//!
//! A locked `Vec` that the reactor swaps for its own empty one, rather than
//! a channel: crossbeam's unbounded channel allocated a block of 31 slots
//! (about 3 KiB, which also made glibc consolidate its free lists) every 31
//! responses, freed by the reactor, and took several atomic operations per
//! message. Here a hand-back is one short, rarely contended lock and a push
//! into a buffer that keeps its capacity. Waking the reactor is
//! `Shared::give_back`'s business.

use std::sync::{Mutex, MutexGuard};

use super::Returned;

pub(crate) struct Returns(Mutex<Inner>);

struct Inner {
    items: Vec<Returned>,
    /// The reactor is gone: nobody would take what is queued.
    closed: bool,
}

impl Returns {
    pub(crate) fn new() -> Self {
        Returns(Mutex::new(Inner {
            items: Vec::new(),
            closed: false,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is a single push or swap: a panic elsewhere while
        // holding the lock leaves the data consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `returned`. False once the reactor is gone: it is dropped
    /// then (which closes its connection), as a send on a closed channel.
    pub(crate) fn push(&self, returned: Returned) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            drop(inner);
            drop(returned);
            return false;
        }
        inner.items.push(returned);
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Swaps what is queued into `batch`, which must be empty; its capacity
    /// is kept for the next pushes.
    pub(crate) fn take(&self, batch: &mut Vec<Returned>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut self.lock().items, batch);
    }

    /// The reactor is gone: what is queued is dropped, and so is anything
    /// pushed later.
    pub(crate) fn close(&self) {
        let items = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.items)
        };
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::Token;

    fn tokens(batch: &[Returned]) -> Vec<usize> {
        batch
            .iter()
            .map(|r| match r {
                Returned::Released(t) | Returned::StreamReady(t) => t.0,
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn returns_come_out_in_order_and_the_buffers_keep_their_capacity() {
        let returns = Returns::new();
        assert!(returns.is_empty());
        (0..5).for_each(|i| assert!(returns.push(Returned::Released(Token(i)))));
        assert!(!returns.is_empty());
        let mut batch = Vec::new();
        returns.take(&mut batch);
        assert!(returns.is_empty());
        assert_eq!(tokens(&batch), vec![0, 1, 2, 3, 4]);
        let capacity = batch.capacity();
        batch.clear();
        returns.push(Returned::StreamReady(Token(9)));
        returns.take(&mut batch);
        assert_eq!(tokens(&batch), vec![9]);
        // The two buffers were swapped, not reallocated.
        batch.clear();
        returns.take(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(batch.capacity(), capacity);
    }

    #[test]
    fn after_close_pushes_are_refused() {
        let returns = Returns::new();
        returns.push(Returned::Released(Token(1)));
        returns.close();
        assert!(returns.is_empty());
        assert!(!returns.push(Returned::Released(Token(2))));
        assert!(returns.is_empty());
    }
}
