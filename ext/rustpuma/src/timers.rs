//! Connection deadlines for the reactor (first data, keep-alive, write).
//!
//! A binary heap of `(when, slot, generation)`. Setting a new deadline for a
//! slot hands out a new generation and leaves the old entry in the heap;
//! when it expires it no longer matches the slot's generation and is
//! skipped. That keeps "reset the timer" O(log n) without searching the
//! heap, at the cost of stale entries that drain as their time passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_gen: u64,
}

impl Timers {
    /// Schedules `slot` to expire `after` from now; returns the generation
    /// the slot must store to recognise this deadline as its live one.
    pub fn set(&mut self, slot: usize, after: Duration) -> u64 {
        self.next_gen += 1;
        self.heap.push(Reverse((Instant::now() + after, slot, self.next_gen)));
        self.next_gen
    }

    /// Time until the earliest deadline (stale ones included: waking for
    /// one of those is harmless).
    pub fn next_in(&self, now: Instant) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// The next deadline that has passed, as `(slot, generation)`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, slot, gen))| (slot, gen)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_deadlines_come_out_in_order_with_their_generation() {
        let mut timers = Timers::default();
        let late = timers.set(1, Duration::from_secs(60));
        let soon = timers.set(2, Duration::ZERO);
        assert!(late < soon, "generations only grow");
        let now = Instant::now();
        assert_eq!(timers.pop_expired(now), Some((2, soon)));
        assert_eq!(timers.pop_expired(now), None, "the 60 s deadline has not passed");
        assert!(timers.next_in(now).unwrap() > Duration::from_secs(59));
    }

    #[test]
    fn a_reset_leaves_a_stale_entry_with_an_old_generation() {
        let mut timers = Timers::default();
        let first = timers.set(7, Duration::ZERO);
        let second = timers.set(7, Duration::ZERO);
        let now = Instant::now() + Duration::from_millis(1);
        let mut seen = vec![timers.pop_expired(now).unwrap(), timers.pop_expired(now).unwrap()];
        seen.sort();
        assert_eq!(seen, vec![(7, first), (7, second)]);
    }
}
