//! A streamed response body on its way from a pool thread to the reactor.
//!
//! A body the app yields piece by piece (`each` of unknown length,
//! `ActionController::Live`) is framed by the pool thread and pushed here;
//! the reactor drains it as the client's socket takes bytes. The pool thread
//! goes on walking the body while it has room, holding the GVL, and waits
//! (without the GVL) only when the queue is full: a fast client costs no
//! thread switch per chunk, a slow one costs a bounded buffer instead of a
//! thread.
//!
//! One mutex guards the state; neither side holds it while it writes or
//! calls Ruby. The producer wakes the consumer only when the queue goes from
//! empty to non-empty while the consumer waits (and when it ends), never per
//! chunk; the consumer signals the producer only when the producer waits.
//!
//! "Held" bytes are those pushed and not yet written to the socket: the
//! chunks here and the ones the consumer took but has not sent yet. The
//! bound applies to them, so taking chunks out does not make room; writing
//! them does. They also hold their share of the reactor's global
//! [`crate::budget`], reserved by the producer before each push and given
//! back as they are written (all of it when the consumer gives up).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::budget::Reservation;
use crate::vectored::{write_ready, Cursor};

/// Small pieces are appended to the last queued chunk up to this size, so a
/// body of many tiny parts costs neither an allocation nor an iovec each.
const COALESCE: usize = 16 * 1024;
/// How often a waiting producer looks at its cancel flag (as the pool's
/// write loop does).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What the consumer found in [`StreamQueue::take`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Chunks were moved out for the consumer to write.
    Data,
    /// Nothing to write yet: the producer wakes the consumer when there is.
    Wait,
    /// Everything was taken and the producer is done; `keep_alive` says
    /// whether the connection may serve another request once it is written.
    End { keep_alive: bool },
}

/// Why a producer cannot go on.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "client gone")
}

struct State {
    chunks: VecDeque<Vec<u8>>,
    /// Pushed and not yet written (see the module comment).
    held: usize,
    /// The producer is done; whether the connection may be kept.
    end: Option<bool>,
    /// The consumer gave up (client gone, write timeout): nothing more will
    /// be written.
    gone: bool,
    /// The consumer found nothing to do and waits to be woken.
    consumer_idle: bool,
    /// The producer waits on `room` for space or for the queue to drain.
    producer_waiting: bool,
    /// When the consumer last wrote something, or when there came to be
    /// something to write: the write timeout counts from here.
    progress: Instant,
    /// The global budget's share for `held`.
    reservation: Option<Reservation>,
}

/// One streamed response's queue, shared by its producer (the pool thread)
/// and its consumer (the reactor).
pub(crate) struct StreamQueue {
    state: Mutex<State>,
    room: Condvar,
    limit: usize,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for StreamQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamQueue")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl StreamQueue {
    /// A queue that holds at most `limit` bytes (one chunk larger than that
    /// goes through on its own); `wake` tells the consumer there is work.
    /// The consumer is taken to look at the queue as soon as it gets it, so
    /// nothing is woken until it has once found the queue empty.
    pub(crate) fn new(limit: usize, wake: impl Fn() + Send + Sync + 'static) -> Self {
        StreamQueue {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                held: 0,
                end: None,
                gone: false,
                consumer_idle: false,
                producer_waiting: false,
                progress: Instant::now(),
                reservation: None,
            }),
            room: Condvar::new(),
            limit,
            wake: Box::new(wake),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Neither side panics while holding the lock; if one did, the state
        // is still consistent enough to end the response.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, state: &State, len: usize) -> bool {
        state.held == 0 || state.held + len <= self.limit
    }

    // ---- producer side (a pool thread) ----

    /// Whether `len` more bytes fit now; an `Err` means the client is gone.
    pub(crate) fn has_room(&self, len: usize) -> io::Result<bool> {
        let state = self.lock();
        if state.gone {
            return Err(gone());
        }
        Ok(self.fits(&state, len))
    }

    /// Queues `bytes`, which the caller made sure fit ([`has_room`] or
    /// [`wait_for_room`]: there is one producer, so room only grows), with
    /// the budget `reservation` that covers them. An `Err` means the client
    /// is gone.
    ///
    /// [`has_room`]: Self::has_room
    /// [`wait_for_room`]: Self::wait_for_room
    pub(crate) fn push(&self, bytes: Vec<u8>, reservation: Reservation) -> io::Result<()> {
        let mut state = self.lock();
        if state.gone {
            return Err(gone());
        }
        if bytes.is_empty() {
            return Ok(());
        }
        match state.reservation.as_mut() {
            Some(held) => held.absorb(reservation),
            None => state.reservation = Some(reservation),
        }
        if state.held == 0 {
            state.progress = Instant::now();
        }
        state.held += bytes.len();
        match state.chunks.back_mut() {
            Some(last) if last.len() + bytes.len() <= COALESCE => last.extend_from_slice(&bytes),
            _ => state.chunks.push_back(bytes),
        }
        self.wake_consumer(state);
        Ok(())
    }

    /// Waits until `len` more bytes fit. Errors: the client is gone
    /// (`BrokenPipe`), it took nothing for `timeout` (`TimedOut`), or
    /// `cancel` was set (`Interrupted`: Ruby wants the thread back).
    pub(crate) fn wait_for_room(
        &self,
        len: usize,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> io::Result<()> {
        self.wait_until(timeout, cancel, |state| self.fits(state, len))
    }

    /// Waits until every byte pushed so far is written (for `after_reply`,
    /// which runs once the response is on the wire); errors as
    /// [`wait_for_room`](Self::wait_for_room).
    pub(crate) fn wait_drained(&self, timeout: Duration, cancel: &AtomicBool) -> io::Result<()> {
        self.wait_until(timeout, cancel, |state| state.held == 0)
    }

    fn wait_until(
        &self,
        timeout: Duration,
        cancel: &AtomicBool,
        done: impl Fn(&State) -> bool,
    ) -> io::Result<()> {
        let mut state = self.lock();
        loop {
            if state.gone {
                return Err(gone());
            }
            if done(&state) {
                return Ok(());
            }
            if cancel.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "interrupted by Ruby",
                ));
            }
            let deadline = state.progress + timeout;
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client did not read the response",
                ));
            }
            state.producer_waiting = true;
            state = self
                .room
                .wait_timeout(state, WAIT_SLICE.min(deadline - now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.producer_waiting = false;
        }
    }

    /// The producer is done: once everything queued is written, the
    /// connection is kept for another request if `keep_alive`, else closed.
    /// A body that failed half way ends with `keep_alive` false: the client
    /// gets what was queued, then the connection closes.
    pub(crate) fn close(&self, keep_alive: bool) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(keep_alive);
        }
        self.wake_consumer(state);
    }

    fn wake_consumer(&self, mut state: MutexGuard<'_, State>) {
        let wake = std::mem::replace(&mut state.consumer_idle, false);
        drop(state);
        if wake {
            (self.wake)();
        }
    }

    // ---- consumer side (the reactor) ----

    /// Moves the queued chunks to the end of `into`, for the consumer to
    /// write (and report with [`written`](Self::written)).
    pub(crate) fn take(&self, into: &mut Vec<Vec<u8>>) -> Next {
        let mut state = self.lock();
        if !state.chunks.is_empty() {
            into.extend(state.chunks.drain(..));
            return Next::Data;
        }
        match state.end {
            Some(keep_alive) => Next::End { keep_alive },
            None => {
                state.consumer_idle = true;
                Next::Wait
            }
        }
    }

    /// `n` bytes reached the socket: the client made progress, and a
    /// producer waiting for room may go on.
    pub(crate) fn written(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut state = self.lock();
        state.held = state.held.saturating_sub(n);
        state.progress = Instant::now();
        if let Some(reservation) = state.reservation.as_mut() {
            reservation.release(n);
        }
        if state.producer_waiting {
            self.room.notify_one();
        }
    }

    /// The consumer will write nothing more (the client is gone or timed
    /// out): the producer learns it at its next push or at once if waiting.
    pub(crate) fn give_up(&self) {
        let mut state = self.lock();
        state.gone = true;
        state.chunks.clear();
        state.held = 0;
        state.reservation = None;
        if state.producer_waiting {
            self.room.notify_one();
        }
    }

    /// Bytes pushed and not yet written.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.lock().held
    }
}

/// What [`StreamSource::write_to`] got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    /// The socket is full: wait until it is writable.
    SocketFull,
    /// Everything queued is written and the producer has more to come: the
    /// producer wakes the consumer when it pushes.
    Waiting,
    /// The body is complete on the socket; keep the connection or not.
    End { keep_alive: bool },
}

/// The reactor's end of a [`StreamQueue`]: the chunks it took and where it
/// is in them. Dropping it (the connection is closed, whatever the reason)
/// tells the producer the client is gone.
pub(crate) struct StreamSource {
    queue: Arc<StreamQueue>,
    pieces: Vec<Vec<u8>>,
    at: Cursor,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource").finish_non_exhaustive()
    }
}

impl StreamSource {
    pub(crate) fn new(queue: Arc<StreamQueue>) -> Self {
        StreamSource {
            queue,
            pieces: Vec::new(),
            at: Cursor::default(),
        }
    }

    /// Writes what the queue holds as long as the socket takes it; returns
    /// the bytes written and where that left the stream.
    pub(crate) fn write_to(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<(usize, Drain)> {
        let mut total = 0;
        loop {
            if self.pieces.is_empty() {
                self.at = Cursor::default();
                match self.queue.take(&mut self.pieces) {
                    Next::Data => {}
                    Next::Wait => return Ok((total, Drain::Waiting)),
                    Next::End { keep_alive } => return Ok((total, Drain::End { keep_alive })),
                }
            }
            let written = write_ready(&self.pieces, &mut self.at, &mut write)?;
            self.queue.written(written.bytes);
            total += written.bytes;
            if !written.done {
                return Ok((total, Drain::SocketFull));
            }
            self.pieces.clear();
        }
    }
}

impl Drop for StreamSource {
    fn drop(&mut self) {
        self.queue.give_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    const LONG: Duration = Duration::from_secs(10);

    fn no_cancel() -> AtomicBool {
        AtomicBool::new(false)
    }

    /// A queue whose wake-ups are counted and sent on a channel.
    fn counted(
        limit: usize,
    ) -> (
        Arc<StreamQueue>,
        Arc<AtomicUsize>,
        crossbeam_channel::Receiver<()>,
    ) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = wakes.clone();
        let queue = Arc::new(StreamQueue::new(limit, move || {
            w.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(());
        }));
        (queue, wakes, rx)
    }

    /// A budget no test reaches (the one test of the accounting has its own).
    fn budget() -> &'static Arc<Budget> {
        static BUDGET: std::sync::OnceLock<Arc<Budget>> = std::sync::OnceLock::new();
        BUDGET.get_or_init(|| Budget::new(usize::MAX / 2))
    }

    /// Pushes if there is room: false when the queue is full.
    fn put(queue: &StreamQueue, bytes: Vec<u8>) -> io::Result<bool> {
        if !queue.has_room(bytes.len())? {
            return Ok(false);
        }
        let reservation = budget().try_reserve(bytes.len()).unwrap();
        queue.push(bytes, reservation)?;
        Ok(true)
    }

    /// Pushes, waiting for room as a pool thread does.
    fn push_all(queue: &StreamQueue, bytes: Vec<u8>, timeout: Duration) -> io::Result<()> {
        if !queue.has_room(bytes.len())? {
            queue.wait_for_room(bytes.len(), timeout, &no_cancel())?;
        }
        assert!(put(queue, bytes)?, "room only grows");
        Ok(())
    }

    /// Plays the reactor: drains the queue through a [`StreamSource`] into
    /// a non-blocking socket, waiting with poll(2) where the reactor waits
    /// for epoll, and for a wake-up when the queue is empty. Returns the end
    /// it saw, or the write error (the source is dropped: gave up).
    fn drain(
        queue: Arc<StreamQueue>,
        sock: UnixStream,
        wakes: &crossbeam_channel::Receiver<()>,
    ) -> io::Result<bool> {
        sock.set_nonblocking(true).unwrap();
        let mut source = StreamSource::new(queue);
        loop {
            match source.write_to(|b| (&sock).write_vectored(b))?.1 {
                Drain::End { keep_alive } => return Ok(keep_alive),
                Drain::Waiting => {
                    wakes
                        .recv_timeout(LONG)
                        .expect("producer never woke the consumer");
                }
                Drain::SocketFull => {
                    let mut fds = [PollFd::new(
                        std::os::fd::AsFd::as_fd(&sock),
                        PollFlags::POLLOUT,
                    )];
                    poll(&mut fds, PollTimeout::from(1000u16)).unwrap();
                }
            }
        }
    }

    fn body(n: usize, chunk: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| (0..chunk).map(|j| (i * 31 + j) as u8).collect())
            .collect()
    }

    /// Over a real socket pair, with a limit far below the body: every byte
    /// arrives in order, the end and its keep-alive reach the consumer, and
    /// the producer never had more than the limit (plus one chunk) held.
    #[test]
    fn a_body_larger_than_the_limit_arrives_whole_through_a_socket() {
        let (queue, _, wakes) = counted(256 * 1024);
        let chunks = body(512, 16 * 1024 + 3); // 8 MiB
        let expected = chunks.concat();
        let (ours, mut client) = UnixStream::pair().unwrap();
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        let q = queue.clone();
        let consumer = thread::spawn(move || drain(q, ours, &wakes));
        let mut most = 0;
        for chunk in chunks {
            let len = chunk.len();
            push_all(&queue, chunk, LONG).unwrap();
            most = most.max(queue.held());
            assert!(queue.held() <= 256 * 1024 + len);
        }
        queue.close(true);
        assert!(consumer.join().unwrap().unwrap());
        let got = reader.join().unwrap();
        assert!(got == expected, "bytes lost or out of order");
        assert!(most > 0);
    }

    /// The consumer is woken when the queue goes from empty to non-empty
    /// after it found it empty, and when the producer ends; not per chunk.
    #[test]
    fn the_consumer_is_woken_once_per_empty_to_non_empty_transition() {
        let (queue, wakes, _rx) = counted(1 << 20);
        let wakes = || wakes.load(Ordering::SeqCst);
        // The consumer looks at a new queue without being woken.
        for _ in 0..100 {
            assert!(put(&queue, vec![1; 100]).unwrap());
        }
        assert_eq!(wakes(), 0);
        let mut out = Vec::new();
        assert_eq!(queue.take(&mut out), Next::Data);
        // Small pieces share a chunk.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 100 * 100);
        // Busy writing: pushes do not wake it.
        assert!(put(&queue, vec![2; 10]).unwrap());
        assert_eq!(wakes(), 0);
        out.clear();
        assert_eq!(queue.take(&mut out), Next::Data);
        assert_eq!(queue.take(&mut out), Next::Wait);
        assert!(put(&queue, vec![3; 10]).unwrap());
        assert!(put(&queue, vec![4; 10]).unwrap());
        assert_eq!(wakes(), 1, "woken once for two pushes into an empty queue");
        out.clear();
        assert_eq!(queue.take(&mut out), Next::Data);
        assert_eq!(queue.take(&mut out), Next::Wait);
        queue.close(false);
        assert_eq!(wakes(), 2, "the end wakes a waiting consumer");
        assert_eq!(queue.take(&mut out), Next::End { keep_alive: false });
    }

    /// Room is made by writing, not by taking: a consumer holding chunks it
    /// has not written keeps the producer waiting.
    #[test]
    fn the_limit_counts_bytes_taken_but_not_written() {
        let (queue, _, _rx) = counted(100);
        assert!(put(&queue, vec![0; 60]).unwrap());
        let mut out = Vec::new();
        assert_eq!(queue.take(&mut out), Next::Data);
        assert!(!put(&queue, vec![0; 60]).unwrap());
        queue.written(30);
        assert!(put(&queue, vec![0; 60]).unwrap());
        assert_eq!(queue.held(), 90);
    }

    /// Queued bytes hold their share of the global budget until written;
    /// what is left goes back when the consumer gives up.
    #[test]
    fn queued_bytes_hold_the_global_budget_until_written() {
        let budget = Budget::new(1000);
        let (queue, _, _rx) = counted(1 << 20);
        queue
            .push(vec![0; 300], budget.try_reserve(300).unwrap())
            .unwrap();
        queue
            .push(vec![0; 500], budget.try_reserve(500).unwrap())
            .unwrap();
        assert_eq!(budget.held(), 800);
        assert!(budget.try_reserve(300).is_none(), "the queue's bytes count");
        let mut out = Vec::new();
        assert_eq!(queue.take(&mut out), Next::Data);
        assert_eq!(budget.held(), 800, "taking is not writing");
        queue.written(200);
        assert_eq!(budget.held(), 600);
        queue.give_up();
        assert_eq!(budget.held(), 0);
    }

    /// A chunk larger than the limit goes through alone, so a producer is
    /// never stuck on it.
    #[test]
    fn a_chunk_over_the_limit_goes_through_when_the_queue_is_empty() {
        let (queue, _, _rx) = counted(10);
        assert!(put(&queue, vec![0; 1000]).unwrap());
        assert!(!put(&queue, vec![0; 1]).unwrap());
    }

    /// A producer waiting for room learns at once that the client is gone
    /// (long before its timeout), and every later push fails.
    #[test]
    fn a_waiting_producer_learns_at_once_that_the_client_is_gone() {
        let (queue, _, _rx) = counted(100);
        assert!(put(&queue, vec![0; 100]).unwrap());
        let q = queue.clone();
        let started = Instant::now();
        let waiter = thread::spawn(move || q.wait_for_room(50, LONG, &no_cancel()));
        while !queue.lock().producer_waiting {
            thread::yield_now();
        }
        queue.give_up();
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(started.elapsed() < LONG / 2, "took {:?}", started.elapsed());
        assert_eq!(
            put(&queue, vec![1]).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    /// A client that takes nothing: the producer gives up after the timeout,
    /// counted from when there was something to write.
    #[test]
    fn a_producer_gives_up_when_the_client_takes_nothing_for_the_timeout() {
        let (queue, _, _rx) = counted(100);
        assert!(put(&queue, vec![0; 100]).unwrap());
        let started = Instant::now();
        let err = queue
            .wait_for_room(1, Duration::from_millis(300), &no_cancel())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    /// Progress by the client extends the wait: a slow reader that keeps
    /// taking bytes is not timed out.
    #[test]
    fn progress_extends_the_producers_wait() {
        let (queue, _, _rx) = counted(100);
        assert!(put(&queue, vec![0; 100]).unwrap());
        let q = queue.clone();
        let slow = thread::spawn(move || {
            for _ in 0..6 {
                thread::sleep(Duration::from_millis(100));
                q.written(10);
            }
        });
        // 600 ms of waiting, never 300 ms without progress.
        queue
            .wait_for_room(60, Duration::from_millis(300), &no_cancel())
            .unwrap();
        slow.join().unwrap();
    }

    /// Ruby's unblocking function sets the flag: the wait ends within a
    /// slice, with `Interrupted`.
    #[test]
    fn a_cancel_flag_ends_the_wait() {
        let (queue, _, _rx) = counted(100);
        assert!(put(&queue, vec![0; 100]).unwrap());
        let cancel = Arc::new(no_cancel());
        let c = cancel.clone();
        let q = queue.clone();
        let started = Instant::now();
        let waiter = thread::spawn(move || q.wait_for_room(1, LONG, &c));
        thread::sleep(Duration::from_millis(50));
        cancel.store(true, Ordering::Release);
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(started.elapsed() < LONG / 2);
    }

    /// `wait_drained` returns once the client has everything (what
    /// `after_reply` waits for).
    #[test]
    fn wait_drained_returns_once_everything_is_written() {
        // Room for the whole body: the client reads only after the pushes.
        let (queue, _, wakes) = counted(4 << 20);
        let (ours, mut client) = UnixStream::pair().unwrap();
        let q = queue.clone();
        let consumer = thread::spawn(move || drain(q, ours, &wakes));
        let chunks = body(64, 32 * 1024);
        let total: usize = chunks.iter().map(Vec::len).sum();
        for chunk in chunks {
            push_all(&queue, chunk, LONG).unwrap();
        }
        let reader = thread::spawn(move || {
            let mut got = vec![0; total];
            client.read_exact(&mut got).unwrap();
            client
        });
        queue.wait_drained(LONG, &no_cancel()).unwrap();
        assert_eq!(queue.held(), 0);
        queue.close(true);
        assert!(consumer.join().unwrap().unwrap());
        let mut client = reader.join().unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    /// Over a real socket: the client goes away mid-stream; the consumer's
    /// write fails, it gives up, and the producer's next push (or its wait)
    /// fails instead of filling the queue.
    #[test]
    fn a_client_that_disconnects_stops_the_producer() {
        let (queue, _, wakes) = counted(64 * 1024);
        let (ours, mut client) = UnixStream::pair().unwrap();
        let q = queue.clone();
        let consumer = thread::spawn(move || drain(q, ours, &wakes));
        let mut first = [0; 1000];
        let mut pushed = 0;
        let mut result = Ok(());
        for (i, chunk) in body(10_000, 8 * 1024).into_iter().enumerate() {
            if i == 10 {
                client.read_exact(&mut first).unwrap();
                drop(std::mem::replace(
                    &mut client,
                    UnixStream::pair().unwrap().0,
                ));
            }
            result = push_all(&queue, chunk, LONG);
            if result.is_err() {
                break;
            }
            pushed += 1;
        }
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert!(pushed < 10_000, "the producer never learnt");
        assert!(consumer.join().unwrap().is_err());
    }
}
