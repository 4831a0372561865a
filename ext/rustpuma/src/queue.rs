//! The queue of complete requests between the reactor and the pool threads.
//!
//! Not a channel, because whom to wake is the point. A crossbeam `select!`
//! over the queue and the thread's interrupt took two locks to register and
//! two more to unregister on every park, and the reactor's send contended
//! with them. Here a parked thread is one entry in a list, woken by
//! `Thread::unpark` (one futex wake), most recently parked first: its stack
//! and caches are the warmest. A pool thread takes the next item without
//! parking whenever there is one, so a thread that just answered (still
//! holding the GVL) serves what queued up meanwhile.
//!
//! Plain Rust, no Ruby: `ruby::pool` runs [`Queue::take`] with the GVL
//! released and makes Ruby's interrupts unpark the thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};

/// What a waiting pool thread got.
#[derive(Debug)]
pub(crate) enum Taken<T> {
    Item(T),
    /// The thread was interrupted while the queue was empty.
    Interrupted,
    /// The producer is gone and the queue is empty.
    Closed,
}

pub(crate) struct Queue<T> {
    inner: Mutex<Inner<T>>,
    /// Items waiting, readable without the lock (Puma's `backlog`).
    len: AtomicUsize,
}

struct Inner<T> {
    items: VecDeque<T>,
    /// Threads parked in `take`, the most recent last.
    parked: Vec<Thread>,
    closed: bool,
}

impl<T> Queue<T> {
    /// The queue and the reactor's end of it.
    pub(crate) fn new() -> (Arc<Queue<T>>, Producer<T>) {
        let queue = Arc::new(Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                parked: Vec::new(),
                closed: false,
            }),
            len: AtomicUsize::new(0),
        });
        (queue.clone(), Producer(queue))
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock leaves the data consistent (every
        // change is a single push or pop), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next item if there is one, without waiting.
    pub(crate) fn try_take(&self) -> Option<T> {
        let mut inner = self.lock();
        let item = inner.items.pop_front();
        if item.is_some() {
            self.len.store(inner.items.len(), Ordering::Relaxed);
        }
        item
    }

    /// Waits for the next item. `interrupted` is checked whenever the queue
    /// is found empty; whoever sets it must then `unpark` this thread.
    pub(crate) fn take(&self, interrupted: &AtomicBool) -> Taken<T> {
        let me = thread::current();
        loop {
            {
                let mut inner = self.lock();
                // A wake that found us gone (interrupt, spurious return) must
                // not leave us listed twice.
                inner.parked.retain(|t| t.id() != me.id());
                if let Some(item) = inner.items.pop_front() {
                    self.len.store(inner.items.len(), Ordering::Relaxed);
                    return Taken::Item(item);
                }
                if inner.closed {
                    return Taken::Closed;
                }
                if interrupted.load(Ordering::Acquire) {
                    return Taken::Interrupted;
                }
                inner.parked.push(me.clone());
            }
            // An unpark that came before this returns at once (std's token).
            thread::park();
        }
    }
}

/// The reactor's end: pushes items and wakes a parked thread; dropping it
/// closes the queue, which lets every waiting thread return `Closed` once
/// the items left are taken.
pub(crate) struct Producer<T>(Arc<Queue<T>>);

impl<T> Producer<T> {
    /// Queues `item` and wakes one parked thread, if any.
    pub(crate) fn push(&self, item: T) {
        let woken = {
            let mut inner = self.0.lock();
            inner.items.push_back(item);
            self.0.len.store(inner.items.len(), Ordering::Relaxed);
            inner.parked.pop()
        };
        if let Some(thread) = woken {
            thread.unpark();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        let parked = {
            let mut inner = self.0.lock();
            inner.closed = true;
            std::mem::take(&mut inner.parked)
        };
        parked.iter().for_each(Thread::unpark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spawn_taker(
        queue: &Arc<Queue<u32>>,
        flag: &Arc<AtomicBool>,
    ) -> thread::JoinHandle<Taken<u32>> {
        let (queue, flag) = (queue.clone(), flag.clone());
        thread::spawn(move || queue.take(&flag))
    }

    fn wait_parked(queue: &Queue<u32>, n: usize) {
        for _ in 0..2000 {
            if queue.lock().parked.len() == n {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
        panic!("{n} threads never parked");
    }

    #[test]
    fn items_come_out_in_order_without_waiting() {
        let (queue, producer) = Queue::new();
        (1..=3).for_each(|i| producer.push(i));
        assert_eq!(producer.len(), 3);
        assert_eq!(queue.try_take(), Some(1));
        let flag = AtomicBool::new(false);
        assert!(matches!(queue.take(&flag), Taken::Item(2)));
        assert!(matches!(queue.take(&flag), Taken::Item(3)));
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.try_take(), None);
    }

    #[test]
    fn a_push_wakes_a_parked_thread() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        let taker = spawn_taker(&queue, &flag);
        wait_parked(&queue, 1);
        producer.push(7);
        assert!(matches!(taker.join().unwrap(), Taken::Item(7)));
    }

    #[test]
    fn an_interrupt_wakes_a_parked_thread_but_items_come_first() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        let taker = spawn_taker(&queue, &flag);
        wait_parked(&queue, 1);
        flag.store(true, Ordering::Release);
        let parked = queue.lock().parked[0].clone();
        parked.unpark();
        assert!(matches!(taker.join().unwrap(), Taken::Interrupted));
        assert!(queue.lock().parked.is_empty());
        producer.push(1);
        assert!(matches!(queue.take(&flag), Taken::Item(1)));
    }

    #[test]
    fn dropping_the_producer_releases_every_waiter_after_the_last_item() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        let takers: Vec<_> = (0..3).map(|_| spawn_taker(&queue, &flag)).collect();
        wait_parked(&queue, 3);
        drop(producer);
        for taker in takers {
            assert!(matches!(taker.join().unwrap(), Taken::Closed));
        }
        let (queue, producer) = Queue::new();
        producer.push(5);
        drop(producer);
        assert!(matches!(queue.take(&flag), Taken::Item(5)));
        assert!(matches!(queue.take(&flag), Taken::Closed));
    }

    #[test]
    fn every_item_is_taken_once_by_many_threads() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        let takers: Vec<_> = (0..4)
            .map(|_| {
                let (queue, flag) = (queue.clone(), flag.clone());
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Taken::Item(i) = queue.take(&flag) {
                        got.push(i);
                    }
                    got
                })
            })
            .collect();
        (0..10_000).for_each(|i| producer.push(i));
        drop(producer);
        let mut all: Vec<u32> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    }
}
