//! Per-server request metrics: where each request's time went, by phase,
//! in fixed-bucket histograms, and how many responses of each status class
//! went out. Always on, so recording must cost next to nothing: relaxed
//! atomic adds only (no lock, no allocation), and the clock is the vDSO's
//! monotonic one (`Instant::now`, no system call). A clock read still costs
//! 50-80 ns on a virtual machine, more than the adds, so they are counted:
//! 3 per request on the pool thread (taken, app start, app end; 4 when it
//! waited for the GVL), and on the reactor one per turn for all requests
//! completed in it, plus 2 for a response that does not go out in one write
//! (docs/observability.md "Cost").
//!
//! The phases of one request, as the core sees them:
//!
//! ```text
//! complete ──queue──▶ taken ──gvl_wait──▶ resumed … app_start ──app──▶ app_end … write_start ──write──▶ write_end
//! (reactor)          (pool thread,       (it holds          (fill_env   (respond,        (first byte    (last byte)
//!                     GVL released)       the GVL)           returned)   hijack, finish)  written)
//! ```
//!
//! Ruby reads the sums as a plain Hash (`Native::Server#metrics`, in
//! `ruby/server.rs`); the master of a cluster adds up its workers' Hashes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds (inclusive) of the histogram buckets, in nanoseconds: from
/// 25 µs (a request that never waited) to 10 s; a last bucket holds the
/// rest. Fixed, so that the workers' histograms add up bucket by bucket.
pub(crate) const BUCKET_BOUNDS_NS: [u64; 18] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Buckets per histogram: one per bound, and the overflow (`+Inf`).
pub(crate) const BUCKETS: usize = BUCKET_BOUNDS_NS.len() + 1;

/// Where a request's time goes, in the order it happens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Complete in the reactor → a pool thread takes it.
    Queue = 0,
    /// That thread has the request → it holds the GVL again.
    GvlWait = 1,
    /// The app is called → its response (body) is ready.
    App = 2,
    /// First → last byte of the response written.
    Write = 3,
}

pub(crate) const PHASES: [Phase; 4] = [Phase::Queue, Phase::GvlWait, Phase::App, Phase::Write];

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::GvlWait => "gvl_wait",
            Phase::App => "app",
            Phase::Write => "write",
        }
    }
}

/// Counts per bucket (not cumulative) and the sum of all durations. A cache
/// line of its own: the reactor records `write` while pool threads record
/// the other phases.
#[repr(align(64))]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

/// A copy of a [`Histogram`] at one moment. The count is the buckets' total,
/// so it always agrees with them; the sum may include a recording whose
/// bucket was read just before it landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl Snapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Relaxed);
        // Often 0 (no GVL wait, a response written at once): one add saved.
        if ns != 0 {
            self.sum_ns.fetch_add(ns, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

/// The first bucket whose bound is at least `ns` (Prometheus' `le`). A
/// scan from the smallest bound, not a binary search: most phases of most
/// requests end in the first buckets, where this is one or two compares
/// (the binary search showed in profiles of the recording path).
#[inline]
fn bucket_of(ns: u64) -> usize {
    BUCKET_BOUNDS_NS
        .iter()
        .position(|&bound| ns <= bound)
        .unwrap_or(BUCKET_BOUNDS_NS.len())
}

/// When each phase of one request began and ended; `None` where it has not
/// happened (yet), or when metrics are off. Travels with the connection
/// (`Client::timing`) and is copied into the pool's request.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Timing {
    pub complete: Option<Instant>,
    pub taken: Option<Instant>,
    pub resumed: Option<Instant>,
    pub app_start: Option<Instant>,
    pub app_end: Option<Instant>,
    pub write_start: Option<Instant>,
    pub write_end: Option<Instant>,
}

impl Timing {
    /// A time stamp if this request is timed (the reactor stamped it
    /// complete: metrics are on), so later stages need no settings.
    #[inline]
    pub(crate) fn stamp(&self) -> Option<Instant> {
        self.complete.map(|_| Instant::now())
    }

    /// The reactor wrote part of the response and more is to come: the
    /// write phase began, unless the pool thread began it.
    #[inline]
    pub(crate) fn began_writing(&mut self) {
        if self.write_start.is_none() {
            self.write_start = self.stamp();
        }
    }

    /// The last byte is out. A response that went out whole in the write
    /// that began it (a small one: the common case) never waited for the
    /// client: its write phase is 0, and costs no clock read (both ends
    /// take a stamp this request already has).
    #[inline]
    pub(crate) fn finished_writing(&mut self) {
        if self.write_start.is_some() {
            self.write_end = self.stamp();
        } else {
            self.write_start = self.complete;
            self.write_end = self.complete;
        }
    }

    /// The phase's duration, when both its ends are known.
    pub(crate) fn phase(&self, phase: Phase) -> Option<Duration> {
        let (from, to) = match phase {
            Phase::Queue => (self.complete, self.taken),
            Phase::GvlWait => (self.taken, self.resumed),
            Phase::App => (self.app_start, self.app_end),
            Phase::Write => (self.write_start, self.write_end),
        };
        Some(to?.saturating_duration_since(from?))
    }
}

/// One server's (one worker's) figures since it started. Aligned so that
/// it shares no cache line with the reactor's hot flags in `Shared`.
#[repr(align(64))]
pub(crate) struct Metrics {
    enabled: bool,
    phases: [Histogram; 4],
    /// Responses by the first digit of their status (index 1 = 1xx …).
    statuses: [AtomicU64; 10],
    /// Requests whose app took the socket (full hijack): no status known.
    hijacked: AtomicU64,
    /// Requests a pool thread holds: from `next_request` to `finish`.
    pub threads_busy: AtomicUsize,
    /// Connections the reactor has open, published when it changes.
    pub connections_open: Padded,
}

/// A counter on a cache line of its own: the reactor writes it, pool
/// threads write their counters next to it.
#[repr(align(64))]
pub(crate) struct Padded(pub AtomicUsize);

impl Metrics {
    pub(crate) fn new(enabled: bool) -> Self {
        Metrics {
            enabled,
            phases: std::array::from_fn(|_| Histogram::new()),
            statuses: std::array::from_fn(|_| AtomicU64::new(0)),
            hijacked: AtomicU64::new(0),
            threads_busy: AtomicUsize::new(0),
            connections_open: Padded(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds the phase's duration from `timing`, if both ends are known.
    #[inline]
    pub(crate) fn record(&self, phase: Phase, timing: &Timing) {
        if let Some(elapsed) = timing.phase(phase) {
            self.phases[phase as usize].record(elapsed);
        }
    }

    pub(crate) fn count_status(&self, status: u16) {
        if self.enabled {
            self.statuses[usize::from(status / 100).min(9)].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn count_hijacked(&self) {
        if self.enabled {
            self.hijacked.fetch_add(1, Relaxed);
        }
    }

    /// Requests answered by the app itself on a socket it took.
    pub(crate) fn hijacked(&self) -> u64 {
        self.hijacked.load(Relaxed)
    }

    pub(crate) fn phase(&self, phase: Phase) -> Snapshot {
        self.phases[phase as usize].snapshot()
    }

    /// Responses per status class, `[1xx, 2xx, … 9xx]` (statuses below 100
    /// never leave the server).
    pub(crate) fn statuses(&self) -> [u64; 9] {
        std::array::from_fn(|i| self.statuses[i + 1].load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_goes_in_that_bound_bucket() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(25_000), 0);
        assert_eq!(bucket_of(25_001), 1);
        assert_eq!(bucket_of(50_000_000), 10);
        assert_eq!(bucket_of(10_000_000_000), BUCKETS - 2);
        assert_eq!(bucket_of(10_000_000_001), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn bounds_increase() {
        assert!(BUCKET_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn records_add_up_in_count_buckets_and_sum() {
        let h = Histogram::new();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_millis(50));
        h.record(Duration::from_millis(60));
        h.record(Duration::from_secs(3600));
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[10], 1, "50 ms is in the le=0.05 bucket");
        assert_eq!(s.buckets[11], 1, "60 ms is in the le=0.1 bucket");
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(
            s.sum_ns,
            10_000 + 50_000_000 + 60_000_000 + 3_600_000_000_000
        );
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.record(Duration::from_nanos(i * 1000));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = h.snapshot();
        assert_eq!(s.count(), 40_000);
        assert_eq!(s.sum_ns, 4 * (0..10_000u64).map(|i| i * 1000).sum::<u64>());
    }

    #[test]
    fn a_phase_needs_both_ends() {
        let t0 = Instant::now();
        let timing = Timing {
            complete: Some(t0),
            taken: Some(t0 + Duration::from_millis(7)),
            app_start: Some(t0),
            ..Timing::default()
        };
        assert_eq!(timing.phase(Phase::Queue), Some(Duration::from_millis(7)));
        assert_eq!(timing.phase(Phase::GvlWait), None);
        assert_eq!(timing.phase(Phase::App), None);
    }

    #[test]
    fn a_response_written_at_once_has_a_zero_write_phase() {
        let t0 = Instant::now();
        let mut at_once = Timing {
            complete: Some(t0),
            ..Timing::default()
        };
        at_once.finished_writing();
        assert_eq!(at_once.phase(Phase::Write), Some(Duration::ZERO));

        let mut in_parts = Timing {
            complete: Some(t0),
            ..Timing::default()
        };
        in_parts.began_writing();
        std::thread::sleep(Duration::from_millis(2));
        in_parts.began_writing(); // a later partial write: still the first byte's time
        in_parts.finished_writing();
        assert!(in_parts.phase(Phase::Write).unwrap() >= Duration::from_millis(2));

        // Metrics off: nothing is stamped, nothing is recorded.
        let mut untimed = Timing::default();
        untimed.began_writing();
        untimed.finished_writing();
        assert_eq!(untimed.phase(Phase::Write), None);
    }

    /// What one request costs the recording path, single-threaded (no
    /// contention): the clock reads and atomic adds a served request makes
    /// (a small response, work already queued; the reactor's per-turn read
    /// counted once per request, as with one request per turn).
    /// A figure to read, not an assertion: `cargo test --release -- --ignored
    /// --nocapture recording_cost`.
    #[test]
    #[ignore]
    fn recording_cost() {
        let m = Metrics::new(true);
        let n = 2_000_000u32;
        let started = Instant::now();
        for _ in 0..n {
            let mut t = Timing {
                complete: m.enabled().then(Instant::now),
                ..Timing::default()
            };
            t.taken = t.stamp();
            t.resumed = t.taken;
            m.record(Phase::Queue, &t);
            m.record(Phase::GvlWait, &t);
            m.threads_busy.fetch_add(1, Relaxed);
            t.app_start = t.stamp();
            t.app_end = t.stamp();
            m.record(Phase::App, &t);
            m.count_status(200);
            m.threads_busy.fetch_sub(1, Relaxed);
            t.finished_writing();
            m.record(Phase::Write, &t);
            std::hint::black_box(&t);
        }
        let per = started.elapsed().as_nanos() as f64 / f64::from(n);
        println!("recording path: {per:.0} ns per request");
    }

    #[test]
    fn off_means_no_stamps_and_no_counts() {
        let m = Metrics::new(false);
        assert!(!m.enabled());
        m.count_status(200);
        assert_eq!(m.statuses(), [0; 9]);
        let on = Metrics::new(true);
        on.count_status(204);
        on.count_status(503);
        on.count_status(999);
        assert_eq!(on.statuses(), [0, 1, 0, 0, 1, 0, 0, 0, 1]);
        m.count_hijacked();
        on.count_hijacked();
        assert_eq!((m.hijacked(), on.hijacked()), (0, 1));
    }
}
