//! `Rustpuma::Native::Server`: the listeners, the reactor and the pool's
//! queue of one server process, as Ruby sees them.
//!
//! `new` only prepares (it is called in each worker after forking); `start`
//! spawns the reactor thread; pool threads, which Ruby creates, loop on
//! `next_request`. `stop` closes the listeners and lets in-flight requests
//! finish; when the last one is done the queue closes and `next_request`
//! returns nil to every pool thread.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use magnus::{Error, RArray, RHash, Ruby, TryConvert, Value};

use crate::metrics::PHASES;
use crate::reactor::{Command, Reactor, Shared};
use crate::ruby::error::Failure;
use crate::ruby::fatal::fatal;
use crate::ruby::fork::ProcessLocal;
use crate::ruby::options;
use crate::ruby::pool::{Pool, Wait};
use crate::ruby::request::Request;
use crate::socket::Listener;
use crate::tls::{self, TlsOptions};

/// How long a fork waits for each reactor to park before going ahead.
const FORK_PARK_WAIT: Duration = Duration::from_secs(1);

#[magnus::wrap(class = "Rustpuma::Native::Server", free_immediately, size)]
pub(crate) struct Server {
    // ProcessLocal: a forked child neither uses nor drops them (fork.rs).
    reactor: ProcessLocal<Mutex<Option<Reactor>>>,
    pool: ProcessLocal<Pool>,
    shared: ProcessLocal<Arc<Shared>>,
    /// `max_keep_alive`: requests served on one connection before it closes.
    max_keep_alive: Option<u64>,
    keep_alives: bool,
    /// How long a client may take no bytes while a pool thread writes.
    write_timeout: Duration,
    /// Bytes of a streamed body held for one client (`Config::stream_limit`).
    stream_limit: usize,
}

impl Server {
    /// `listeners`: an Array of `[fd, "tcp" | "unix"]`; the descriptors stay
    /// Ruby's (we duplicate them), so Ruby can still hand them to a child.
    pub(crate) fn new(ruby: &Ruby, listeners: RArray, options: RHash) -> Result<Self, Error> {
        let config = options::config(ruby, options)?;
        let mut natives = Vec::new();
        for entry in listeners.into_iter() {
            let entry = RArray::try_convert(entry)?;
            let fd: i32 = entry.entry(0)?;
            let kind: String = entry.entry(1)?;
            let tls: Option<RHash> = entry.entry(2)?;
            // SAFETY: `fd` is the fileno of a listening socket Ruby keeps
            // open for the whole call; we only duplicate it.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let owned: OwnedFd = borrowed.try_clone_to_owned().map_err(Failure::from)?;
            let listener = match kind.as_str() {
                "unix" => {
                    let std = std::os::unix::net::UnixListener::from(owned);
                    std.set_nonblocking(true).map_err(Failure::from)?;
                    Listener::Unix(mio::net::UnixListener::from_std(std))
                }
                _ => {
                    let std = std::net::TcpListener::from(owned);
                    std.set_nonblocking(true).map_err(Failure::from)?;
                    let listener = mio::net::TcpListener::from_std(std);
                    match tls {
                        Some(settings) => {
                            let config = tls::server_config(&tls_options(settings)?)
                                .map_err(|e| Failure::Argument(format!("ssl bind: {e}")))?;
                            Listener::Tls(listener, config)
                        }
                        None => Listener::Tcp(listener),
                    }
                }
            };
            natives.push(listener.tracked());
        }
        let (requests, producer) = crate::queue::Queue::new();
        let (reactor, shared) = Reactor::new(natives, producer, &config).map_err(Failure::from)?;
        Ok(Server {
            reactor: ProcessLocal::new(Mutex::new(Some(reactor))),
            pool: ProcessLocal::new(Pool::new(requests)),
            shared: ProcessLocal::new(shared),
            max_keep_alive: config.max_keep_alive,
            keep_alives: config.keep_alives,
            write_timeout: config.timeouts.write,
            stream_limit: config.stream_limit,
        })
    }

    /// Starts the reactor thread. Call after forking, never before.
    ///
    /// If the reactor panics or fails, the process logs why and exits with
    /// status 1: otherwise it would keep its listener (and, in a cluster,
    /// keep checking in) while serving nobody. The cluster master or the
    /// service manager then replaces it.
    pub(crate) fn start(rb_self: &Self) -> Result<bool, Error> {
        rb_self.shared.check()?;
        let Some(reactor) = rb_self.reactor.lock().unwrap().take() else {
            return Ok(false);
        };
        std::thread::Builder::new()
            .name("rustpuma-reactor".into())
            .spawn(move || {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reactor.run())) {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => {
                        fatal(&format!("! Reactor failed: {reason}; exiting (status 1)"))
                    }
                    Err(panic) => fatal(&format!(
                        "! Reactor thread panicked: {}; exiting (status 1)",
                        panic_message(&panic)
                    )),
                }
            })
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        Ok(true)
    }

    /// The next request, `false` when Ruby interrupted the wait, nil once the
    /// server has stopped and everything in flight is done.
    pub(crate) fn next_request(ruby: &Ruby, rb_self: &Self) -> Result<Value, Error> {
        use magnus::IntoValue;
        rb_self.pool.check()?;
        match rb_self.pool.wait() {
            Wait::Request(handoff) => {
                let served = handoff.client.served + 1;
                let last =
                    !rb_self.keep_alives || rb_self.max_keep_alive.is_some_and(|max| served >= max);
                Ok(Request::new(
                    handoff,
                    Arc::clone(&rb_self.shared),
                    last,
                    rb_self.write_timeout,
                    rb_self.stream_limit,
                )
                .into_value_with(ruby))
            }
            Wait::Interrupted => Ok(false.into_value_with(ruby)),
            Wait::Closed => Ok(ruby.qnil().into_value_with(ruby)),
        }
    }

    pub(crate) fn stop(rb_self: &Self) -> Result<(), Error> {
        rb_self.shared.check()?;
        rb_self.shared.send_command(Command::Stop);
        Ok(())
    }

    /// Called by the fork hook just before a fork: the reactor waits at a
    /// point where it holds no lock (see `Shared::pause`). False, with a
    /// warning line, if it did not get there within a second: the fork goes
    /// ahead anyway, and an operator chasing a hung child needs to know.
    /// Nothing to do in a forked child.
    pub(crate) fn pause_for_fork(rb_self: &Self) -> bool {
        if rb_self.shared.is_inherited() || rb_self.shared.pause(FORK_PARK_WAIT) {
            return true;
        }
        crate::log::warn(&format!(
            "! WARNING: reactor thread not parked after {}s; forking with it running (the child may inherit a lock it held)",
            FORK_PARK_WAIT.as_secs()
        ));
        false
    }

    /// After the fork, in the parent (or when it failed).
    pub(crate) fn resume_after_fork(rb_self: &Self) {
        if !rb_self.shared.is_inherited() {
            rb_self.shared.resume();
        }
    }

    pub(crate) fn backlog(rb_self: &Self) -> usize {
        rb_self.pool.backlog()
    }

    pub(crate) fn requests_count(rb_self: &Self) -> u64 {
        rb_self.shared.requests_count.load(Ordering::Relaxed)
    }

    /// This server's request metrics since it started, as a plain Hash
    /// (the shape is documented in docs/observability.md, "Data"):
    /// `{requests: {"1xx": n, …, hijacked: n}, phases: {queue: {buckets: [n, …], sum:
    /// seconds, count: n}, gvl_wait: …, app: …, write: …}, threads_busy:,
    /// backlog:, connections_open:, enabled:}`. Counters only grow, so a
    /// reader takes the difference of two reads for a window.
    pub(crate) fn metrics(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        rb_self.shared.check()?;
        let metrics = &rb_self.shared.metrics;
        let requests = ruby.hash_new();
        for (i, n) in metrics.statuses().into_iter().enumerate() {
            // 6xx-9xx are legal but rare: only listed once seen.
            if i < 5 || n > 0 {
                requests.aset(ruby.to_symbol(format!("{}xx", i + 1)), n)?;
            }
        }
        requests.aset(ruby.to_symbol("hijacked"), metrics.hijacked())?;
        let phases = ruby.hash_new();
        for phase in PHASES {
            let snapshot = metrics.phase(phase);
            let histogram = ruby.hash_new();
            histogram.aset(
                ruby.to_symbol("buckets"),
                ruby.ary_from_iter(snapshot.buckets.iter().copied()),
            )?;
            histogram.aset(ruby.to_symbol("sum"), snapshot.sum_ns as f64 / 1e9)?;
            histogram.aset(ruby.to_symbol("count"), snapshot.count())?;
            phases.aset(ruby.to_symbol(phase.name()), histogram)?;
        }
        let hash = ruby.hash_new();
        hash.aset(ruby.to_symbol("requests"), requests)?;
        hash.aset(ruby.to_symbol("phases"), phases)?;
        hash.aset(
            ruby.to_symbol("threads_busy"),
            metrics.threads_busy.load(Ordering::Relaxed),
        )?;
        hash.aset(ruby.to_symbol("backlog"), rb_self.pool.backlog())?;
        hash.aset(
            ruby.to_symbol("connections_open"),
            metrics.connections_open.0.load(Ordering::Relaxed),
        )?;
        hash.aset(ruby.to_symbol("enabled"), metrics.enabled())?;
        Ok(hash)
    }

    /// `[backlog_max, reactor_max]` since the last call, then both reset
    /// (Puma resets them whenever stats are read).
    pub(crate) fn take_maxima(rb_self: &Self) -> (usize, usize) {
        let shared = &rb_self.shared;
        (
            shared.backlog_max.swap(0, Ordering::Relaxed),
            shared.reactor_max.swap(0, Ordering::Relaxed),
        )
    }
}

/// `Native::PHASE_BUCKET_BOUNDS`: the histograms' bucket bounds in seconds
/// (inclusive); `buckets` in `metrics` has one more, for larger values.
pub(crate) fn bucket_bounds() -> Vec<f64> {
    crate::metrics::BUCKET_BOUNDS_NS
        .iter()
        .map(|&ns| ns as f64 / 1e9)
        .collect()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown cause")
}

impl Server {
    /// Test hook (only defined with `RUSTPUMA_TEST_HOOKS=1`): whether the
    /// reactor is parked for a fork; in a forked child, whether it was at
    /// the moment of the fork.
    pub(crate) fn is_parked(rb_self: &Self) -> bool {
        rb_self.shared.is_parked()
    }
}

/// Test hook (only defined with `RUSTPUMA_TEST_HOOKS=1`): makes this
/// process's reactor panic when the calling request's response comes back
/// to it (see `CRASH_REQUESTED`).
pub(crate) fn crash_reactor() {
    crate::reactor::CRASH_REQUESTED.store(true, Ordering::Relaxed);
}

/// `ssl_bind` settings from Ruby (String keys, as in a bind URI's query).
fn tls_options(settings: RHash) -> Result<TlsOptions, Error> {
    let get = |key: &str| -> Result<Option<String>, Error> { settings.lookup(key) };
    Ok(TlsOptions {
        cert: get("cert")?,
        key: get("key")?,
        cert_pem: get("cert_pem")?,
        key_pem: get("key_pem")?,
        ca: get("ca")?,
        verify_mode: get("verify_mode")?,
    })
}
