//! `Rustpuma::Native::Request`: one request while a pool thread serves it.
//!
//! Ruby calls the app and walks the body (that needs the GVL); everything
//! that touches the socket is here and runs with the GVL released. Bytes are
//! copied out of Ruby strings before the GVL is given up, so no Ruby object
//! is ever read by a thread that does not hold it.
//!
//! When Ruby is done it calls `finish`, which gives the connection back to
//! the reactor for keep-alive or closes it. A request dropped by the GC
//! without `finish` (its thread was killed) is released too.
//!
//! A streamed body (`each`) goes to the reactor with its first bytes: the
//! connection is handed over with a [`StreamQueue`] that `write_body` fills
//! and the reactor drains, and `finish` closes the queue with the
//! keep-alive decision.

use std::cell::{Cell, RefCell, RefMut};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnus::gc::Marker;
use magnus::value::{Opaque, ReprValue};
use magnus::{
    r_hash::ForEach, DataTypeFunctions, Error, RArray, RHash, RString, Ruby, TryConvert, Value,
};

use crate::body::Body;
use crate::budget::Reservation;
use crate::fds::Owned;
use crate::file_range::FileRange;
use crate::http::parser::Version;
use crate::http::response::{
    body_allowed, parse_content_length, push_content_length, push_header, push_status_line,
};
use crate::http::writing::{Encoder, Writing};
use crate::log;
use crate::metrics::{Phase, Timing, PHASES};
use crate::outgoing::{Flow, Outgoing, Piece};
use crate::reactor::{Handoff, Returned, Shared};
use crate::ruby::bytes;
use crate::ruby::error::Failure;
use crate::ruby::fork::ProcessLocal;
use crate::ruby::gvl::{without_gvl, without_gvl_retrying};
use crate::ruby::pins::{self, Pins, PIN_MIN};
use crate::stream_queue::{StreamQueue, StreamSource};

/// Small parts are joined behind the head, to leave in one write; files up
/// to this size are read into memory with the head.
const COALESCE_LIMIT: usize = 64 * 1024;
/// Array bodies from this size on lend their long strings to the reactor
/// (`pins.rs`) instead of copying them: an 8 MB copy per response cost more
/// than the write.
const ZERO_COPY_MIN: usize = 256 * 1024;
/// Bodies up to this size get room in the head's buffer, which they then
/// join (one buffer for a small response, no second allocation).
const HEAD_ROOM: u64 = 1024;

/// How `respond` frames what follows the head (`Const::RESPOND_*` in Ruby).
const MODE_NORMAL: u8 = 0;
/// Partial hijack and Rack 3 streaming bodies: the app owns the socket after
/// the head, so no framing is added and the connection closes afterwards.
const MODE_RAW: u8 = 1;

#[derive(Default)]
struct ResponseState {
    /// A complete response not yet written: `finish` hands it to the reactor.
    pending: Option<Outgoing>,
    /// The head of a streamed body, held back until the first body bytes (as
    /// Puma does): a body that fails before yielding anything can still be
    /// answered with a clean 500.
    unsent_head: Option<Vec<u8>>,
    /// Where the response stands; only `Done` lets the connection be kept.
    writing: Writing,
    /// Client, app and server all allow another request on this connection.
    keep_alive: bool,
    /// Something failed after the app returned: whatever is sent now, the
    /// connection closes after it.
    close_after: bool,
    broken: bool,
    hijacked: bool,
    /// The status of the response built last (`requests_total`).
    status: Option<u16>,
    /// A streamed body handed to the reactor with the connection: the rest
    /// of the body goes through it.
    stream: Option<Arc<StreamQueue>>,
    /// The request line and client address, kept for log lines once the
    /// connection went to the reactor with a stream.
    described: Option<(String, String)>,
}

/// A head ready to go out, and how its body is framed.
struct Head {
    bytes: Vec<u8>,
    writing: Writing,
    keep_alive: bool,
    version: Version,
    /// A `101` handing the connection to another protocol: the app's own
    /// `Connection` header (`Upgrade`) is sent instead of ours.
    upgrade: Option<(Vec<u8>, Vec<u8>)>,
}

impl Head {
    /// Adds the `Connection` line and the blank line that ends the head.
    fn end(&mut self, keep_alive: bool) {
        if let Some((name, value)) = &self.upgrade {
            push_header(&mut self.bytes, name, value);
        } else {
            match (self.version, keep_alive) {
                (Version::Http11, false) => self.bytes.extend_from_slice(b"Connection: close\r\n"),
                (Version::Http10, true) => {
                    self.bytes.extend_from_slice(b"Connection: Keep-Alive\r\n")
                } // Puma's spelling
                _ => {}
            }
        }
        self.bytes.extend_from_slice(b"\r\n");
    }
}

#[derive(magnus::TypedData)]
#[magnus(class = "Rustpuma::Native::Request", free_immediately, size, mark)]
pub(crate) struct Request {
    /// The env `fill_env` filled: the request is the app's `rack.hijack`
    /// (its `call` is Ruby, in env_callables.rb), which sets
    /// `rack.hijack_io` there. Marked for the GC (it is the app's env, also
    /// held by the handler while the request runs).
    env: Cell<Option<Opaque<RHash>>>,
    // ProcessLocal: a forked child neither uses nor drops them (fork.rs).
    handoff: ProcessLocal<RefCell<Option<Handoff>>>,
    state: RefCell<ResponseState>,
    shared: ProcessLocal<Arc<Shared>>,
    /// `max_keep_alive` reached or keep-alive disabled for this server.
    no_more_requests: bool,
    /// How long the client may take no bytes while this thread writes.
    write_timeout: Duration,
    /// This request's phases so far (a copy of the client's, kept after
    /// `finish` for `timings`).
    timing: Cell<Timing>,
    /// Still counted in `threads_busy` (until `finish`, or the GC).
    counted_busy: Cell<bool>,
    /// Bytes of a streamed body held for the client before this thread
    /// waits (`streaming_body_buffer_limit`).
    stream_limit: usize,
}

fn io_error(message: &str) -> Error {
    Failure::Io(message.to_string()).into()
}

/// Another Ruby thread is inside this request (it released the GVL while
/// writing): an app that shares `env` across threads gets an IOError, never
/// a panic.
fn busy() -> Error {
    io_error("request is in use by another thread")
}

impl DataTypeFunctions for Request {
    fn mark(&self, marker: &Marker) {
        if let Some(env) = self.env.get() {
            marker.mark(env);
        }
    }
}

impl Request {
    pub(crate) fn new(
        handoff: Handoff,
        shared: Arc<Shared>,
        no_more_requests: bool,
        write_timeout: Duration,
        stream_limit: usize,
    ) -> Self {
        // This thread holds the GVL again: the queue and GVL phases are over.
        let mut timing = handoff.client.timing;
        if timing.resumed.is_none() {
            timing.resumed = timing.stamp();
        }
        let metrics = &shared.metrics;
        metrics.record(Phase::Queue, &timing);
        metrics.record(Phase::GvlWait, &timing);
        let counted_busy = metrics.enabled();
        if counted_busy {
            metrics
                .threads_busy
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Request {
            env: Cell::new(None),
            handoff: ProcessLocal::new(RefCell::new(Some(handoff))),
            state: RefCell::default(),
            shared: ProcessLocal::new(shared),
            no_more_requests,
            write_timeout,
            timing: Cell::new(timing),
            counted_busy: Cell::new(counted_busy),
            stream_limit,
        }
    }

    /// The app's response is in hand (or it took the socket): the `app`
    /// phase ends, once.
    fn app_done(&self) {
        let mut timing = self.timing.get();
        if timing.app_end.is_none() && timing.app_start.is_some() {
            timing.app_end = timing.stamp();
            self.shared.metrics.record(Phase::App, &timing);
            self.timing.set(timing);
        }
    }

    /// Around a write of the response by this thread: the first stamps the
    /// start of the `write` phase, each one its end so far. Bytes written
    /// while the app still runs (early hints) are not the response.
    fn wrote(&self, before: bool) {
        let mut timing = self.timing.get();
        if timing.app_end.is_none() || (before && timing.write_start.is_some()) {
            return;
        }
        let now = timing.stamp();
        if before {
            timing.write_start = now;
        } else {
            timing.write_end = now;
        }
        self.timing.set(timing);
    }

    /// Leaves `threads_busy`; true the first time only (metrics on).
    fn not_busy(&self) -> bool {
        let was = self.counted_busy.replace(false);
        if was {
            self.shared
                .metrics
                .threads_busy
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        was
    }

    /// `{queue:, gvl_wait:, app:, write:}` in seconds, nil for a phase that
    /// is not over (or not known to this thread: the reactor writes most
    /// responses after `finish`), or when metrics are off.
    pub(crate) fn timings(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let timing = rb_self.timing.get();
        let hash = ruby.hash_new();
        for phase in PHASES {
            hash.aset(
                ruby.to_symbol(phase.name()),
                timing.phase(phase).map(|d| d.as_secs_f64()),
            )?;
        }
        Ok(hash)
    }

    fn handoff_mut(&self) -> Result<RefMut<'_, Option<Handoff>>, Error> {
        self.handoff.check()?;
        self.handoff.try_borrow_mut().map_err(|_| busy())
    }

    fn state_mut(&self) -> Result<RefMut<'_, ResponseState>, Error> {
        self.state.try_borrow_mut().map_err(|_| busy())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Handoff) -> T) -> Result<T, Error> {
        let mut slot = self.handoff_mut()?;
        match slot.as_mut() {
            Some(handoff) => Ok(f(handoff)),
            None => Err(io_error("request already finished")),
        }
    }

    /// Adds the CGI variables and headers to `env` and returns the body for
    /// `rack.input`: nil when there is none, a binary String when it is in
    /// memory, the descriptor of a temp file for a body spilled to disk (a
    /// new one, positioned at the start, for Ruby to wrap in a File), or
    /// false when the reactor rejected the request (see `rejection`). One
    /// call for what every request needs: each native call costs.
    pub(crate) fn fill_env(ruby: &Ruby, rb_self: &Self, env: RHash) -> Result<Value, Error> {
        rb_self.handoff.check()?;
        let slot = rb_self.handoff.try_borrow().map_err(|_| busy())?;
        let handoff = slot
            .as_ref()
            .ok_or_else(|| io_error("request already finished"))?;
        let client = &handoff.client;
        match client.request.as_ref() {
            Some((head, body)) => {
                let tls = client
                    .stream
                    .is_tls()
                    .then(|| client.stream.peer_cert_pem());
                crate::ruby::env::fill(ruby, env, head, &client.remote_addr, body.len(), tls)?
            }
            // A rejected request: only what is known about the client.
            None => env.aset("REMOTE_ADDR", client.remote_addr.as_str())?,
        }
        let input = match &client.request {
            _ if client.rejection.is_some() => ruby.qfalse().as_value(),
            Some((_, Body::Memory(bytes))) if !bytes.is_empty() => {
                ruby.str_from_slice(bytes.as_slice()).as_value()
            }
            Some((_, Body::File { file, .. })) => {
                let fd = file.try_clone().map_err(Failure::from)?.into_raw_fd();
                ruby.integer_from_i64(fd.into()).as_value()
            }
            _ => ruby.qnil().as_value(),
        };
        rb_self.env.set(Some(env.into()));
        // The app is called next.
        let mut timing = rb_self.timing.get();
        if timing.app_start.is_none() {
            timing.app_start = timing.stamp();
            rb_self.timing.set(timing);
        }
        Ok(input)
    }

    /// The env `fill_env` filled (for `rack.hijack`'s `call`).
    pub(crate) fn hijack_env(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        match rb_self.env.get() {
            Some(env) => Ok(ruby.get_inner(env)),
            None => Err(io_error("request has no env")),
        }
    }

    /// `[status, reason]` when the reactor rejected this request and Ruby's
    /// `lowlevel_error_handler` is to answer it; nil for a normal request.
    pub(crate) fn rejection(rb_self: &Self) -> Result<Option<(u16, String)>, Error> {
        rb_self.with(|h| {
            h.client
                .rejection
                .as_ref()
                .map(|r| (r.status, r.reason.clone()))
        })
    }

    pub(crate) fn remote_addr(rb_self: &Self) -> Result<String, Error> {
        if let Some((_, addr)) = &rb_self.state_mut()?.described {
            return Ok(addr.clone());
        }
        rb_self.with(|h| h.client.remote_addr.clone())
    }

    /// "GET /path HTTP/1.1", for log lines.
    pub(crate) fn request_line(rb_self: &Self) -> Result<String, Error> {
        if let Some((line, _)) = &rb_self.state_mut()?.described {
            return Ok(line.clone());
        }
        rb_self.with(|h| describe_request(h))
    }

    /// Builds the status line and headers. App framing headers are
    /// normalised here: one `Content-Length` made of digits (any other value
    /// is dropped and the length taken from `known_len`), the app's
    /// `Transfer-Encoding` passed through with its body (as Puma does), and
    /// `Connection` decided by us except on a `101`. The `Connection` line
    /// and the final blank line are added by [`Head::end`] once the caller
    /// knows whether the body completes.
    fn head(
        &self,
        status: u16,
        headers: RHash,
        known_len: Option<u64>,
        mode: u8,
    ) -> Result<Head, Error> {
        let (version, is_head, wants_keep_alive) =
            self.with(|h| match h.client.request.as_ref() {
                Some((head, _)) => (head.version, head.method == "HEAD", head.keep_alive),
                // A rejected request is answered on HTTP/1.1 and closed.
                None => (Version::Http11, false, false),
            })?;
        let close_after = {
            let state = self.state_mut()?;
            if !matches!(state.writing, Writing::Init) {
                return Err(io_error("response already started"));
            }
            state.close_after
        };
        let room = known_len.filter(|&n| n <= HEAD_ROOM).unwrap_or(0) as usize;
        let mut bytes = self.with(|h| h.client.spare.take_bytes())?;
        bytes.reserve(256 + room);
        push_status_line(&mut bytes, version, status);

        let mut app_length: Option<u64> = None;
        let mut lengths = 0;
        let mut app_te: Option<Vec<u8>> = None;
        let mut app_connection: Option<(Vec<u8>, Vec<u8>)> = None;
        {
            let mut take = |name: &[u8], value: &[u8]| {
                if name.eq_ignore_ascii_case(b"connection") {
                    app_connection = Some((name.to_vec(), value.to_vec()));
                } else if name.eq_ignore_ascii_case(b"content-length") {
                    // Two spellings of the key are two values: use neither.
                    lengths += 1;
                    app_length = if lengths == 1 {
                        parse_content_length(value)
                    } else {
                        None
                    };
                } else {
                    if name.eq_ignore_ascii_case(b"transfer-encoding") {
                        app_te = Some(value.to_vec());
                    }
                    push_header(&mut bytes, name, value);
                }
            };
            // Strings are read in place; other values are converted first
            // (that runs Ruby code, so before any bytes are borrowed).
            headers.foreach(|key: Value, value: Value| {
                let name = RString::try_convert(key)?;
                match RString::from_value(value) {
                    Some(value) => bytes::peek_pair(name, value, &mut take),
                    None => {
                        let value = header_value(value)?;
                        bytes::peek(name, |name| take(name, &value));
                    }
                }
                Ok(ForEach::Continue)
            })?;
        }

        let app_close = app_connection
            .as_ref()
            .is_some_and(|(_, v)| v.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")));
        let mut keep_alive = wants_keep_alive
            && !app_close
            && !close_after
            && !self.no_more_requests
            && !self.shared.stopping();
        let mut upgrade = None;
        let writing = if mode == MODE_RAW {
            // The app writes the rest itself and the connection ends with it.
            keep_alive = false;
            if let Some(n) = app_length {
                push_content_length(&mut bytes, n);
            }
            if status == 101 {
                upgrade = app_connection;
            }
            Writing::Closed
        } else if is_head || !body_allowed(status) {
            // No body on the wire; a length says what a GET would carry
            // (never on 1xx and 204, which cannot have one).
            let len = app_length.or(if is_head { known_len } else { None });
            if let (Some(n), true) = (len, status >= 200 && status != 204) {
                push_content_length(&mut bytes, n);
            }
            Writing::start(Encoder::Discard)
        } else if let Some(te) = app_te {
            // The app encoded the body itself (Puma sends it as it is, and so
            // do we); a length next to it is dropped (RFC 9112 §6.3).
            if te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Writing::start(Encoder::AppChunked(Default::default()))
            } else {
                keep_alive = false;
                Writing::start(Encoder::CloseDelimited)
            }
        } else if let Some(n) = app_length.or(known_len) {
            push_content_length(&mut bytes, n);
            Writing::start(Encoder::Length(n))
        } else if version == Version::Http11 {
            bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            Writing::start(Encoder::Chunked)
        } else {
            // An HTTP/1.0 body of unknown length ends when we close.
            keep_alive = false;
            Writing::start(Encoder::CloseDelimited)
        };
        self.state_mut()?.status = Some(status);
        Ok(Head {
            bytes,
            writing,
            keep_alive,
            version,
            upgrade,
        })
    }

    /// Writes the status line and headers, and the body when `parts` (an
    /// Array of Strings) is given. With `parts` nil the body follows through
    /// `write_body`, chunked on HTTP/1.1 when its length is unknown.
    /// Returns false when the client is gone.
    pub(crate) fn respond(
        ruby: &Ruby,
        rb_self: &Self,
        status: u16,
        headers: RHash,
        parts: Option<RArray>,
        mode: u8,
    ) -> Result<bool, Error> {
        rb_self.app_done();
        let Some(parts) = parts else {
            let mut head = rb_self.head(status, headers, None, mode)?;
            let keep_alive = head.keep_alive;
            head.end(keep_alive);
            let discard = head.writing.discards();
            let mut state = rb_self.state_mut()?;
            state.writing = head.writing;
            state.keep_alive = keep_alive;
            if discard {
                // Nothing but the head goes out: the reactor writes it after
                // `finish`, once the body was walked.
                state.pending = Some(Outgoing::bytes(vec![head.bytes]));
                return Ok(true);
            }
            if mode != MODE_RAW {
                state.unsent_head = Some(head.bytes);
                return Ok(true);
            }
            drop(state);
            // The app takes the socket next: the head must be out first.
            return rb_self.write_pieces(&[&head.bytes]);
        };
        // Every part must be a String: anything else is an app error, raised
        // before anything is sent (so it becomes a 500). Parts are read from
        // `parts` by index each time, never kept in a Rust collection: the
        // GC cannot see one, and compaction (`GC.auto_compact`) may move a
        // string during any allocation made in between.
        let part = |i: usize| -> Result<RString, Error> {
            let value: Value = parts.entry(i as isize)?;
            RString::from_value(value).ok_or_else(|| {
                let class = value.class().inspect();
                Failure::Type(format!("body part is a {class}, not a String")).into()
            })
        };
        let mut total = 0;
        for i in 0..parts.len() {
            total += part(i)?.len();
        }
        let mut head = rb_self.head(status, headers, Some(total as u64), mode)?;
        // Large bodies lend their long strings to the reactor instead of
        // copying them (`pins.rs`); small ones are cheaper to copy.
        let lend = total >= ZERO_COPY_MIN && !head.writing.discards();
        let mut pins: Option<Pins> = None;
        let mut pieces: Vec<Piece> = rb_self.with(|h| h.client.spare.take_pieces())?;
        let push = |pieces: &mut Vec<Piece>, bytes: &[u8]| {
            if bytes.is_empty() {
                return;
            }
            match pieces.last_mut() {
                Some(Piece::Owned(last)) if last.len() + bytes.len() <= COALESCE_LIMIT => {
                    last.extend_from_slice(bytes)
                }
                _ => pieces.push(Piece::Owned(bytes.to_vec())),
            }
        };
        for i in 0..parts.len() {
            let s = part(i)?;
            let lent = if lend && s.len() >= PIN_MIN {
                if pins.is_none() {
                    pins = Some(Pins::new(ruby)?);
                }
                pins.as_ref().map(|p| p.lend(s)).transpose()?.flatten()
            } else {
                None
            };
            // SAFETY: read while this thread holds the GVL, after the last
            // Ruby allocation for this part (`lend`), and copied or framed
            // before anything can allocate another.
            let bytes = unsafe { s.as_slice() };
            let frame = head.writing.frame(bytes);
            push(&mut pieces, &frame.prefix);
            match lent {
                Some(buf) if frame.take > 0 => pieces.push(Piece::Lent(buf.take(frame.take))),
                _ => push(&mut pieces, &bytes[..frame.take]),
            }
            push(&mut pieces, frame.suffix);
        }
        let tail = head.writing.finish();
        push(&mut pieces, tail);

        // The whole body is known: a length that did not match it already
        // closed the response, and the head can say so.
        let keep_alive = head.keep_alive && head.writing.is_done();
        head.end(keep_alive);
        match pieces.first_mut() {
            Some(Piece::Owned(first)) if head.bytes.len() + first.len() <= COALESCE_LIMIT => {
                // Into the head's buffer, which has room for a small body.
                head.bytes.extend_from_slice(first);
                *first = std::mem::take(&mut head.bytes);
            }
            _ => pieces.insert(0, Piece::Owned(std::mem::take(&mut head.bytes))),
        }
        let mut state = rb_self.state_mut()?;
        state.writing = head.writing;
        state.keep_alive = keep_alive;
        // The reactor writes it after `finish`, and this thread keeps the
        // GVL for the next request.
        let mut out = rb_self.with(|h| Outgoing::reusing(&mut h.client.spare))?;
        out.push_pieces(pieces);
        state.pending = Some(out);
        Ok(true)
    }

    /// Sends a file as the body (`to_path` bodies). The file is opened before
    /// the head goes out, so a file that cannot be opened is an app error
    /// (500). The length is the file's size unless the app gave a usable
    /// one; a file that turns out shorter or longer than that closes the
    /// connection. Small files are read into memory with the head; larger
    /// ones are handed to the reactor open (see [`FileRange`]): this thread
    /// is free at once, however slowly the client reads.
    pub(crate) fn respond_file(
        _ruby: &Ruby,
        rb_self: &Self,
        status: u16,
        headers: RHash,
        path: String,
    ) -> Result<bool, Error> {
        rb_self.app_done();
        let file_error = |e: io::Error| Failure::Io(format!("{path}: {e}"));
        let mut file = Owned::new(File::open(&path).map_err(file_error)?);
        let size = file.metadata().map_err(file_error)?.len();
        let mut head = rb_self.head(status, headers, Some(size), MODE_NORMAL)?;
        if head.writing.discards() || size <= COALESCE_LIMIT as u64 {
            let mut body = Vec::new();
            if !head.writing.discards() {
                // One byte more than expected tells a file that grew.
                (&mut *file)
                    .take(size + 1)
                    .read_to_end(&mut body)
                    .map_err(file_error)?;
            }
            let mut out = Vec::new();
            head.writing.encode(&body, &mut out);
            out.extend_from_slice(head.writing.finish());
            let keep_alive = head.keep_alive && head.writing.is_done();
            head.end(keep_alive);
            head.bytes.extend_from_slice(&out);
            let mut state = rb_self.state_mut()?;
            state.writing = head.writing;
            state.keep_alive = keep_alive;
            state.pending = Some(Outgoing::bytes(vec![head.bytes]));
            return Ok(true);
        }
        let (len, fits) = match head.writing {
            // An app length that is not the file's size is known to fail:
            // the range is that length, and the head says close.
            Writing::Body(Encoder::Length(n)) => (n, n == size),
            // The app's own Transfer-Encoding: the file goes as it is, and
            // the connection closes after it.
            _ => (size, false),
        };
        let keep_alive = head.keep_alive && fits;
        head.end(keep_alive);
        let mut out = Outgoing::bytes(vec![head.bytes]);
        out.push_file(FileRange::new(file, 0, len));
        let mut state = rb_self.state_mut()?;
        // Complete as far as this thread can tell: a file that turns out
        // shorter fails the reactor's write, which closes the connection.
        state.writing = if fits { Writing::Done } else { Writing::Closed };
        state.keep_alive = keep_alive;
        state.pending = Some(out);
        Ok(true)
    }

    /// Writes a response `respond` kept for the reactor now, from this thread
    /// (without the GVL): for `after_reply` callbacks, which run after the
    /// response is on the wire.
    pub(crate) fn flush(rb_self: &Self) -> Result<bool, Error> {
        let (pending, queue) = {
            let mut state = rb_self.state_mut()?;
            (state.pending.take(), state.stream.clone())
        };
        if let Some(queue) = queue {
            // A streamed body: wait until the reactor has written it all.
            let ruby = Ruby::get().map_err(|e| io_error(&e.to_string()))?;
            let timeout = rb_self.write_timeout;
            let result = without_gvl_retrying(&ruby, |interrupt| {
                queue.wait_drained(timeout, interrupt.flag())
            })?;
            return Ok(matches!(result, Some(Ok(()))));
        }
        let Some(mut out) = pending else {
            return Ok(true);
        };
        let mut slot = rb_self.handoff_mut()?;
        let Some(handoff) = slot.as_mut() else {
            return Ok(false);
        };
        let stream = &mut handoff.client.stream;
        let ruby = Ruby::get().map_err(|e| io_error(&e.to_string()))?;
        let write_timeout = rb_self.write_timeout;
        rb_self.wrote(true);
        let result = without_gvl_retrying(&ruby, |interrupt| {
            out.write_all(stream, write_timeout, interrupt.flag())
        });
        rb_self.wrote(false);
        drop(slot);
        let ok = matches!(result, Ok(Some(Ok(()))));
        let mut state = rb_self.state_mut()?;
        if !ok {
            state.broken = true;
            state.writing.abort();
        }
        if !out.keep_alive {
            state.keep_alive = false;
        }
        drop(state);
        // An interrupt (Thread#kill, Thread#raise) goes on to Ruby.
        result?;
        Ok(ok)
    }

    /// Queues one piece of a streamed body (chunk-encoded when needed) for
    /// the reactor to write; the first bytes hand the connection over (see
    /// `start_stream`). This thread keeps the GVL unless the queue is full.
    /// Returns false when no more body is wanted (client gone, declared
    /// length used up, or no body on the wire), so the iteration can stop.
    pub(crate) fn write_body(rb_self: &Self, data: RString) -> Result<bool, Error> {
        let mut out = Vec::new();
        let (head, queue) = {
            let mut state = rb_self.state_mut()?;
            if state.writing.discards() || state.broken {
                // HEAD, 204…: no need to walk the rest (Puma walks none).
                return Ok(false);
            }
            // SAFETY: this thread holds the GVL, and `encode` copies the
            // bytes into `out` before anything can run Ruby code or
            // allocate a Ruby object.
            let bytes = unsafe { data.as_slice() };
            state.writing.encode(bytes, &mut out);
            if out.is_empty() {
                return Ok(state.writing.in_body());
            }
            (state.unsent_head.take(), state.stream.clone())
        };
        let ok = match queue {
            Some(queue) => rb_self.push_stream(&queue, out)?,
            None => {
                let mut first = head.unwrap_or_default();
                first.extend_from_slice(&out);
                rb_self.start_stream(first)?
            }
        };
        Ok(ok && rb_self.state_mut()?.writing.in_body())
    }

    /// Ends a streamed body (the last chunk when chunked). Returns false when
    /// the response could not be completed. A body that yielded nothing
    /// goes out whole through the reactor at `finish`.
    pub(crate) fn finish_body(rb_self: &Self) -> Result<bool, Error> {
        let (tail, queue) = {
            let mut state = rb_self.state_mut()?;
            let head = state.unsent_head.take();
            let tail = state.writing.finish();
            if let Some(mut head) = head {
                head.extend_from_slice(tail);
                state.pending = Some(Outgoing::bytes(vec![head]));
            }
            (tail, state.stream.clone())
        };
        let ok = match queue {
            Some(queue) if !tail.is_empty() => rb_self.push_stream(&queue, tail.to_vec())?,
            _ => true,
        };
        Ok(ok && rb_self.state_mut()?.writing.is_done())
    }

    /// Hands the connection to the reactor with a queue holding `first`
    /// (the head and the first body bytes): from now on the reactor writes
    /// this response and `write_body` only fills the queue.
    fn start_stream(&self, first: Vec<u8>) -> Result<bool, Error> {
        let addr = self.with(|h| h.client.remote_addr.clone())?;
        let Some(reservation) = self.reserve_stream(first.len(), &addr)? else {
            return Ok(false);
        };
        let Some(handoff) = self.handoff_mut()?.take() else {
            return Ok(false);
        };
        let token = handoff.token;
        let shared = Arc::clone(&self.shared);
        let queue = Arc::new(StreamQueue::new(self.stream_limit, move || {
            shared.give_back(Returned::StreamReady(token))
        }));
        // An empty queue takes any first push, however large.
        let _ = queue.push(first, reservation);
        {
            let mut state = self.state_mut()?;
            state.stream = Some(Arc::clone(&queue));
            state.described = Some((describe_request(&handoff), addr));
        }
        // Kept alive or not as the stream's end says.
        let mut out = Outgoing::new();
        out.push_stream(StreamSource::new(queue));
        self.shared.give_back(Returned::Respond(handoff, out));
        Ok(true)
    }

    /// Queues `bytes` of a streamed body; when the queue is full, waits
    /// without the GVL for the client to read, then for the reactor's
    /// budget if that is spent. False when the client is gone or took
    /// nothing for the write timeout: the response is broken.
    fn push_stream(&self, queue: &StreamQueue, bytes: Vec<u8>) -> Result<bool, Error> {
        let len = bytes.len();
        loop {
            match queue.has_room(len) {
                Ok(true) => break,
                Ok(false) => {}
                Err(_) => return self.stream_broken(),
            }
            let ruby = Ruby::get().map_err(|e| io_error(&e.to_string()))?;
            let timeout = self.write_timeout;
            match without_gvl_retrying(&ruby, |interrupt| {
                queue.wait_for_room(len, timeout, interrupt.flag())
            }) {
                Ok(Some(Ok(()))) => break,
                // Woken only so that Ruby handles an interrupt: a kill or a
                // raise comes out of the check, anything else waits on.
                Ok(Some(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Err(e) = ruby.thread_check_ints() {
                        self.stream_broken()?;
                        return Err(e);
                    }
                }
                Ok(_) => return self.stream_broken(),
                Err(e) => {
                    self.stream_broken()?;
                    return Err(e);
                }
            }
        }
        let reservation = match self.shared.budget.try_reserve(len) {
            Some(reservation) => reservation,
            None => {
                let addr = self.state_mut()?.described.clone().unwrap_or_default().1;
                match self.reserve_stream(len, &addr)? {
                    Some(reservation) => reservation,
                    None => return Ok(false),
                }
            }
        };
        match queue.push(bytes, reservation) {
            Ok(()) => Ok(true),
            Err(_) => self.stream_broken(),
        }
    }

    /// The reactor's budget for `len` more bytes of a streamed body (see
    /// `reserve`); None, with the response broken, when it stayed spent for
    /// the write timeout.
    fn reserve_stream(&self, len: usize, addr: &str) -> Result<Option<Reservation>, Error> {
        let ruby = Ruby::get().map_err(|e| io_error(&e.to_string()))?;
        match self.reserve(&ruby, len, addr) {
            Ok(Ok(reservation)) => Ok(Some(reservation)),
            Ok(Err(e)) => {
                log::warn(&format!(
                    "! Ending the streamed response to {addr}: {e} ({} bytes) for {:?}",
                    self.shared.budget.limit(),
                    self.write_timeout
                ));
                self.stream_broken()?;
                Ok(None)
            }
            Err(interrupt) => {
                self.stream_broken()?;
                Err(interrupt)
            }
        }
    }

    /// The client is gone or stopped reading: the response cannot complete.
    fn stream_broken(&self) -> Result<bool, Error> {
        let mut state = self.state_mut()?;
        state.broken = true;
        state.writing.abort();
        Ok(false)
    }

    /// Something failed after the app returned (a body raising, a file that
    /// cannot be read): the response cannot be trusted, so the connection
    /// closes after whatever is sent now.
    pub(crate) fn abort(rb_self: &Self) -> Result<(), Error> {
        let mut state = rb_self.state_mut()?;
        state.close_after = true;
        if state.unsent_head.take().is_some() {
            // Nothing went out yet: a 500 can still take this response's place.
            state.writing = Writing::Init;
        } else if state.writing.in_body() {
            state.writing.abort();
        }
        Ok(())
    }

    /// `103 Early Hints` with the given headers, before the real response.
    pub(crate) fn early_hints(rb_self: &Self, headers: RHash) -> Result<bool, Error> {
        let version = rb_self.with(|h| h.client.request.as_ref().map(|(head, _)| head.version))?;
        let mut out = Vec::with_capacity(128);
        push_status_line(&mut out, version.unwrap_or(Version::Http11), 103);
        headers.foreach(|key: RString, value: Value| {
            let name = bytes::copy(key);
            push_header(&mut out, &name, &header_value(value)?);
            Ok(ForEach::Continue)
        })?;
        out.extend_from_slice(b"\r\n");
        rb_self.write_pieces(&[&out])
    }

    /// Full hijack: the app takes the socket. Returns a new descriptor for
    /// Ruby to wrap; the reactor forgets the connection.
    pub(crate) fn hijack(rb_self: &Self) -> Result<i32, Error> {
        rb_self.app_done();
        // Bytes the client sent after the request (a first websocket frame)
        // are already in our buffer; the relay delivers them, a raw
        // descriptor could not.
        if rb_self.with(|h| h.client.stream.is_tls() || h.client.has_buffered())? {
            return Self::hijack_relayed(rb_self);
        }
        let fd = rb_self.with(|h| {
            let _ = rb_self.shared.registry.deregister(h.client.stream.source());
            h.client.stream.fd().try_clone_to_owned()
        })?;
        let fd = fd.map_err(Failure::from)?;
        let mut state = rb_self.state_mut()?;
        state.hijacked = true;
        state.keep_alive = false;
        Ok(fd.into_raw_fd())
    }

    /// A TLS connection cannot be handed to Ruby as a descriptor: the app
    /// gets one end of a socket pair and the reactor relays to the TLS
    /// stream (tunnel.rs). The relay starts now, so an app that writes from
    /// inside the hijack call (partial hijack) is never stuck.
    fn hijack_relayed(rb_self: &Self) -> Result<i32, Error> {
        let (app_end, our_end) = std::os::unix::net::UnixStream::pair().map_err(Failure::from)?;
        our_end.set_nonblocking(true).map_err(Failure::from)?;
        let mut state = rb_self.state_mut()?;
        let handoff = rb_self
            .handoff_mut()?
            .take()
            .ok_or_else(|| io_error("request already finished"))?;
        rb_self.shared.give_back(Returned::Tunnel(
            handoff,
            Owned::new(mio::net::UnixStream::from_std(our_end)),
        ));
        state.hijacked = true;
        state.keep_alive = false;
        Ok(app_end.into_raw_fd())
    }

    pub(crate) fn is_hijacked(rb_self: &Self) -> Result<bool, Error> {
        Ok(rb_self.state_mut()?.hijacked)
    }

    /// Whether the response is committed: after this, an error can no
    /// longer be answered with a 500, only by closing the connection.
    pub(crate) fn is_head_sent(rb_self: &Self) -> Result<bool, Error> {
        Ok(!matches!(rb_self.state_mut()?.writing, Writing::Init))
    }

    /// Ends the exchange: the connection goes back to the reactor when the
    /// response completed and can be kept, else it is closed (or left to the
    /// app after a hijack).
    pub(crate) fn finish(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        pins::release_finished(ruby)?;
        rb_self.app_done();
        let (keep, status, hijacked, stream, pending) = {
            let mut state = rb_self.state_mut()?;
            let keep = state.keep_alive
                && state.writing.is_done()
                && !state.close_after
                && !state.broken
                && !state.hijacked
                && !rb_self.shared.stopping();
            (
                keep,
                state.status,
                state.hijacked,
                state.stream.take(),
                state.pending.take(),
            )
        };
        if rb_self.not_busy() {
            let metrics = &rb_self.shared.metrics;
            match status {
                Some(status) => metrics.count_status(status),
                // A full hijack: the app answers on its own (a 101, often).
                None if hijacked => metrics.count_hijacked(),
                None => {}
            }
            // When this thread wrote the response itself, its last byte is out.
            metrics.record(Phase::Write, &rb_self.timing.get());
        }
        if let Some(queue) = stream {
            // The reactor has the connection: it writes what is queued, then
            // keeps or closes it.
            queue.close(keep);
            return Ok(());
        }
        let Some(mut handoff) = rb_self.handoff_mut()?.take() else {
            return Ok(());
        };
        if let Some(mut out) = pending {
            out.keep_alive &= keep;
            return rb_self.hand_over(ruby, handoff, out);
        } else if keep {
            handoff.client.reset_for_next_request();
            rb_self.shared.give_back(Returned::KeepAlive(handoff));
        } else {
            // Dropping the client closes our descriptor; after a hijack the
            // app's duplicate keeps the connection open.
            rb_self.shared.give_back(Returned::Released(handoff.token));
        }
        Ok(())
    }

    /// Gives a complete response to the reactor to write. A large one gets
    /// one pass from this thread first, without the GVL and without
    /// waiting: what the socket takes now is copied by this thread, in
    /// parallel with the reactor (one thread writing every large body was
    /// measured slower), and only the rest waits on epoll. So does any
    /// response while the budget is full: a client that reads at once
    /// costs the reactor no memory and need not wait behind slow readers.
    /// What is left must fit the budget (see `reserve`).
    fn hand_over(&self, ruby: &Ruby, mut handoff: Handoff, mut out: Outgoing) -> Result<(), Error> {
        let token = handoff.token;
        if out.in_memory() >= ZERO_COPY_MIN
            || out.has_file()
            || !self.shared.budget.fits(out.budgeted())
        {
            let timing = &mut handoff.client.timing;
            timing.write_start = timing.stamp();
            let stream = &mut handoff.client.stream;
            let flow = without_gvl(|_| out.write_to(stream));
            if let Some(Ok(Flow::Done)) = flow {
                let timing = &mut handoff.client.timing;
                timing.write_end = timing.stamp();
                self.shared.metrics.record(Phase::Write, timing);
            }
            match flow {
                Some(Ok(Flow::Done)) if out.keep_alive => {
                    handoff.client.reset_for_next_request();
                    self.shared.give_back(Returned::KeepAlive(handoff));
                    return Ok(());
                }
                Some(Ok(Flow::Done)) | Some(Err(_)) => {
                    drop(handoff);
                    self.shared.give_back(Returned::Released(token));
                    return Ok(());
                }
                // The client's window is full, or Ruby has an interrupt
                // pending: the reactor goes on from here. (A complete
                // response has no stream to wait for.)
                Some(Ok(Flow::SocketFull | Flow::Waiting)) | None => {}
            }
        }
        match self.reserve(ruby, out.budgeted(), &handoff.client.remote_addr) {
            Ok(Ok(reservation)) => {
                out.hold(reservation);
                self.shared.give_back(Returned::Respond(handoff, out));
            }
            Ok(Err(e)) => {
                log::warn(&format!(
                    "! Dropping the response to {}: {e} ({} bytes) for {:?}",
                    handoff.client.remote_addr,
                    self.shared.budget.limit(),
                    self.write_timeout
                ));
                drop(handoff);
                self.shared.give_back(Returned::Released(token));
            }
            Err(interrupt) => {
                // Thread#kill or shutdown while waiting: the response is
                // dropped with its connection, the interrupt goes on.
                drop(handoff);
                self.shared.give_back(Returned::Released(token));
                return Err(interrupt);
            }
        }
        Ok(())
    }

    /// Reserves `bytes` of the reactor's budget for a response about to be
    /// handed over. Past the budget this thread waits, without the GVL, for
    /// the reactor to drain what it holds: at most the write timeout (the
    /// inner `Err`), or until Ruby interrupts it (the outer one).
    fn reserve(
        &self,
        ruby: &Ruby,
        bytes: usize,
        client: &str,
    ) -> Result<io::Result<Reservation>, Error> {
        let budget = &self.shared.budget;
        if let Some(reservation) = budget.try_reserve(bytes) {
            return Ok(Ok(reservation));
        }
        if self.shared.debug {
            log::warn(&format!(
                "% Response to {client} waits: {bytes} bytes would take what the reactor holds past slow_reader_buffer_limit ({} bytes)",
                budget.limit()
            ));
        }
        let deadline = Instant::now() + self.write_timeout;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            match without_gvl_retrying(ruby, |interrupt| {
                budget.reserve(bytes, timeout, interrupt.flag())
            })? {
                // Interrupted only to let other threads run: wait on.
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    ruby.thread_check_ints()?
                }
                Some(result) => return Ok(result),
                None => return Ok(Err(io::ErrorKind::Interrupted.into())),
            }
        }
    }

    /// Writes with the GVL released. The handoff stays borrowed meanwhile,
    /// so another Ruby thread reaching this request gets `busy` (IOError).
    /// A failed write breaks the response: the connection will close.
    fn write_pieces(&self, pieces: &[&[u8]]) -> Result<bool, Error> {
        let mut slot = self.handoff_mut()?;
        if self.state_mut()?.broken {
            return Ok(false);
        }
        let Some(handoff) = slot.as_mut() else {
            return Ok(false);
        };
        let stream = &mut handoff.client.stream;
        let ruby = Ruby::get().map_err(|e| io_error(&e.to_string()))?;
        let write_timeout = self.write_timeout;
        self.wrote(true);
        let result = without_gvl_retrying(&ruby, |interrupt| {
            stream.write_all(pieces, write_timeout, interrupt.flag())
        });
        self.wrote(false);
        let ok = matches!(result, Ok(Some(Ok(()))));
        drop(slot);
        if !ok {
            let mut state = self.state_mut()?;
            state.broken = true;
            state.writing.abort();
        }
        // An interrupt (Thread#kill, Thread#raise) goes on to Ruby.
        result?;
        Ok(ok)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.handoff.is_inherited() {
            return;
        }
        self.not_busy();
        if let Some(queue) = self.state.borrow_mut().stream.take() {
            // Never finished (its thread was killed): close after what is
            // queued.
            queue.close(false);
        }
        if let Some(handoff) = self.handoff.borrow_mut().take() {
            self.shared.give_back(Returned::Released(handoff.token));
        }
    }
}

/// "GET /path HTTP/1.1", for log lines.
fn describe_request(handoff: &Handoff) -> String {
    match handoff.client.request.as_ref() {
        Some((head, _)) => format!("{} {} {}", head.method, head.target, head.version.as_str()),
        None => "-".to_string(),
    }
}

/// A header value as bytes: Strings as they are, Arrays (Rack 3) as one line
/// each, anything else through `to_s` (Puma accepts Integers, for example).
fn header_value(value: Value) -> Result<Vec<u8>, Error> {
    if let Some(s) = RString::from_value(value) {
        return Ok(bytes::copy(s));
    }
    if let Some(array) = RArray::from_value(value) {
        let mut joined = Vec::new();
        for (i, item) in array.into_iter().enumerate() {
            if i > 0 {
                joined.push(b'\n');
            }
            let s: RString = item.funcall("to_s", ())?;
            bytes::append(s, &mut joined);
        }
        return Ok(joined);
    }
    let s: RString = value.funcall("to_s", ())?;
    Ok(bytes::copy(s))
}
