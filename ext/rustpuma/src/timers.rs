//! When the reactor checks connection deadlines (first data, keep-alive,
//! write).
//!
//! Each slot stores its own deadline and the reactor sweeps all slots at a
//! fixed cadence. A deadline moves on every request of a keep-alive
//! connection; a heap entry per move (the first design) piled up stale
//! entries for the whole keep-alive timeout — about 200 MB at 100k req/s
//! with the 65 s default. A sweep costs a pass over the connections a few
//! times a second (microseconds for ten thousand) and no memory. Timeouts
//! fire up to one interval late, a quarter of the shortest timeout.

use std::time::{Duration, Instant};

const MIN_INTERVAL: Duration = Duration::from_millis(50);
const MAX_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Sweep {
    interval: Duration,
    next: Instant,
}

impl Sweep {
    pub(crate) fn new(shortest_timeout: Duration) -> Self {
        let interval = (shortest_timeout / 4).clamp(MIN_INTERVAL, MAX_INTERVAL);
        Sweep {
            interval,
            next: Instant::now() + interval,
        }
    }

    /// How long the reactor may sleep before the next sweep.
    pub(crate) fn next_in(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// True (once per interval) when it is time to sweep.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_quarter_of_the_shortest_timeout_within_bounds() {
        assert_eq!(
            Sweep::new(Duration::from_secs(1)).interval,
            Duration::from_millis(250)
        );
        assert_eq!(Sweep::new(Duration::from_secs(65)).interval, MAX_INTERVAL);
        assert_eq!(Sweep::new(Duration::ZERO).interval, MIN_INTERVAL);
    }

    #[test]
    fn due_once_per_interval() {
        let mut sweep = Sweep::new(Duration::from_secs(1));
        let start = Instant::now();
        assert!(!sweep.due(start));
        let later = start + Duration::from_millis(300);
        assert!(sweep.due(later));
        assert!(!sweep.due(later), "not again until the next interval");
        assert!(sweep.next_in(later) > Duration::from_millis(200));
    }
}
