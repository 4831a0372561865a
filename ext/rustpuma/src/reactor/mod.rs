//! The event loop: accepts connections, buffers each request until it is
//! complete, hands complete requests to the pool, and takes connections back
//! for keep-alive. One native thread, started after any fork, that never
//! touches a Ruby object.
//!
//! Sockets are registered once, edge-triggered, and stay registered while a
//! pool thread owns the client; the reactor ignores their events meanwhile
//! and reads them when the client comes back (the data may already be there).
//! Deadlines are swept on the cadence of [`crate::timers`]; relayed hijacks
//! live in [`crate::tunnel`].
//!
//! Split by concern: [`accept`] (new connections), [`writing`] (responses
//! the pool handed back), [`tunnels`] (relayed hijacks); this file holds the
//! loop, the slots and the reading side.

mod accept;
mod returns;
mod tunnels;
mod waker;
mod writing;

use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::budget::Budget;
use crate::client::{Advance, Client, Limits};
use crate::config::{Config, Timeouts};
use crate::fds::Owned;
use crate::http::response::error_response;
use crate::log;
use crate::metrics::Metrics;
use crate::outgoing::Outgoing;
use crate::queue::{Producer, STALL};
use crate::socket::Listener;
use crate::timers::Sweep;
use crate::tunnel::Tunnel;
use returns::Returns;
use waker::Waker;

const WAKER: Token = Token(usize::MAX);
const FIRST_LISTENER: usize = usize::MAX - 1;
/// How long to wait before accepting again after running out of file
/// descriptors, instead of spinning on EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// On a graceful stop, how long a connection that was accepted but has not
/// sent its whole request yet may take to do so.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bytes one connection (or tunnel) may read per turn before the others get
/// theirs; it is then revisited from the ready list. Large enough that a
/// normal upload moves in a few turns, small enough that a fast sender on
/// loopback cannot keep the reactor from everyone else.
pub(crate) const READ_BUDGET: usize = 512 * 1024;

/// What Ruby asks of the reactor, through [`Shared::command`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Command {
    Run = 0,
    /// Close the listeners (and idle connections); finish what is in flight.
    Stop = 1,
}

/// A complete request on its way to the pool, with its connection.
pub(crate) struct Handoff {
    pub token: Token,
    pub client: Box<Client>,
}

/// A connection on its way back from the pool.
pub(crate) enum Returned {
    KeepAlive(Handoff),
    /// A complete response for the reactor to write, then keep or close.
    Respond(Handoff, Outgoing),
    /// A streamed body the reactor waited on has bytes (or has ended): see
    /// [`crate::stream_queue`].
    StreamReady(Token),
    /// Closed or hijacked by the pool: the slot can be reused.
    Released(Token),
    /// A relayed hijack (TLS, or bytes already buffered): pump it to the
    /// app's end of this pair.
    Tunnel(Handoff, Owned<mio::net::UnixStream>),
}

/// State shared by the reactor and the pool threads (plain Rust data only).
pub(crate) struct Shared {
    pub registry: Owned<Registry>,
    waker: Waker,
    returns: Returns,
    command: AtomicU8,
    pub requests_count: AtomicU64,
    /// Most requests waiting for a pool thread, and most connections the
    /// reactor held, since Ruby last read them (Puma's backlog_max and
    /// reactor_max stats).
    pub backlog_max: AtomicUsize,
    pub reactor_max: AtomicUsize,
    /// Response bytes the reactor holds in memory (`slow_reader_buffer_limit`):
    /// pool threads reserve before they hand a response over.
    pub budget: Arc<Budget>,
    /// `debug`: pool threads log their waits for the budget.
    pub debug: bool,
    /// Phase histograms, status classes and gauges (`metrics.rs`).
    pub metrics: Metrics,
    /// The reactor is (about to be) blocked in epoll_wait.
    reactor_asleep: AtomicBool,
    /// The reactor thread is running (from `run` until it returns).
    running: AtomicBool,
    /// A fork is coming: the reactor waits at the top of its loop, where it
    /// holds no lock and is inside no library call, until it is cleared.
    park: AtomicBool,
    parked: AtomicBool,
}

impl Shared {
    /// Hands a connection back. The eventfd write (and the reactor's
    /// wake-up) is skipped while the reactor is awake anyway: it drains the
    /// channel before it sleeps again (see `Reactor::run`). Only the first
    /// return of a sleep wakes it: the others arrive while it waits for a
    /// CPU, and were each writing the eventfd again (0.8 writes a request
    /// on hello world, where the reactor sleeps once in 20 requests).
    pub(crate) fn give_back(&self, returned: Returned) {
        if !self.returns.push(returned) {
            return;
        }
        // Pairs with the fence in `Reactor::run`: either we see the flag, or
        // the reactor sees our message before it sleeps. Whoever clears the
        // flag wakes it; a thread that finds it cleared left its message
        // before the reactor's next look at the channel.
        fence(Ordering::SeqCst);
        if self.reactor_asleep.load(Ordering::SeqCst)
            && self.reactor_asleep.swap(false, Ordering::SeqCst)
        {
            let _ = self.waker.wake();
        }
    }

    pub(crate) fn send_command(&self, command: Command) {
        self.command.store(command as u8, Ordering::Release);
        let _ = self.waker.wake();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.command.load(Ordering::Acquire) == Command::Stop as u8
    }

    /// Before a fork: has the reactor thread wait where it holds nothing a
    /// child could need (an allocator or library lock taken mid-call, the
    /// environment lock `tempfile` takes). Waits at most `limit` for it;
    /// false if it did not get there (the fork goes ahead anyway).
    pub(crate) fn pause(&self, limit: Duration) -> bool {
        self.park.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        let until = Instant::now() + limit;
        while self.running.load(Ordering::SeqCst) && !self.parked.load(Ordering::SeqCst) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        true
    }

    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }

    pub(crate) fn resume(&self) {
        self.park.store(false, Ordering::SeqCst);
    }

    /// The reactor's side of `pause`.
    fn park_here(&self) {
        self.parked.store(true, Ordering::SeqCst);
        while self.park.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.parked.store(false, Ordering::SeqCst);
    }
}

enum Slot {
    /// The reactor owns the client until `deadline` (checked by the sweep).
    Waiting {
        client: Box<Client>,
        deadline: Instant,
    },
    /// A pool thread owns the client; `readable`: epoll reported the socket
    /// meanwhile (the report is not repeated: the reactor reads when the
    /// client comes back), `hung_up`: a report said the peer closed or
    /// reset it.
    Busy {
        readable: bool,
        hung_up: bool,
    },
    /// The reactor is writing a response the pool handed back; still counted
    /// as in flight for a graceful stop.
    Writing {
        client: Box<Client>,
        out: Outgoing,
        deadline: Instant,
    },
    /// A hijacked TLS connection relayed to the app (two slots: this one for
    /// the TLS socket, a `TunnelPeer` for the app's socket pair).
    Tunnel(Box<Tunnel>),
    TunnelPeer {
        tls_key: usize,
    },
}

impl Slot {
    /// Just handed to a pool thread: no report seen yet.
    fn busy() -> Slot {
        Slot::Busy {
            readable: false,
            hung_up: false,
        }
    }
}

pub(crate) struct Reactor {
    poll: Owned<Poll>,
    listeners: Vec<Option<Listener>>,
    clients: Slab<Slot>,
    sweep: Sweep,
    busy: usize,
    /// Slots held by TLS tunnels, which a graceful stop does not wait for
    /// (like Puma, hijacked connections are the app's business).
    tunnel_slots: usize,
    requests: Producer<Handoff>,
    /// Items taken from `requests` when a possible stall was first seen,
    /// and when (see `watch_stall`).
    stall: Option<(usize, Instant)>,
    /// The reactor's half of the swap in [`Returns::take`].
    batch: Vec<Returned>,
    shared: Arc<Shared>,
    timeouts: Timeouts,
    limits: Limits,
    retry_accept_at: Option<Instant>,
    accept_errors: accept::AcceptErrors,
    /// Connections that spent their read budget with data possibly left:
    /// edge-triggered epoll will not report them again, so they are
    /// revisited after this turn's events.
    ready: Vec<usize>,
    /// The last `connections_open` given to the metrics.
    connections_published: usize,
    /// The request metrics' clock read of this turn (`metrics_stamp`).
    turn_stamp: Option<Instant>,
    /// Request metrics on: a copy, since `Metrics::enabled` shares a cache
    /// line with counters the pool threads bump on every request.
    timed: bool,
    /// When this turn's events came in: deadlines are set from it, one
    /// clock read a turn instead of several a request (they are seconds
    /// long; a turn takes microseconds).
    now: Instant,
}

impl Reactor {
    /// Builds the poller and registers the listeners; no thread yet, so this
    /// is safe before a fork.
    pub(crate) fn new(
        mut listeners: Vec<Listener>,
        requests: Producer<Handoff>,
        config: &Config,
    ) -> io::Result<(Reactor, Arc<Shared>)> {
        let timeouts = config.timeouts;
        let poll = Owned::new(Poll::new()?);
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                listener.source(),
                Token(FIRST_LISTENER - i),
                Interest::READABLE,
            )?;
        }
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            registry: Owned::new(poll.registry().try_clone()?),
            waker,
            returns: Returns::new(),
            command: AtomicU8::new(Command::Run as u8),
            requests_count: AtomicU64::new(0),
            backlog_max: AtomicUsize::new(0),
            reactor_max: AtomicUsize::new(0),
            budget: Budget::new(config.slow_reader_limit),
            debug: config.limits.debug,
            metrics: Metrics::new(config.metrics),
            reactor_asleep: AtomicBool::new(false),
            running: AtomicBool::new(false),
            park: AtomicBool::new(false),
            parked: AtomicBool::new(false),
        });
        let reactor = Reactor {
            poll,
            listeners: listeners.into_iter().map(Some).collect(),
            clients: Slab::new(),
            sweep: Sweep::new(timeouts.first_data.min(timeouts.persistent)),
            busy: 0,
            tunnel_slots: 0,
            requests,
            stall: None,
            batch: Vec::new(),
            shared: shared.clone(),
            timeouts,
            limits: config.limits.clone(),
            retry_accept_at: None,
            accept_errors: accept::AcceptErrors::default(),
            ready: Vec::new(),
            connections_published: 0,
            turn_stamp: None,
            timed: config.metrics,
            now: Instant::now(),
        };
        Ok((reactor, shared))
    }

    /// Runs until a stop was asked and every request in flight came back.
    /// Returning drops the request sender, which tells the pool to finish.
    /// An `Err` is a reactor that cannot go on: the caller ends the process.
    pub(crate) fn run(mut self) -> Result<(), String> {
        block_signals();
        self.shared.running.store(true, Ordering::SeqCst);
        let shared = self.shared.clone();
        let result = self.run_loop();
        shared.running.store(false, Ordering::SeqCst);
        result
    }

    fn run_loop(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut stopped = false;
        loop {
            if self.shared.park.load(Ordering::SeqCst) {
                self.shared.park_here();
            }
            let stall_check = self.watch_stall();
            // Announce the sleep before the last look at the return channel:
            // a pool thread either sees the flag and wakes us, or its
            // connection is seen here (both sides use SeqCst).
            self.shared.reactor_asleep.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let timeout = if self.shared.returns.is_empty() && self.ready.is_empty() {
                match (self.next_timeout(), stall_check) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            } else {
                Some(Duration::ZERO)
            };
            let polled = self.poll.poll(&mut events, timeout);
            self.shared.reactor_asleep.store(false, Ordering::SeqCst);
            self.turn_stamp = None;
            self.now = Instant::now();
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.shared.waker.reset(),
                    Token(t) if t > FIRST_LISTENER - self.listeners.len() => {
                        self.accept(FIRST_LISTENER - t)
                    }
                    Token(key) => self.on_event(key, event.is_read_closed() || event.is_error()),
                }
            }
            // Those that yielded last turn go after this turn's events (a
            // key may have been reused meanwhile: a spurious read is harmless).
            for key in std::mem::take(&mut self.ready) {
                self.on_event(key, false);
            }
            // A connection back from the pool may hold a request that came
            // in after this turn began.
            self.turn_stamp = None;
            self.take_returns();
            // After the returns: the request that set the flag handed its
            // response back through them, so the flag is seen on the turn
            // that takes that response (an idle reactor may not wake again).
            if CRASH_REQUESTED.load(Ordering::Relaxed) {
                panic!("crash requested through the test hook (RUSTPUMA_TEST_HOOKS)");
            }
            if !stopped && self.shared.stopping() {
                stopped = true;
                self.stop_accepting();
            }
            self.expire_timers();
            // A TLS tunnel holds two slots for one client connection. Stored
            // only when it changed: pool threads' counters sit near it.
            let open = self.clients.len() - self.tunnel_slots / 2;
            if open != self.connections_published {
                self.connections_published = open;
                self.shared
                    .metrics
                    .connections_open
                    .0
                    .store(open, Ordering::Relaxed);
            }
            if let Some(at) = self.retry_accept_at {
                if Instant::now() >= at {
                    self.retry_accept_at = None;
                    // Not `accept`: a delayed accept must not be delayed again.
                    if !self.shared.stopping() {
                        (0..self.listeners.len()).for_each(|i| self.accept_pending(i));
                    }
                }
            }
            if stopped && self.busy == 0 && self.clients.len() == self.tunnel_slots {
                return Ok(());
            }
        }
    }

    /// Requests queued while pool threads were serving wake nobody (see
    /// [`crate::queue`]); if none is taken for [`STALL`] while threads are
    /// parked, the serving ones are blocked and a parked one is woken.
    /// Returns when to look again, if a stall may be building.
    fn watch_stall(&mut self) -> Option<Duration> {
        let Some(taken) = self.requests.progress() else {
            self.stall = None;
            return None;
        };
        let now = Instant::now();
        match self.stall {
            Some((seen, since)) if seen == taken => {
                let waited = now.saturating_duration_since(since);
                if waited >= STALL {
                    self.requests.wake_one();
                    self.stall = None;
                    // Look again soon: the woken thread may not be enough.
                    Some(STALL)
                } else {
                    Some(STALL - waited)
                }
            }
            _ => {
                self.stall = Some((taken, now));
                Some(STALL)
            }
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let timer = (!self.clients.is_empty()).then(|| self.sweep.next_in(now));
        let retry = self
            .retry_accept_at
            .map(|at| at.saturating_duration_since(now));
        match (timer, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `hung_up`: epoll reported a FIN or a reset (see `Client::readable`).
    fn on_event(&mut self, key: usize, hung_up: bool) {
        match self.clients.get_mut(key) {
            Some(Slot::Waiting { client, .. }) => {
                client.readable(hung_up);
                self.on_readable(key)
            }
            Some(Slot::Writing { client, .. }) => {
                client.readable(hung_up);
                self.continue_writing(key)
            }
            Some(Slot::Busy {
                readable,
                hung_up: seen,
            }) => {
                *readable = true;
                *seen |= hung_up;
            }
            Some(Slot::Tunnel(_)) => self.pump_tunnel(key),
            Some(Slot::TunnelPeer { tls_key }) => {
                let tls_key = *tls_key;
                self.pump_tunnel(tls_key)
            }
            _ => {}
        }
    }

    fn on_readable(&mut self, key: usize) {
        let Some(Slot::Waiting { client, .. }) = self.clients.get_mut(key) else {
            return;
        };
        match client.advance(&self.limits, READ_BUDGET) {
            Advance::Ready => self.dispatch(key),
            Advance::Yield => {
                self.ready.push(key);
                self.set_deadline(key, self.timeouts.first_data);
            }
            Advance::NeedMore => {
                if client.has_partial_request() {
                    self.set_deadline(key, self.timeouts.first_data);
                }
            }
            Advance::Gone => self.close(key),
            Advance::TlsFailed(reason) => {
                if self.limits.debug {
                    log::warn(&format!(
                        "% SSL error, peer: {}: {reason}",
                        client.remote_addr
                    ));
                }
                self.close(key);
            }
            Advance::Reject(rejection) => {
                // As Puma, a TLS client on a plain port gets a hint: the
                // usual cause is https:// against a tcp:// bind.
                let hint = if rejection
                    .reason
                    .ends_with(crate::http::parser::NotHttp::Tls.reason())
                {
                    " (a client is speaking TLS to this plain-HTTP listener: use https only with an ssl:// bind)"
                } else {
                    ""
                };
                log::warn(&format!(
                    "HTTP parse error, malformed request ({}): {} {}{hint}",
                    client.remote_addr, rejection.status, rejection.reason
                ));
                if self.limits.errors_to_app {
                    client.rejection = Some(rejection);
                    self.dispatch(key);
                } else {
                    self.shared.metrics.count_status(rejection.status);
                    let mut client = self.remove(key);
                    client.stream.try_write(&error_response(rejection.status));
                }
            }
        }
    }

    fn dispatch(&mut self, key: usize) {
        let Some(slot) = self.clients.get_mut(key) else {
            return;
        };
        let Slot::Waiting { mut client, .. } = std::mem::replace(slot, Slot::busy()) else {
            return;
        };
        client.timing.complete = self.metrics_stamp();
        self.busy = self.busy.saturating_add(1);
        self.shared.requests_count.fetch_add(1, Ordering::Relaxed);
        self.requests.push(Handoff {
            token: Token(key),
            client,
        });
        self.shared
            .backlog_max
            .fetch_max(self.requests.len(), Ordering::Relaxed);
    }

    /// "Complete" for the request metrics: one clock read per turn, not
    /// per request (a read costs about as much as recording the rest). The
    /// requests read in a turn were readable when epoll reported them, so
    /// they were complete by the turn's first dispatch, or became so while
    /// the reactor read the ones before them: their queue phase counts that
    /// wait for the reactor too.
    fn metrics_stamp(&mut self) -> Option<Instant> {
        if !self.timed {
            return None;
        }
        Some(*self.turn_stamp.get_or_insert_with(Instant::now))
    }

    fn take_returns(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            self.shared.returns.take(&mut batch);
            if batch.is_empty() {
                break;
            }
            for returned in batch.drain(..) {
                self.take_return(returned);
            }
        }
        self.batch = batch;
    }

    fn take_return(&mut self, returned: Returned) {
        {
            match returned {
                Returned::KeepAlive(Handoff { token, mut client }) => {
                    self.busy = self.busy.saturating_sub(1);
                    if self.shared.stopping() {
                        self.clients.remove(token.0);
                        return;
                    }
                    if let Some(slot) = self.clients.get_mut(token.0) {
                        if let Slot::Busy {
                            readable: true,
                            hung_up,
                        } = *slot
                        {
                            client.readable(hung_up);
                        }
                        *slot = Slot::Waiting {
                            client,
                            deadline: far_future(self.now),
                        };
                        self.set_deadline(token.0, self.timeouts.persistent);
                        self.on_readable(token.0);
                    }
                }
                Returned::Respond(Handoff { token, mut client }, out) => {
                    if let Some(slot) = self.clients.get_mut(token.0) {
                        if let Slot::Busy {
                            readable: true,
                            hung_up,
                        } = *slot
                        {
                            client.readable(hung_up);
                        }
                        *slot = Slot::Writing {
                            client,
                            out,
                            deadline: far_future(self.now),
                        };
                        self.continue_writing(token.0);
                    }
                }
                Returned::StreamReady(token) => {
                    // The key may have been reused since: a spurious write
                    // attempt is harmless.
                    if let Some(Slot::Writing { .. }) = self.clients.get(token.0) {
                        self.continue_writing(token.0);
                    }
                }
                Returned::Tunnel(Handoff { token, client }, pair) => {
                    self.busy = self.busy.saturating_sub(1);
                    if self.clients.contains(token.0) {
                        self.start_tunnel(token.0, client, pair);
                    }
                }
                Returned::Released(token) => {
                    self.busy = self.busy.saturating_sub(1);
                    if self.clients.contains(token.0) {
                        self.clients.remove(token.0);
                    }
                }
            }
        }
    }

    fn stop_accepting(&mut self) {
        if self.limits.drain_on_shutdown {
            // Connections already in the kernel's backlog are taken and
            // served instead of being reset when the listener closes.
            (0..self.listeners.len()).for_each(|i| self.accept_pending(i));
        }
        for slot in self.listeners.iter_mut() {
            if let Some(mut listener) = slot.take() {
                let _ = self.poll.registry().deregister(listener.source());
            }
        }
        // Idle keep-alive connections are closed now. A connection that is
        // new or half-way through a request already has a client waiting
        // for an answer: it gets a short grace period to finish its request,
        // which is served and then closed (a restart loses nobody).
        let mut idle = Vec::new();
        let mut pending = Vec::new();
        for (key, slot) in self.clients.iter() {
            if let Slot::Waiting { client, .. } = slot {
                if client.served > 0 && !client.has_partial_request() {
                    idle.push(key);
                } else {
                    pending.push(key);
                }
            }
        }
        idle.into_iter().for_each(|key| self.close(key));
        let grace = self.timeouts.first_data.min(STOP_GRACE);
        pending
            .into_iter()
            .for_each(|key| self.set_deadline(key, grace));
    }

    fn set_deadline(&mut self, key: usize, after: Duration) {
        if let Some(Slot::Waiting { deadline, .. } | Slot::Writing { deadline, .. }) =
            self.clients.get_mut(key)
        {
            *deadline = self.now + after;
        }
    }

    fn expire_timers(&mut self) {
        let now = Instant::now();
        if !self.sweep.due(now) {
            return;
        }
        let expired: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Waiting { deadline, .. } | Slot::Writing { deadline, .. } if *deadline <= now))
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            if let Some(Slot::Writing { client, out, .. }) = self.clients.get(key) {
                // The client stopped reading our response.
                if self.limits.debug {
                    log::warn(&format!(
                        "% Write timeout: {} took no response bytes for {:?} ({} sent), closing",
                        client.remote_addr,
                        self.timeouts.write,
                        out.sent()
                    ));
                }
                self.busy = self.busy.saturating_sub(1);
                self.close(key);
                continue;
            }
            let mut client = self.remove(key);
            if client.has_partial_request() {
                self.shared.metrics.count_status(408);
                client.stream.try_write(&error_response(408));
            }
        }
    }

    fn remove(&mut self, key: usize) -> Box<Client> {
        match self.clients.remove(key) {
            Slot::Waiting { mut client, .. } => {
                let _ = self.poll.registry().deregister(client.stream.source());
                client
            }
            Slot::Writing { mut client, .. } => {
                let _ = self.poll.registry().deregister(client.stream.source());
                client
            }
            Slot::Busy { .. } | Slot::Tunnel(_) | Slot::TunnelPeer { .. } => {
                unreachable!("remove() is for clients waiting on or writing to the reactor")
            }
        }
    }

    fn close(&mut self, key: usize) {
        drop(self.remove(key));
    }
}

impl Drop for Reactor {
    /// Connections handed back from now on have nobody to take them: they
    /// are dropped (closed) at once, as a send on a closed channel was.
    fn drop(&mut self) {
        self.shared.returns.close();
    }
}

/// A placeholder deadline, replaced by `set_deadline` right after.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400)
}

/// Set by the test hook `Native.__crash_reactor`: the reactor panics once it
/// has taken back the response of the request that set it, to test that the
/// process then exits (see `server.rs`).
pub(crate) static CRASH_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Signals belong to Ruby's threads: Ruby's handlers must never run on ours.
pub(crate) fn block_signals() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
}
