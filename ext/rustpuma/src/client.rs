//! One client connection while the reactor owns it: the bytes read so far
//! and how far the current request has come (head, then body).
//!
//! The reactor calls [`Client::advance`] whenever the socket is readable or
//! the client comes back from the pool; a request reaches Ruby only once its
//! head and whole body are here, so a slow client never holds a pool thread.
//! Bytes past the end of a request (pipelining) stay in `buf` for the next.

use std::io;
use std::sync::Arc;

use crate::body::Body;
use crate::http::chunked::ChunkedDecoder;
use crate::http::parser::{self, BodyFraming, ParseError, Parsed, RequestHead};
use crate::socket::Stream;

const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    // The reactor thread's read buffer, reused for every client.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Per-server limits the reactor applies while reading.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `http_content_length_limit`: larger bodies get 413 before they are read.
    pub max_body: Option<u64>,
    /// A `lowlevel_error_handler` is configured: rejected requests go to Ruby
    /// so it can build the error response, as Puma calls it for 400 and 501.
    pub errors_to_app: bool,
    /// `supported_http_methods`: other methods get 501; `None` accepts any.
    pub methods: Option<Arc<[String]>>,
    /// `set_remote_address proxy_protocol: :v1`: a connection may start
    /// with a PROXY line naming the real client.
    pub proxy_protocol: bool,
    /// `debug`: log what is otherwise dropped silently (TLS failures).
    pub debug: bool,
    /// `drain_on_shutdown`: serve the backlog's connections on a stop.
    pub drain_on_shutdown: bool,
}

/// Why a request cannot be served; the reactor answers with `status` and
/// closes the connection.
#[derive(Debug)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
}

impl From<ParseError> for Rejection {
    fn from(e: ParseError) -> Self {
        Rejection { status: e.status(), reason: e.reason() }
    }
}

pub enum Advance {
    /// `client.request` holds a complete request.
    Ready,
    /// Wait for the socket to become readable again.
    NeedMore,
    /// The peer closed between requests, or the socket failed: drop quietly.
    Gone,
    /// The TLS layer refused the client (failed handshake, bad record):
    /// dropped, and logged at debug level.
    TlsFailed(String),
    Reject(Rejection),
}

enum BodyProgress {
    Length(u64),
    Chunked(ChunkedDecoder),
}

// One Progress per connection, replaced in place: boxing the head would
// only add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Progress {
    Head { scanned: usize },
    Body { head: RequestHead, body: Body, left: BodyProgress },
}

pub struct Client {
    pub stream: Stream,
    pub remote_addr: String,
    buf: Vec<u8>,
    progress: Progress,
    /// The request handed to Ruby, with its body.
    pub request: Option<(RequestHead, Body)>,
    /// Or, with `Limits::errors_to_app`, why it was rejected.
    pub rejection: Option<Rejection>,
    /// Requests answered on this connection so far (`max_keep_alive`).
    pub served: u64,
    /// The PROXY line, if any, has been looked for (first request only).
    proxy_checked: bool,
}

impl Client {
    pub fn new(stream: Stream, remote_addr: String) -> Self {
        Client {
            stream,
            remote_addr,
            buf: Vec::new(),
            progress: Progress::Head { scanned: 0 },
            request: None,
            rejection: None,
            served: 0,
            proxy_checked: false,
        }
    }

    /// True when a request has started arriving but is not complete, which
    /// decides between a silent close and 408 when the client times out.
    pub fn has_partial_request(&self) -> bool {
        !self.buf.is_empty() || matches!(self.progress, Progress::Body { .. })
    }

    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes read past the current request, for whoever takes the
    /// connection over (a hijacked TLS tunnel).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Called when the previous response is done and the connection is kept.
    pub fn reset_for_next_request(&mut self) {
        self.request = None;
        self.progress = Progress::Head { scanned: 0 };
        self.served += 1;
    }

    /// Moves the current request forward with what is buffered and what the
    /// socket has, until it is complete, the socket is drained, or it fails.
    pub fn advance(&mut self, limits: &Limits) -> Advance {
        loop {
            match self.step(limits) {
                Ok(Some(result)) => return result,
                Ok(None) => {}
                Err(rejection) => return Advance::Reject(rejection),
            }
            match self.fill() {
                Ok(true) => {}
                // End of stream: between requests that is a normal close; in
                // the middle of one, nobody is left to answer.
                Ok(false) => return Advance::Gone,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Advance::NeedMore,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData && self.stream.is_tls() => {
                    return Advance::TlsFailed(e.to_string())
                }
                Err(_) => return Advance::Gone,
            }
        }
    }

    /// Reads once. `Ok(false)` is end of stream. Reads land in a shared
    /// scratch buffer first: growing `buf` by the read size would zero 64 KiB
    /// per read, which showed up as the reactor's top cost in profiles.
    fn fill(&mut self) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = self.stream.read(&mut scratch[..])?;
            self.buf.extend_from_slice(&scratch[..n]);
            Ok(n > 0)
        })
    }

    /// Uses the buffered bytes. `Ok(None)` means more bytes are needed.
    fn step(&mut self, limits: &Limits) -> Result<Option<Advance>, Rejection> {
        loop {
            match &mut self.progress {
                Progress::Head { scanned } => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    if limits.proxy_protocol && !self.proxy_checked {
                        match proxy_line(&self.buf) {
                            ProxyLine::Incomplete => return Ok(None),
                            ProxyLine::Absent => {}
                            ProxyLine::Found { len, source } => {
                                if let Some(ip) = source {
                                    self.remote_addr = ip;
                                }
                                self.buf.drain(..len);
                                *scanned = 0;
                            }
                        }
                        self.proxy_checked = true;
                        continue;
                    }
                    let new_line = self.buf[*scanned..].contains(&b'\n');
                    if !new_line && self.buf.len() <= parser::MAX_URI_BYTES {
                        *scanned = self.buf.len();
                        return Ok(None);
                    }
                    match parser::parse_head(&self.buf)? {
                        Parsed::Partial => {
                            *scanned = self.buf.len();
                            return Ok(None);
                        }
                        Parsed::Complete(head) => self.start_body(head, limits)?,
                    }
                }
                Progress::Body { body, left, .. } => {
                    let done = match left {
                        BodyProgress::Length(remaining) => {
                            let take = (*remaining).min(self.buf.len() as u64) as usize;
                            if take > 0 {
                                body.append(&self.buf[..take]).map_err(io_rejection)?;
                                self.buf.drain(..take);
                                *remaining -= take as u64;
                            }
                            *remaining == 0
                        }
                        BodyProgress::Chunked(decoder) => {
                            let max = limits.max_body;
                            let mut too_large = false;
                            let result = decoder.decode(&self.buf, &mut |data: &[u8]| -> io::Result<()> {
                                if max.is_some_and(|m| body.len() + data.len() as u64 > m) {
                                    too_large = true;
                                    return Err(io::Error::other("body too large"));
                                }
                                body.append(data)
                            });
                            if too_large {
                                return Err(payload_too_large());
                            }
                            let (consumed, done) = result.map_err(|e| Rejection {
                                status: 400,
                                reason: format!("invalid chunked body: {e:?}"),
                            })?;
                            self.buf.drain(..consumed);
                            done
                        }
                    };
                    if !done {
                        return Ok(None);
                    }
                    let Progress::Body { head, mut body, .. } =
                        std::mem::replace(&mut self.progress, Progress::Head { scanned: 0 })
                    else {
                        unreachable!()
                    };
                    body.rewind().map_err(io_rejection)?;
                    self.request = Some((head, body));
                    return Ok(Some(Advance::Ready));
                }
            }
        }
    }

    fn start_body(&mut self, head: RequestHead, limits: &Limits) -> Result<(), Rejection> {
        if let Some(methods) = &limits.methods {
            if !methods.contains(&head.method) {
                return Err(Rejection { status: 501, reason: format!("unsupported HTTP method {:?}", head.method) });
            }
        }
        self.buf.drain(..head.head_len);
        let left = match head.framing {
            BodyFraming::Empty => BodyProgress::Length(0),
            BodyFraming::Length(n) => {
                if limits.max_body.is_some_and(|m| n > m) {
                    return Err(payload_too_large());
                }
                BodyProgress::Length(n)
            }
            BodyFraming::Chunked => BodyProgress::Chunked(ChunkedDecoder::new()),
        };
        let expected = match left {
            BodyProgress::Length(n) => Some(n),
            BodyProgress::Chunked(_) => None,
        };
        let body_pending = match &left {
            BodyProgress::Length(n) => *n as usize > self.buf.len(),
            BodyProgress::Chunked(_) => true,
        };
        if head.expect_continue && body_pending && self.buf.is_empty() {
            self.stream.try_write(CONTINUE);
        }
        let body = Body::with_expected_len(expected).map_err(io_rejection)?;
        self.progress = Progress::Body { head, body, left };
        Ok(())
    }
}

enum ProxyLine {
    Incomplete,
    Absent,
    /// `len` bytes of PROXY line; `source` is None for `PROXY UNKNOWN`.
    Found { len: usize, source: Option<String> },
}

/// PROXY protocol v1 (`PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, at most
/// 107 bytes). Anything else is left for the HTTP parser, as Puma does.
fn proxy_line(buf: &[u8]) -> ProxyLine {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return ProxyLine::Absent;
    }
    let Some(end) = buf.windows(2).take(107).position(|w| w == b"\r\n") else {
        return if buf.len() >= 107 { ProxyLine::Absent } else { ProxyLine::Incomplete };
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["PROXY", "TCP4" | "TCP6", src, _dst, _sport, _dport] if src.parse::<std::net::IpAddr>().is_ok() => {
            Some(src.to_string())
        }
        _ => None,
    };
    ProxyLine::Found { len: end + 2, source }
}

fn payload_too_large() -> Rejection {
    Rejection { status: 413, reason: "request body exceeds http_content_length_limit".into() }
}

fn io_rejection(e: io::Error) -> Rejection {
    Rejection { status: 500, reason: format!("could not buffer the request body: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_v1_line_gives_the_source_address() {
        let buf = b"PROXY TCP4 192.0.2.7 198.51.100.1 5678 80\r\nGET / HTTP/1.1\r\n";
        match proxy_line(buf) {
            ProxyLine::Found { len, source } => {
                assert_eq!(source.as_deref(), Some("192.0.2.7"));
                assert_eq!(&buf[len..len + 3], b"GET");
            }
            _ => panic!("expected a PROXY line"),
        }
    }

    #[test]
    fn proxy_detection_waits_for_the_whole_line_and_ignores_plain_http() {
        assert!(matches!(proxy_line(b"PRO"), ProxyLine::Incomplete));
        assert!(matches!(proxy_line(b"PROXY TCP4 1.2.3.4"), ProxyLine::Incomplete));
        assert!(matches!(proxy_line(b"GET / HTTP/1.1\r\n"), ProxyLine::Absent));
        assert!(matches!(proxy_line(b"PROXY UNKNOWN\r\n"), ProxyLine::Found { source: None, .. }));
    }
}
