//! The reading side of one connection, without the socket: bytes go in with
//! [`Reader::push`], requests (head and whole body) come out of
//! [`Reader::next_event`].
//!
//! Kept apart from [`crate::client`] so that it can be driven by tests and
//! the fuzz targets with bytes split at arbitrary points: the result must not
//! depend on how the bytes were split into reads. Bytes past the end of a
//! request (pipelining) stay buffered for the next one.

use std::io;
use std::sync::Arc;

use crate::body::Body;
use crate::http::chunked::{ChunkedDecoder, DecodeError};
use crate::http::parser::{BodyFraming, HeadScanner, ParseError, Parsed, RequestHead};

/// An idle connection's buffer may keep this much allocation; more is freed.
const IDLE_BUFFER_KEEP: usize = 4 * 1024;

/// Per-server limits the reactor applies while reading.
#[derive(Clone, Debug, Default)]
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
    /// `wait_for_less_busy_worker` in cluster mode: (longest delay, pool
    /// max threads). A busy worker waits before accepting, in proportion to
    /// its load, so an idler worker wins the connection.
    pub accept_delay: Option<(std::time::Duration, usize)>,
}

/// Why a request cannot be served; the reactor answers with `status` and
/// closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error status to answer with (400, 413, 414, 431, 501…).
    pub status: u16,
    /// What was wrong, for the log and the lowlevel error handler.
    pub reason: String,
}

impl From<ParseError> for Rejection {
    fn from(e: ParseError) -> Self {
        Rejection {
            status: e.status(),
            reason: e.reason(),
        }
    }
}

/// What the buffered bytes gave.
#[derive(Debug)]
pub enum Event {
    /// Nothing more until more bytes arrive.
    NeedMore,
    /// A complete request: its head and whole body (rewound).
    Ready(RequestHead, Body),
    /// A PROXY v1 line named the real client's address.
    ProxySource(String),
    /// The client waits for `100 Continue` before sending the body.
    SendContinue,
}

#[derive(Debug)]
enum BodyProgress {
    Length(u64),
    Chunked(ChunkedDecoder),
}

// One Progress per connection, replaced in place: boxing the head would
// only add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Progress {
    Head(HeadScanner),
    Body {
        head: RequestHead,
        body: Body,
        left: BodyProgress,
    },
}

/// One connection's reading side: bytes in through [`Reader::push`],
/// requests (or a rejection) out through [`Reader::next_event`].
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    progress: Progress,
    /// The PROXY line, if any, has been looked for (first request only).
    proxy_checked: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    /// A reader for a new connection (a PROXY line may come first).
    #[must_use]
    pub fn new() -> Self {
        Reader {
            buf: Vec::new(),
            progress: Progress::Head(HeadScanner::new()),
            proxy_checked: false,
        }
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when a request has started arriving but is not complete.
    #[must_use]
    pub(crate) fn has_partial_request(&self) -> bool {
        !self.buf.is_empty() || matches!(self.progress, Progress::Body { .. })
    }

    /// Between requests with nothing buffered: gives back the memory a
    /// large head or pipelined burst made the buffer grow to, so ten
    /// thousand idle keep-alive connections do not each keep their peak.
    pub(crate) fn shrink_idle(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > IDLE_BUFFER_KEEP {
            self.buf = Vec::new();
        }
    }

    /// The read buffer's allocation, for tests of [`Reader::shrink_idle`].
    #[cfg(test)]
    #[must_use]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    #[must_use]
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes read past the current request.
    pub(crate) fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Uses the buffered bytes as far as they go.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] when the request is invalid or exceeds a limit; the
    /// connection cannot be used any further.
    pub fn next_event(&mut self, limits: &Limits) -> Result<Event, Rejection> {
        loop {
            match &mut self.progress {
                Progress::Head(scanner) => {
                    if self.buf.is_empty() {
                        return Ok(Event::NeedMore);
                    }
                    if limits.proxy_protocol && !self.proxy_checked {
                        match proxy_line(&self.buf) {
                            ProxyLine::Incomplete => return Ok(Event::NeedMore),
                            ProxyLine::Absent => self.proxy_checked = true,
                            ProxyLine::Invalid => {
                                return Err(Rejection {
                                    status: 400,
                                    reason: "invalid PROXY protocol v1 line".into(),
                                })
                            }
                            ProxyLine::Found { len, source } => {
                                self.buf.drain(..len);
                                *scanner = HeadScanner::new();
                                self.proxy_checked = true;
                                if let Some(ip) = source {
                                    return Ok(Event::ProxySource(ip));
                                }
                            }
                        }
                        continue;
                    }
                    match scanner.parse(&self.buf)? {
                        Parsed::Partial => return Ok(Event::NeedMore),
                        Parsed::Complete(head) => {
                            if self.start_body(head, limits)? {
                                return Ok(Event::SendContinue);
                            }
                        }
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
                            let result =
                                decoder.decode(&self.buf, &mut |data: &[u8]| -> io::Result<()> {
                                    if max.is_some_and(|m| body.len() + data.len() as u64 > m) {
                                        too_large = true;
                                        return Err(io::Error::other("body too large"));
                                    }
                                    body.append(data)
                                });
                            // A chunk announced beyond the limit fails now,
                            // not after its bytes have been read.
                            if too_large || max.is_some_and(|m| body.len() + decoder.pending() > m)
                            {
                                return Err(payload_too_large());
                            }
                            let (consumed, done) = result.map_err(|e| match e {
                                DecodeError::Chunk(e) => Rejection {
                                    status: e.status(),
                                    reason: e.to_string(),
                                },
                                DecodeError::Sink(e) => io_rejection(e),
                            })?;
                            self.buf.drain(..consumed);
                            done
                        }
                    };
                    if !done {
                        return Ok(Event::NeedMore);
                    }
                    let Progress::Body { head, mut body, .. } =
                        std::mem::replace(&mut self.progress, Progress::Head(HeadScanner::new()))
                    else {
                        unreachable!()
                    };
                    body.rewind().map_err(io_rejection)?;
                    return Ok(Event::Ready(head, body));
                }
            }
        }
    }

    /// Moves from the head to its body; true when `100 Continue` is due.
    fn start_body(&mut self, head: RequestHead, limits: &Limits) -> Result<bool, Rejection> {
        if let Some(methods) = &limits.methods {
            if !methods.contains(&head.method) {
                return Err(Rejection {
                    status: 501,
                    reason: format!("unsupported HTTP method {:?}", head.method),
                });
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
        let (expected, body_pending) = match &left {
            BodyProgress::Length(n) => (Some(*n), *n > self.buf.len() as u64),
            BodyProgress::Chunked(_) => (None, true),
        };
        let send_continue = head.expect_continue && body_pending && self.buf.is_empty();
        let body = Body::with_expected_len(expected).map_err(io_rejection)?;
        self.progress = Progress::Body { head, body, left };
        Ok(send_continue)
    }
}

enum ProxyLine {
    Incomplete,
    Absent,
    /// Starts with `PROXY ` but is not a valid v1 line.
    Invalid,
    /// `len` bytes of PROXY line; `source` is None for `PROXY UNKNOWN`.
    Found {
        len: usize,
        source: Option<String>,
    },
}

/// Longest PROXY v1 line, CRLF included (the protocol's own limit).
const MAX_PROXY_LINE: usize = 107;

/// PROXY protocol v1 (`PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, at most
/// 107 bytes). A connection not starting with `PROXY ` is left for the HTTP
/// parser, as Puma does; one that does but is not a valid line can be
/// neither PROXY nor HTTP, so it is answered 400 at once instead of waiting.
fn proxy_line(buf: &[u8]) -> ProxyLine {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return ProxyLine::Absent;
    }
    let window = &buf[..buf.len().min(MAX_PROXY_LINE)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if window.len() >= MAX_PROXY_LINE || window.contains(&b'\n') {
            return ProxyLine::Invalid;
        }
        return ProxyLine::Incomplete;
    };
    if buf[..end].iter().any(|&b| b == b'\r' || b == b'\n') {
        return ProxyLine::Invalid;
    }
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return ProxyLine::Invalid;
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => ProxyLine::Found {
            len: end + 2,
            source: None,
        },
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (Ok(src_ip), Ok(dst_ip)) = (
                src.parse::<std::net::IpAddr>(),
                dst.parse::<std::net::IpAddr>(),
            ) else {
                return ProxyLine::Invalid;
            };
            let v4 = *family == "TCP4";
            if src_ip.is_ipv4() != v4
                || dst_ip.is_ipv4() != v4
                || !is_port(sport)
                || !is_port(dport)
            {
                return ProxyLine::Invalid;
            }
            ProxyLine::Found {
                len: end + 2,
                source: Some((*src).to_string()),
            }
        }
        _ => ProxyLine::Invalid,
    }
}

/// 1-5 decimal digits naming a port (0-65535), as the PROXY spec writes them.
fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

fn payload_too_large() -> Rejection {
    Rejection {
        status: 413,
        reason: "request body exceeds http_content_length_limit".into(),
    }
}

fn io_rejection(e: io::Error) -> Rejection {
    Rejection {
        status: 500,
        reason: format!("could not buffer the request body: {e}"),
    }
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
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
        assert!(
            matches!(proxy_line(v6), ProxyLine::Found { source: Some(ref s), .. } if s == "2001:db8::1")
        );
    }

    #[test]
    fn proxy_detection_waits_for_the_whole_line_and_ignores_plain_http() {
        assert!(matches!(proxy_line(b"PRO"), ProxyLine::Incomplete));
        assert!(matches!(
            proxy_line(b"PROXY TCP4 1.2.3.4"),
            ProxyLine::Incomplete
        ));
        assert!(matches!(
            proxy_line(b"GET / HTTP/1.1\r\n"),
            ProxyLine::Absent
        ));
        assert!(matches!(
            proxy_line(b"PROXY UNKNOWN\r\n"),
            ProxyLine::Found { source: None, .. }
        ));
    }

    #[test]
    fn invalid_proxy_lines_are_rejected() {
        for line in [
            &b"PROXY TCP4 not-an-ip 1.2.3.4 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY garbage\r\n",
            b"PROXY TCP4 1.2.3.4\n",
            b"PROXY \xff\r\n",
            b"PROXY UNKNOWN x\ny\r\n",
        ] {
            assert!(matches!(proxy_line(line), ProxyLine::Invalid), "{line:?}");
        }
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
        assert!(matches!(proxy_line(&long), ProxyLine::Invalid));
    }

    fn proxied() -> Limits {
        Limits {
            proxy_protocol: true,
            ..Limits::default()
        }
    }

    #[test]
    fn an_invalid_proxy_line_is_a_400_at_once() {
        // The second is also a valid HTTP request line (method `PROXY`):
        // only the PROXY check refuses it before a head that never comes.
        for line in [&b"PROXY TCP4 x y 1 2\r\n"[..], b"PROXY / HTTP/1.1\r\n"] {
            let mut reader = Reader::new();
            reader.push(line);
            let err = reader.next_event(&proxied()).expect_err("rejected");
            assert_eq!(err.status, 400, "{line:?}");
        }
    }

    /// Runs a reader over `reads`; returns the requests (method, body) and
    /// the rejection, if any.
    fn serve(reads: &[&[u8]], limits: &Limits) -> (Vec<(String, Vec<u8>)>, Option<Rejection>) {
        let mut reader = Reader::new();
        let mut served = Vec::new();
        for read in reads {
            reader.push(read);
            loop {
                match reader.next_event(limits) {
                    Ok(Event::NeedMore) => break,
                    Ok(Event::Ready(head, body)) => {
                        let Body::Memory(bytes) = body else {
                            panic!("small bodies stay in memory")
                        };
                        served.push((head.method, bytes));
                    }
                    Ok(_) => {}
                    Err(e) => return (served, Some(e)),
                }
            }
        }
        (served, None)
    }

    #[test]
    fn pipelined_requests_come_out_the_same_whatever_the_reads() {
        let input: &[u8] = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let whole = serve(&[input], &proxied());
        assert_eq!(whole.0.len(), 3);
        assert_eq!(whole.0[1], ("PUT".to_string(), b"xy".to_vec()));
        for i in 0..input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(serve(&[a, b], &proxied()), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(serve(&bytes, &proxied()), whole);
    }
}
