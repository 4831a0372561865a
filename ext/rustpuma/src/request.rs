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

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::Arc;

use magnus::value::{BoxValue, ReprValue};
use magnus::{r_hash::ForEach, Error, RArray, RHash, RString, Ruby, TryConvert, Value};

use crate::body::Body;
use crate::gvl::without_gvl;
use crate::http::parser::Version;
use crate::outgoing::Outgoing;
use crate::http::response::{body_allowed, push_chunk, push_header, push_status_line, LAST_CHUNK};
use crate::reactor::{Handoff, Returned, Shared};

/// Bodies up to this size are copied behind the head and leave in one write.
const COALESCE_LIMIT: usize = 64 * 1024;
/// Bodies from this size on are not copied: the pool thread writes them from
/// the Ruby strings themselves, with the GVL released (an 8 MB copy per
/// response cost more than the write).
const ZERO_COPY_MIN: usize = 256 * 1024;
const FILE_CHUNK: usize = 64 * 1024;

/// How `respond` frames what follows the head: 0 is normal framing;
/// Partial hijack and Rack 3 streaming bodies: the app owns the socket after
/// the head, so no framing is added and the connection closes afterwards.
const MODE_RAW: u8 = 1;

#[derive(Default)]
struct ResponseState {
    /// A complete response not yet written: `finish` hands it to the reactor.
    pending: Option<Vec<Vec<u8>>>,
    head_sent: bool,
    chunked: bool,
    skip_body: bool,
    keep_alive: bool,
    broken: bool,
    hijacked: bool,
}

#[magnus::wrap(class = "Rustpuma::Native::Request", free_immediately, size)]
pub struct Request {
    handoff: RefCell<Option<Handoff>>,
    state: RefCell<ResponseState>,
    shared: Arc<Shared>,
    /// `max_keep_alive` reached or keep-alive disabled for this server.
    no_more_requests: bool,
}

impl Request {
    pub fn new(handoff: Handoff, shared: Arc<Shared>, no_more_requests: bool) -> Self {
        Request { handoff: RefCell::new(Some(handoff)), state: RefCell::default(), shared, no_more_requests }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Handoff) -> T) -> Result<T, Error> {
        let mut slot = self.handoff.borrow_mut();
        match slot.as_mut() {
            Some(handoff) => Ok(f(handoff)),
            None => Err(Error::new(Ruby::get().unwrap().exception_io_error(), "request already finished")),
        }
    }

    /// Adds the CGI variables and headers to `env`.
    pub fn fill_env(ruby: &Ruby, rb_self: &Self, env: RHash) -> Result<RHash, Error> {
        let slot = rb_self.handoff.borrow();
        let handoff = slot.as_ref().ok_or_else(|| Error::new(ruby.exception_io_error(), "request already finished"))?;
        let client = &handoff.client;
        match client.request.as_ref() {
            Some((head, body)) => {
                let tls = client.stream.is_tls().then(|| client.stream.peer_cert_pem());
                crate::env::fill(ruby, env, head, &client.remote_addr, body.len(), tls)?
            }
            // A rejected request: only what is known about the client.
            None => env.aset("REMOTE_ADDR", client.remote_addr.as_str())?,
        }
        Ok(env)
    }

    /// `[status, reason]` when the reactor rejected this request and Ruby's
    /// `lowlevel_error_handler` is to answer it; nil for a normal request.
    pub fn rejection(rb_self: &Self) -> Result<Option<(u16, String)>, Error> {
        rb_self.with(|h| h.client.rejection.as_ref().map(|r| (r.status, r.reason.clone())))
    }

    /// The body when it is in memory (a binary String), else nil.
    pub fn body_string(ruby: &Ruby, rb_self: &Self) -> Result<Option<RString>, Error> {
        rb_self.with(|h| match &h.client.request {
            Some((_, Body::Memory(bytes))) if !bytes.is_empty() => Some(ruby.str_from_slice(bytes.as_slice())),
            _ => None,
        })
    }

    /// For a body spilled to a temp file: a new descriptor of that file,
    /// positioned at the start, for Ruby to wrap in a File. Else nil.
    pub fn body_fd(ruby: &Ruby, rb_self: &Self) -> Result<Option<i32>, Error> {
        rb_self
            .with(|h| match &h.client.request {
                Some((_, Body::File { file, .. })) => file.try_clone().map(|f| Some(f.into_raw_fd())),
                _ => Ok(None),
            })?
            .map_err(|e| Error::new(ruby.exception_io_error(), e.to_string()))
    }

    pub fn remote_addr(rb_self: &Self) -> Result<String, Error> {
        rb_self.with(|h| h.client.remote_addr.clone())
    }

    /// "GET /path HTTP/1.1", for log lines.
    pub fn request_line(rb_self: &Self) -> Result<String, Error> {
        rb_self.with(|h| {
            match h.client.request.as_ref() {
                Some((head, _)) => format!("{} {} {}", head.method, head.target, head.version.as_str()),
                None => "-".to_string(),
            }
        })
    }

    /// Writes the status line and headers, and the body when `parts` (an
    /// Array of Strings) is given. With `parts` nil the body follows through
    /// `write_body`, chunked on HTTP/1.1 when its length is unknown.
    /// Returns false when the client is gone.
    pub fn respond(
        ruby: &Ruby,
        rb_self: &Self,
        status: u16,
        headers: RHash,
        parts: Option<RArray>,
        mode: u8,
    ) -> Result<bool, Error> {
        let (version, is_head, wants_keep_alive) = rb_self.with(|h| match h.client.request.as_ref() {
            Some((head, _)) => (head.version, head.method == "HEAD", head.keep_alive),
            // A rejected request is answered on HTTP/1.1 and closed.
            None => (Version::Http11, false, false),
        })?;
        let mut out = Vec::with_capacity(256);
        push_status_line(&mut out, version, status);

        let mut content_length: Option<Vec<u8>> = None;
        let mut app_chunked = false;
        let mut app_close = false;
        headers.foreach(|key: Value, value: Value| {
            let name = RString::try_convert(key)?;
            // SAFETY: the bytes are copied into `out` before any Ruby code can
            // run again, while this thread holds the GVL.
            let name = unsafe { name.as_slice() }.to_vec();
            let value = header_value(value)?;
            if name.eq_ignore_ascii_case(b"connection") {
                app_close |= value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close"));
                return Ok(ForEach::Continue);
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                content_length = Some(value.clone());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                app_chunked |= value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
            }
            push_header(&mut out, &name, &value);
            Ok(ForEach::Continue)
        })?;

        let mut keep_alive = wants_keep_alive && !app_close && !rb_self.no_more_requests && !rb_self.shared.stopping();
        let has_body = body_allowed(status);
        let parts_given = parts.is_some();
        let mut body: Vec<Vec<u8>> = Vec::new();
        // Large bodies are written from the app's (frozen) strings directly.
        let mut large: Option<BoxValue<RArray>> = None;
        let mut chunked = false;
        if mode == MODE_RAW {
            keep_alive = false;
        } else if has_body {
            match parts {
                Some(parts) => {
                    // Handler passes Strings only (`map(&:to_s)`), so no Ruby
                    // code runs here and `parts` keeps every one alive.
                    let strings: Vec<RString> =
                        parts.into_iter().map(RString::try_convert).collect::<Result<_, _>>()?;
                    let total: usize = strings.iter().map(|s| s.len()).sum();
                    if total >= ZERO_COPY_MIN && !app_chunked {
                        let frozen = ruby.ary_new_capa(strings.len());
                        for s in &strings {
                            frozen.push(RString::new_frozen(*s))?;
                        }
                        large = Some(BoxValue::new(frozen));
                    } else {
                        for s in &strings {
                            // SAFETY: copied while holding the GVL, as above.
                            body.push(unsafe { s.as_slice() }.to_vec());
                        }
                    }
                    if content_length.is_none() && !app_chunked {
                        push_header(&mut out, b"Content-Length", total.to_string().as_bytes());
                    }
                    if app_chunked {
                        let mut encoded = Vec::new();
                        body.iter().for_each(|p| push_chunk(&mut encoded, p));
                        encoded.extend_from_slice(LAST_CHUNK);
                        body = vec![encoded];
                    }
                }
                None if content_length.is_some() => {}
                None if app_chunked => chunked = true,
                None if version == Version::Http11 => {
                    push_header(&mut out, b"Transfer-Encoding", b"chunked");
                    chunked = true;
                }
                // An HTTP/1.0 body of unknown length ends when we close.
                None => keep_alive = false,
            }
        }
        match (version, keep_alive) {
            (Version::Http11, false) => out.extend_from_slice(b"Connection: close\r\n"),
            (Version::Http10, true) => out.extend_from_slice(b"Connection: Keep-Alive\r\n"), // Puma's spelling
            _ => {}
        }
        out.extend_from_slice(b"\r\n");

        let skip_body = is_head || !has_body;
        if skip_body {
            body.clear();
        }
        {
            let mut state = rb_self.state.borrow_mut();
            state.head_sent = true;
            state.chunked = chunked && !skip_body;
            state.skip_body = skip_body;
            state.keep_alive = keep_alive;
        }
        if let (Some(frozen), false) = (&large, skip_body) {
            let strings: Vec<RString> = frozen.into_iter().filter_map(RString::from_value).collect();
            let mut pieces: Vec<&[u8]> = vec![&out];
            // SAFETY: the strings are frozen (nobody can change or free their
            // bytes) and kept alive by `large`, a GC-registered BoxValue, for
            // the whole write; this is what Ruby's own IO#write does when it
            // releases the GVL.
            pieces.extend(strings.iter().map(|s| unsafe { s.as_slice() }));
            let ok = rb_self.write_pieces(&pieces);
            drop(large);
            return Ok(ok);
        }
        let total: usize = body.iter().map(Vec::len).sum();
        if total <= COALESCE_LIMIT {
            body.iter().for_each(|p| out.extend_from_slice(p));
            body.clear();
        }
        let complete = mode != MODE_RAW && (parts_given || skip_body);
        if complete {
            // The whole response is known: the reactor writes it after
            // `finish`, and this thread keeps the GVL for the next request.
            body.insert(0, out);
            rb_self.state.borrow_mut().pending = Some(body);
            return Ok(true);
        }
        let mut pieces: Vec<&[u8]> = vec![&out];
        pieces.extend(body.iter().map(Vec::as_slice));
        Ok(rb_self.write_pieces(&pieces))
    }

    /// Writes a response `respond` kept for the reactor now, from this thread
    /// (without the GVL): for `after_reply` callbacks, which run after the
    /// response is on the wire.
    pub fn flush(rb_self: &Self) -> bool {
        let pending = rb_self.state.borrow_mut().pending.take();
        match pending {
            Some(pieces) => {
                let slices: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
                rb_self.write_pieces(&slices)
            }
            None => true,
        }
    }

    /// Writes one piece of a streamed body (chunk-encoded when needed).
    pub fn write_body(rb_self: &Self, data: RString) -> Result<bool, Error> {
        let (chunked, skip) = {
            let state = rb_self.state.borrow();
            (state.chunked, state.skip_body)
        };
        if skip {
            return Ok(true);
        }
        // SAFETY: copied while holding the GVL.
        let bytes = unsafe { data.as_slice() };
        if bytes.is_empty() {
            return Ok(true);
        }
        let mut out = Vec::with_capacity(bytes.len() + 16);
        if chunked {
            push_chunk(&mut out, bytes);
        } else {
            out.extend_from_slice(bytes);
        }
        Ok(rb_self.write_pieces(&[&out]))
    }

    /// Ends a streamed body (the last chunk when chunked).
    pub fn finish_body(rb_self: &Self) -> Result<bool, Error> {
        let chunked = rb_self.state.borrow().chunked;
        if chunked {
            return Ok(rb_self.write_pieces(&[LAST_CHUNK]));
        }
        Ok(true)
    }

    /// Sends a file as the body (`to_path` bodies), read and written without
    /// the GVL so a large download does not hold up other threads.
    pub fn send_file(ruby: &Ruby, rb_self: &Self, path: String) -> Result<bool, Error> {
        let (chunked, skip) = {
            let state = rb_self.state.borrow();
            (state.chunked, state.skip_body)
        };
        if skip {
            return Ok(true);
        }
        let mut file = File::open(&path).map_err(|e| Error::new(ruby.exception_io_error(), format!("{path}: {e}")))?;
        let mut slot = rb_self.handoff.borrow_mut();
        let Some(handoff) = slot.as_mut() else { return Ok(false) };
        let stream = &mut handoff.client.stream;
        let result = without_gvl(|interrupt| -> io::Result<()> {
            let mut buf = vec![0u8; FILE_CHUNK];
            let mut framed = Vec::with_capacity(FILE_CHUNK + 16);
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                if chunked {
                    framed.clear();
                    push_chunk(&mut framed, &buf[..n]);
                    stream.write_all(&[&framed], interrupt)?;
                } else {
                    stream.write_all(&[&buf[..n]], interrupt)?;
                }
            }
        });
        drop(slot);
        let ok = matches!(result, Some(Ok(())));
        if !ok {
            rb_self.state.borrow_mut().broken = true;
        }
        Ok(ok)
    }

    /// `103 Early Hints` with the given headers, before the real response.
    pub fn early_hints(rb_self: &Self, headers: RHash) -> Result<bool, Error> {
        let version = rb_self.with(|h| h.client.request.as_ref().map(|(head, _)| head.version))?;
        let mut out = Vec::with_capacity(128);
        push_status_line(&mut out, version.unwrap_or(Version::Http11), 103);
        headers.foreach(|key: RString, value: Value| {
            // SAFETY: copied while holding the GVL.
            let name = unsafe { key.as_slice() }.to_vec();
            push_header(&mut out, &name, &header_value(value)?);
            Ok(ForEach::Continue)
        })?;
        out.extend_from_slice(b"\r\n");
        Ok(rb_self.write_pieces(&[&out]))
    }

    /// Full hijack: the app takes the socket. Returns a new descriptor for
    /// Ruby to wrap; the reactor forgets the connection.
    pub fn hijack(ruby: &Ruby, rb_self: &Self) -> Result<i32, Error> {
        // Bytes the client sent after the request (a first websocket frame)
        // are already in our buffer; the relay delivers them, a raw
        // descriptor could not.
        if rb_self.with(|h| h.client.stream.is_tls() || h.client.has_buffered())? {
            return Self::hijack_relayed(ruby, rb_self);
        }
        let fd = rb_self.with(|h| {
            let _ = rb_self.shared.registry.deregister(h.client.stream.source());
            // SAFETY: the descriptor belongs to this open stream, which the
            // borrowed handoff keeps alive for the duration of the dup.
            let borrowed = unsafe { BorrowedFd::borrow_raw(h.client.stream.raw_fd()) };
            borrowed.try_clone_to_owned()
        })?;
        let fd = fd.map_err(|e| Error::new(ruby.exception_io_error(), e.to_string()))?;
        let mut state = rb_self.state.borrow_mut();
        state.hijacked = true;
        state.keep_alive = false;
        Ok(fd.into_raw_fd())
    }

    /// A TLS connection cannot be handed to Ruby as a descriptor: the app
    /// gets one end of a socket pair and the reactor relays to the TLS
    /// stream (tunnel.rs). The relay starts now, so an app that writes from
    /// inside the hijack call (partial hijack) is never stuck.
    fn hijack_relayed(ruby: &Ruby, rb_self: &Self) -> Result<i32, Error> {
        let io_error = |e: std::io::Error| Error::new(ruby.exception_io_error(), e.to_string());
        let (app_end, our_end) = std::os::unix::net::UnixStream::pair().map_err(io_error)?;
        our_end.set_nonblocking(true).map_err(io_error)?;
        let handoff = rb_self
            .handoff
            .borrow_mut()
            .take()
            .ok_or_else(|| Error::new(ruby.exception_io_error(), "request already finished"))?;
        rb_self.shared.give_back(Returned::Tunnel(handoff, mio::net::UnixStream::from_std(our_end)));
        let mut state = rb_self.state.borrow_mut();
        state.hijacked = true;
        state.keep_alive = false;
        Ok(app_end.into_raw_fd())
    }

    pub fn is_hijacked(rb_self: &Self) -> bool {
        rb_self.state.borrow().hijacked
    }

    pub fn is_head_sent(rb_self: &Self) -> bool {
        rb_self.state.borrow().head_sent
    }

    /// Whether the connection will be kept after this response.
    fn is_keep_alive(rb_self: &Self) -> bool {
        let state = rb_self.state.borrow();
        state.keep_alive && !state.broken && !state.hijacked
    }

    /// Ends the exchange: the connection goes back to the reactor when it
    /// can be kept, else it is closed (or left to the app after a hijack).
    pub fn finish(rb_self: &Self) {
        let keep = Self::is_keep_alive(rb_self) && !rb_self.shared.stopping();
        let pending = rb_self.state.borrow_mut().pending.take();
        let Some(mut handoff) = rb_self.handoff.borrow_mut().take() else { return };
        if let Some(pieces) = pending {
            rb_self.shared.give_back(Returned::Respond(handoff, Outgoing::new(pieces, keep)));
        } else if keep {
            handoff.client.reset_for_next_request();
            rb_self.shared.give_back(Returned::KeepAlive(handoff));
        } else {
            // Dropping the client closes our descriptor; after a hijack the
            // app's duplicate keeps the connection open.
            rb_self.shared.give_back(Returned::Released(handoff.token));
        }
    }

    fn write_pieces(&self, pieces: &[&[u8]]) -> bool {
        if self.state.borrow().broken {
            return false;
        }
        let mut slot = self.handoff.borrow_mut();
        let Some(handoff) = slot.as_mut() else { return false };
        let stream = &mut handoff.client.stream;
        let ok = matches!(without_gvl(|interrupt| stream.write_all(pieces, interrupt)), Some(Ok(())));
        drop(slot);
        if !ok {
            self.state.borrow_mut().broken = true;
        }
        ok
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(handoff) = self.handoff.get_mut().take() {
            self.shared.give_back(Returned::Released(handoff.token));
        }
    }
}

/// A header value as bytes: Strings as they are, Arrays (Rack 3) as one line
/// each, anything else through `to_s` (Puma accepts Integers, for example).
fn header_value(value: Value) -> Result<Vec<u8>, Error> {
    if let Some(s) = RString::from_value(value) {
        // SAFETY: copied while holding the GVL.
        return Ok(unsafe { s.as_slice() }.to_vec());
    }
    if let Some(array) = RArray::from_value(value) {
        let mut joined = Vec::new();
        for (i, item) in array.into_iter().enumerate() {
            if i > 0 {
                joined.push(b'\n');
            }
            let s: RString = item.funcall("to_s", ())?;
            // SAFETY: copied while holding the GVL.
            joined.extend_from_slice(unsafe { s.as_slice() });
        }
        return Ok(joined);
    }
    let s: RString = value.funcall("to_s", ())?;
    // SAFETY: copied while holding the GVL.
    Ok(unsafe { s.as_slice() }.to_vec())
}
