//! The queue of complete requests between the reactor and the pool threads.
//!
//! Not a channel, because whom to wake, and when, is the point. A crossbeam
//! `select!` over the queue and the thread's interrupt took two locks to
//! register and two more to unregister on every park, and the reactor's
//! send contended with them. Here a parked thread is one entry in a list,
//! woken by `Thread::unpark` (one futex wake), most recently parked first:
//! its stack and caches are the warmest.
//!
//! A request that arrives while some pool thread is awake wakes nobody:
//! that thread takes it (GVL still held) when it is done, or finds it just
//! before it would park. Waking a second thread would only have it wait for
//! the GVL, and each such wake cost two thread switches. In case the awake
//! threads are blocked (I/O with the GVL released, a slow client), the
//! reactor watches for a stall: requests waiting, threads parked, and
//! nothing taken for [`STALL`] means one more thread is woken.
//!
//! Plain Rust, no Ruby: `ruby::pool` runs [`Queue::take`] with the GVL
//! released and makes Ruby's interrupts unpark the thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::Duration;

/// How long requests may wait, with threads parked, before one is woken
/// although other threads are awake. An idle reactor notices later, up to
/// a millisecond (epoll's timeout has millisecond steps): the cost, in the
/// worst case, for an app whose threads all block at once with idle ones
/// left; a busy reactor looks on every turn.
pub(crate) const STALL: Duration = Duration::from_micros(500);

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
    // Written under the lock, read without it.
    /// Items waiting (Puma's `backlog`).
    len: AtomicUsize,
    parked: AtomicUsize,
    /// Items taken so far: the reactor's measure of progress.
    taken: AtomicUsize,
}

struct Inner<T> {
    items: VecDeque<T>,
    /// Threads parked in `take`, the most recent last.
    parked: Vec<Thread>,
    /// Threads that took an item and have not parked since (nor gone): each
    /// will look at the queue before it parks.
    awake: usize,
    closed: bool,
}

impl<T> Queue<T> {
    /// The queue and the reactor's end of it.
    pub(crate) fn new() -> (Arc<Queue<T>>, Producer<T>) {
        let queue = Arc::new(Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                parked: Vec::new(),
                awake: 0,
                closed: false,
            }),
            len: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
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

    fn pop(&self, inner: &mut Inner<T>) -> Option<T> {
        let item = inner.items.pop_front()?;
        self.len.store(inner.items.len(), Ordering::Relaxed);
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(item)
    }

    /// The next item if there is one, without waiting. `awake`: the calling
    /// thread took an item before and has not parked since.
    pub(crate) fn try_take(&self, awake: bool) -> Option<T> {
        let mut inner = self.lock();
        let item = self.pop(&mut inner);
        if item.is_some() && !awake {
            inner.awake += 1;
        }
        item
    }

    /// A thread that took an item is gone without coming back for the next.
    pub(crate) fn gone(&self) {
        let mut inner = self.lock();
        inner.awake = inner.awake.saturating_sub(1);
    }

    /// Waits for the next item. `awake` as for `try_take`. `interrupted` is
    /// checked whenever the queue is found empty; whoever sets it must then
    /// `unpark` this thread. Only `Taken::Item` leaves the thread awake.
    pub(crate) fn take(&self, mut awake: bool, interrupted: &AtomicBool) -> Taken<T> {
        let me = thread::current();
        let mut parked = false;
        loop {
            {
                let mut inner = self.lock();
                if parked {
                    let before = inner.parked.len();
                    inner.parked.retain(|t| t.id() != me.id());
                    // Gone from the list: a waker took us out and counted us
                    // awake. Still listed: an interrupt or a spurious return.
                    awake = inner.parked.len() == before;
                    self.parked.store(inner.parked.len(), Ordering::Relaxed);
                }
                if let Some(item) = self.pop(&mut inner) {
                    if !awake {
                        inner.awake += 1;
                    }
                    return Taken::Item(item);
                }
                if awake {
                    // From here a push must wake somebody.
                    inner.awake -= 1;
                    awake = false;
                }
                if inner.closed {
                    return Taken::Closed;
                }
                if interrupted.load(Ordering::Acquire) {
                    return Taken::Interrupted;
                }
                inner.parked.push(me.clone());
                self.parked.store(inner.parked.len(), Ordering::Relaxed);
            }
            parked = true;
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
    /// Queues `item`. Wakes one parked thread only if no thread is awake
    /// (one that is will take it); otherwise see [`Producer::progress`].
    pub(crate) fn push(&self, item: T) {
        let woken = {
            let mut inner = self.0.lock();
            inner.items.push_back(item);
            self.0.len.store(inner.items.len(), Ordering::Relaxed);
            if inner.awake == 0 {
                self.pop_parked(&mut inner)
            } else {
                None
            }
        };
        if let Some(thread) = woken {
            thread.unpark();
        }
    }

    /// Takes the most recently parked thread out of the list, counting it
    /// awake from now: until it has run, further pushes need not wake
    /// another.
    fn pop_parked(&self, inner: &mut Inner<T>) -> Option<Thread> {
        let thread = inner.parked.pop()?;
        inner.awake += 1;
        self.0.parked.store(inner.parked.len(), Ordering::Relaxed);
        Some(thread)
    }

    /// `Some(items taken so far)` while items wait and threads are parked,
    /// which may be a stall; `None` when nothing waits or nobody could help.
    pub(crate) fn progress(&self) -> Option<usize> {
        let q = &self.0;
        (q.len.load(Ordering::Relaxed) > 0 && q.parked.load(Ordering::Relaxed) > 0)
            .then(|| q.taken.load(Ordering::Relaxed))
    }

    /// Wakes one parked thread (the reactor saw no progress for [`STALL`]).
    pub(crate) fn wake_one(&self) {
        let woken = self.pop_parked(&mut self.0.lock());
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
            self.0.parked.store(0, Ordering::Relaxed);
            // Counted awake, as any woken thread (they return `Closed`).
            inner.awake += inner.parked.len();
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
        thread::spawn(move || queue.take(false, &flag))
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
        assert_eq!(queue.try_take(false), Some(1));
        let flag = AtomicBool::new(false);
        assert!(matches!(queue.take(true, &flag), Taken::Item(2)));
        assert!(matches!(queue.take(true, &flag), Taken::Item(3)));
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.try_take(true), None);
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
        assert!(matches!(queue.take(false, &flag), Taken::Item(1)));
    }

    #[test]
    fn while_a_thread_is_awake_a_push_wakes_nobody_until_a_stall_is_seen() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        producer.push(1);
        assert_eq!(queue.try_take(false), Some(1)); // this thread is awake
        let taker = spawn_taker(&queue, &flag);
        wait_parked(&queue, 1);
        assert_eq!(producer.progress(), None, "nothing waits");
        producer.push(2);
        let stalled = producer
            .progress()
            .expect("an item waits, a thread is parked");
        thread::sleep(Duration::from_millis(20));
        assert!(!taker.is_finished(), "a push while awake woke a thread");
        assert_eq!(producer.progress(), Some(stalled), "no progress");
        producer.wake_one();
        assert!(matches!(taker.join().unwrap(), Taken::Item(2)));
        assert_eq!(producer.progress(), None);
        // Both threads that took an item are gone: a push wakes at once.
        queue.gone();
        queue.gone();
        let taker = spawn_taker(&queue, &flag);
        wait_parked(&queue, 1);
        producer.push(3);
        assert!(matches!(taker.join().unwrap(), Taken::Item(3)));
    }

    #[test]
    fn an_awake_thread_finds_what_came_meanwhile_and_parking_makes_pushes_wake() {
        let (queue, producer) = Queue::new();
        let flag = Arc::new(AtomicBool::new(false));
        producer.push(1);
        assert_eq!(queue.try_take(false), Some(1));
        producer.push(2);
        assert_eq!(queue.try_take(true), Some(2));
        producer.push(3);
        assert!(matches!(queue.take(true, &flag), Taken::Item(3)));
        // The awake thread goes to wait (played by another OS thread: only
        // the count tells them apart) and parks: the next push wakes it.
        let (queue2, flag2) = (queue.clone(), flag.clone());
        let taker = thread::spawn(move || {
            assert_eq!(queue2.try_take(false), None);
            queue2.take(true, &flag2)
        });
        wait_parked(&queue, 1);
        producer.push(4);
        assert!(matches!(taker.join().unwrap(), Taken::Item(4)));
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
        assert!(matches!(queue.take(false, &flag), Taken::Item(5)));
        assert!(matches!(queue.take(true, &flag), Taken::Closed));
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
                    let mut awake = false;
                    while let Taken::Item(i) = queue.take(awake, &flag) {
                        got.push(i);
                        while let Some(i) = queue.try_take(true) {
                            got.push(i);
                        }
                        awake = true;
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
