//! Request-head parsing: turns the bytes of an HTTP/1.x request head into a
//! [`RequestHead`] and decides how the body is framed.
//!
//! `httparse` does the tokenising; this module adds what a server facing the
//! open internet needs on top of it and what Puma, the reference server,
//! enforces: strict CRLF line endings, size limits that fail early on slow
//! clients, and unambiguous body framing (Content-Length / Transfer-Encoding
//! rules from RFC 9112 §6) so that no two parsers in a proxy chain can
//! disagree about where a request ends.
//!
//! The reactor keeps a [`HeadScanner`] per request and calls it on the grown
//! buffer after every read; it resumes where it stopped, so the work is
//! linear in the head's size however it is split. [`parse_head`] is the
//! one-shot form. The answer for a buffer does not depend on how it was
//! split into reads: the first call on a prefix that does not return
//! [`Parsed::Partial`] returns exactly what a call on the whole buffer returns.
//!
//! Decisions worth knowing about:
//! - Empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2);
//!   they count towards `head_len` and the header size limit.
//! - `HTTP/1.0` and `HTTP/1.1` are accepted, and `HTTP/1.2`-`HTTP/1.9` are
//!   served as 1.1 (RFC 9110 §2.5); any other version is a 400 (httparse
//!   cannot tell "HTTP/2.0" from "HTTP/x.y" garbage, so 505 would be a guess).
//! - Openings that can never be HTTP/1 fail at once rather than after the
//!   first-data timeout: a first byte that cannot start a method (a TLS
//!   ClientHello, NUL, binary), an SSH banner, and a request line that
//!   httparse rejects as soon as its CRLF is here. See [`NotHttp`].
//! - The request-target must be valid UTF-8 (httparse rejects it otherwise).
//! - Accepted target forms: origin-form (`/p?q`), absolute-form
//!   (`scheme://authority/p?q`; path is `""` when the URI has no path, as
//!   Puma's `URI.parse` fallback gives), asterisk-form (`*`) and, for
//!   `CONNECT` only, authority-form (path and query `""`). Anything else: 400.
//! - A request carrying both Transfer-Encoding and Content-Length is framed by
//!   Transfer-Encoding, and `keep_alive` is forced to false because RFC 9112
//!   §6.1 requires closing the connection after such a request.
//! - `Content-Length: 0` gives `BodyFraming::Length(0)`, not `Empty`; callers
//!   treat both as "no body".
//! - Transfer-Encoding checks run in this order: `chunked` twice → 400,
//!   `chunked` present but not last → 400, any other coding (`gzip`,
//!   `identity`, `chunked;q=1` ...) → 501, no coding at all (empty value) → 400.
//!   So `gzip` alone is a 501, `gzip, chunked` a 501, `chunked, gzip` a 400.
//! - Puma's `REQUEST_URI` excludes the fragment; `target` here keeps it (as
//!   sent) and `path`/`query` exclude it.

use std::fmt;

/// Largest accepted request head, request line and final CRLFCRLF included (431 beyond).
pub const MAX_HEADER_BYTES: usize = 112 * 1024;
/// Largest accepted request-target (414 beyond).
pub(crate) const MAX_URI_BYTES: usize = 12 * 1024;
/// Room for method, spaces and version around the target: an unterminated
/// request line longer than `MAX_URI_BYTES + REQUEST_LINE_SLACK` can only end
/// in a 414, so we say so before the client has sent the rest.
pub(crate) const REQUEST_LINE_SLACK: usize = 64;
/// Most header lines accepted in one head (431 beyond). Bounds the scratch
/// array handed to httparse; real clients send a few dozen.
pub const MAX_HEADERS: usize = 4096;

/// Header slots kept on the stack; heads with more lines get a heap array
/// sized from the exact line count, so httparse never has to be retried.
const INLINE_HEADERS: usize = 64;

/// HTTP version of a request (only 1.0 and 1.1 are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    /// The protocol string as Rack wants it in `SERVER_PROTOCOL` / `HTTP_VERSION`.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// One request header. `name` keeps the client's spelling; values may hold
/// obs-text (bytes 0x80-0xFF), hence bytes rather than a `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as the client spelled it.
    pub name: String,
    /// The value without surrounding whitespace.
    pub value: Vec<u8>,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method as sent (case-sensitive).
    pub method: String,
    /// Request-target as sent, fragment included (`REQUEST_URI`).
    pub target: String,
    /// Path part of the target without query and fragment (`REQUEST_PATH` / `PATH_INFO`).
    pub path: String,
    /// After `?` up to `#`, `""` when absent (`QUERY_STRING`).
    pub query: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The headers in arrival order.
    pub headers: Vec<Header>,
    /// Bytes consumed by the head, leading empty lines and final CRLFCRLF included.
    pub head_len: usize,
    /// How the body that follows is delimited.
    pub framing: BodyFraming,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// The connection may serve another request after this one (version
    /// and `Connection` header).
    pub keep_alive: bool,
}

impl RequestHead {
    /// Value of the first header called `name` (ASCII case-insensitive).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }
}

/// Outcome of a successful [`parse_head`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet; call again with more bytes.
    Partial,
    /// A whole, valid head.
    Complete(RequestHead),
}

/// Why a request head was rejected. Every variant maps to the status the
/// server answers with before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// 400: malformed head, with the reason.
    BadRequest(String),
    /// 414: the request-target is over `MAX_URI_BYTES`.
    UriTooLong,
    /// 431: the head is over [`MAX_HEADER_BYTES`] or [`MAX_HEADERS`].
    HeaderTooLarge,
    /// 501: a transfer coding we do not implement, with the reason.
    NotImplemented(String),
    /// The connection's first bytes can never start an HTTP/1 request.
    NotHttp(NotHttp),
}

impl ParseError {
    /// HTTP status for the canned error response.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            ParseError::BadRequest(_) => 400,
            ParseError::UriTooLong => 414,
            ParseError::HeaderTooLarge => 431,
            ParseError::NotImplemented(_) => 501,
            ParseError::NotHttp(_) => 400,
        }
    }

    /// Human-readable cause, for the log line.
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            ParseError::BadRequest(why) => format!("bad request: {why}"),
            ParseError::UriTooLong => {
                format!("request-target longer than {MAX_URI_BYTES} bytes")
            }
            ParseError::HeaderTooLarge => format!(
                "request head larger than {MAX_HEADER_BYTES} bytes or more than {MAX_HEADERS} header lines"
            ),
            ParseError::NotImplemented(why) => format!("not implemented: {why}"),
            ParseError::NotHttp(what) => format!("bad request: {}", what.reason()),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for ParseError {}

fn bad(why: &str) -> ParseError {
    ParseError::BadRequest(why.to_owned())
}

/// Parses the request head at the start of `buf` in one go (the stateless
/// form of [`HeadScanner::parse`], for callers that have the whole head).
///
/// # Errors
///
/// A [`ParseError`] as soon as the bytes seen so far cannot start a valid
/// head within the limits; the connection must then be answered with
/// [`ParseError::status`] and closed.
pub fn parse_head(buf: &[u8]) -> Result<Parsed, ParseError> {
    HeadScanner::new().parse(buf)
}

/// Finds the end of a request head that arrives in pieces, resuming where
/// the previous call stopped: a head sent one byte per read costs a linear
/// scan, not a rescan of the whole buffer per read (which let one client
/// spend a second of reactor CPU on a 100 KiB head).
///
/// Use one scanner per request and call [`HeadScanner::parse`] with the
/// same buffer, grown, each time; start a new scanner for the next request.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Next byte to look at.
    pos: usize,
    /// The empty lines before the request line have been skipped.
    leading_done: bool,
    request_line_start: usize,
    /// Index of the request line's CR once it has been seen.
    request_line_end: Option<usize>,
    line_start: usize,
    header_lines: usize,
    /// Bytes examined so far, re-examined ones included.
    work: usize,
}

impl HeadScanner {
    /// A scanner for a new request head.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes this scanner has examined, counting any byte looked at twice
    /// twice; lets tests check that the work stays linear.
    #[must_use]
    pub fn work(&self) -> usize {
        self.work
    }

    /// Parses the head at the start of `buf`, which must begin with the
    /// bytes of every earlier call on this scanner. Bytes after the head
    /// (body, pipelined requests) are left alone; `head_len` says where
    /// they start.
    ///
    /// # Errors
    ///
    /// As [`parse_head`].
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ParseError> {
        let Some(head_len) = self.scan(buf)? else {
            return Ok(Parsed::Partial);
        };
        if self.header_lines > MAX_HEADERS {
            return Err(ParseError::HeaderTooLarge);
        }
        let line_end = self.request_line_end.unwrap_or(0);
        let head = with_http_1_1(&buf[..head_len], line_end);
        let parsed = if self.header_lines <= INLINE_HEADERS {
            let mut slots = [httparse::EMPTY_HEADER; INLINE_HEADERS];
            build_head(&head, &mut slots)?
        } else {
            let mut slots = vec![httparse::EMPTY_HEADER; self.header_lines];
            build_head(&head, &mut slots)?
        };
        Ok(Parsed::Complete(parsed))
    }

    /// Validates line endings and size limits and finds the end of the head.
    ///
    /// httparse accepts a bare LF as a line end; a front-end proxy that does
    /// not would see a different request, which is the classic smuggling
    /// setup. So every CR must be followed by LF and every LF preceded by CR
    /// before httparse sees the bytes. Only the first `MAX_HEADER_BYTES` are
    /// looked at: a head that does not end within them is too large whatever
    /// follows, which keeps the answer independent of how the bytes were
    /// split into reads.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let view = &buf[..buf.len().min(MAX_HEADER_BYTES)];

        if !self.leading_done {
            while view.len() >= self.pos + 2
                && view[self.pos] == b'\r'
                && view[self.pos + 1] == b'\n'
            {
                self.pos += 2;
                self.work += 2;
            }
            match view.get(self.pos..) {
                None | Some([] | [b'\r']) => return self.partial(buf),
                Some(_) => {}
            }
            self.leading_done = true;
            self.request_line_start = self.pos;
            self.line_start = self.pos;
        }
        if self.request_line_end.is_none() {
            check_opening(&view[self.request_line_start..])?;
        }

        loop {
            let Some(cr) = find_line_break(view, self.pos) else {
                self.work += view.len() - self.pos;
                self.pos = view.len();
                break;
            };
            self.work += cr + 1 - self.pos;
            self.pos = cr;
            if view[cr] == b'\n' {
                return Err(bad("bare LF in request head"));
            }
            if cr + 1 == view.len() {
                break; // the LF may still be on its way; look at the CR again then
            }
            if view[cr + 1] != b'\n' {
                return Err(bad("bare CR in request head"));
            }
            if self.request_line_end.is_none() {
                if cr - self.request_line_start > MAX_URI_BYTES + REQUEST_LINE_SLACK {
                    return Err(ParseError::UriTooLong);
                }
                check_request_line(
                    &view[self.request_line_start..cr + 2],
                    cr - self.request_line_start,
                )?;
                self.request_line_end = Some(cr);
            } else if cr == self.line_start {
                return Ok(Some(cr + 2));
            } else {
                if matches!(view[self.line_start], b' ' | b'\t') {
                    return Err(bad(
                        "obsolete line folding or whitespace before header name",
                    ));
                }
                self.header_lines += 1;
            }
            self.pos = cr + 2;
            self.line_start = self.pos;
        }
        self.partial(buf)
    }

    /// The head is not complete: fail now if it never can be within limits.
    fn partial(&self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let view_len = buf.len().min(MAX_HEADER_BYTES);
        if self.leading_done
            && self.request_line_end.is_none()
            && view_len.saturating_sub(self.request_line_start) > MAX_URI_BYTES + REQUEST_LINE_SLACK
        {
            return Err(ParseError::UriTooLong);
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(ParseError::HeaderTooLarge);
        }
        Ok(None)
    }
}

/// What a connection's first bytes show it to be, when it can never be an
/// HTTP/1 request: answered 400 at once instead of 408 after the timeout.
/// The reasons are part of the log line, and the log can add a hint for them
/// (a TLS client on a plain port usually means a missing `ssl://` bind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHttp {
    /// A TLS record (ClientHello: 0x16 0x03 ...): `https://` to a plain port.
    /// Named on the first byte, 0x16, which no method can start with.
    Tls,
    /// An SSH client's banner (`SSH-2.0-...`).
    Ssh,
    /// Any other byte that cannot start a method token (NUL, binary).
    NotAToken,
}

impl NotHttp {
    /// The log line's wording; stable, so tools and hints can match it.
    #[must_use]
    pub(crate) fn reason(self) -> &'static str {
        match self {
            NotHttp::Tls => "TLS handshake on a plain port",
            NotHttp::Ssh => "SSH handshake on an HTTP port",
            NotHttp::NotAToken => "request does not start with a method token",
        }
    }
}

/// Rejects an opening that can never become a request line: the method is a
/// token, so its first byte must be a token character; a TLS or SSH client
/// is named so the log says what happened. `line` starts at the request line
/// and may be incomplete.
fn check_opening(line: &[u8]) -> Result<(), ParseError> {
    let Some(&first) = line.first() else {
        return Ok(());
    };
    // Decided on the first byte alone (a TLS record of type handshake), so
    // the reason does not depend on whether the second byte came with it.
    if first == 0x16 {
        return Err(ParseError::NotHttp(NotHttp::Tls));
    }
    if !is_tchar(first) {
        return Err(ParseError::NotHttp(NotHttp::NotAToken));
    }
    if line.starts_with(b"SSH-") {
        return Err(ParseError::NotHttp(NotHttp::Ssh));
    }
    Ok(())
}

/// Checks a complete request line (CRLF included) as soon as it is here, so
/// that a line that is not `method SP target SP HTTP/x.y` fails before the
/// client has sent (or never sends) the rest of the head.
fn check_request_line(line: &[u8], line_len: usize) -> Result<(), ParseError> {
    let line = with_http_1_1(line, line_len);
    let mut no_headers = [httparse::EMPTY_HEADER; 0];
    match httparse::Request::new(&mut no_headers).parse(&line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(e) => Err(map_httparse_error(e)),
    }
}

/// `HTTP/1.2` ... `HTTP/1.9` are HTTP/1.1 to a server that implements 1.1
/// (RFC 9110 §2.5: a later minor version is served as the highest one
/// supported), but httparse only knows 1.0 and 1.1; the request line, which
/// ends at `line_end`, is given to it with the minor digit rewritten.
fn with_http_1_1(head: &[u8], line_end: usize) -> std::borrow::Cow<'_, [u8]> {
    let minor = line_end.wrapping_sub(1);
    let later_minor = line_end >= 9
        && head.get(line_end - 9..line_end - 1) == Some(b" HTTP/1.")
        && matches!(head[minor], b'2'..=b'9');
    if later_minor {
        let mut patched = head.to_vec();
        patched[minor] = b'1';
        std::borrow::Cow::Owned(patched)
    } else {
        std::borrow::Cow::Borrowed(head)
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Index of the first CR or LF at or after `from`.
///
/// Head lines are long runs of printable bytes, so this looks at eight bytes
/// per step (SWAR): the scan would otherwise cost more than httparse itself.
fn find_line_break(buf: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const CRS: u64 = ONES * b'\r' as u64;
    const LFS: u64 = ONES * b'\n' as u64;
    let mut i = from;
    while let Some(chunk) = buf.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let (cr, lf) = (word ^ CRS, word ^ LFS);
        // Marks the bytes that are zero after the XOR. Borrows can add false
        // marks, but only above a true one, so the lowest mark is exact.
        let marks = ((cr.wrapping_sub(ONES) & !cr) | (lf.wrapping_sub(ONES) & !lf)) & HIGHS;
        if marks != 0 {
            return Some(i + (marks.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    buf.get(i..)?
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|p| i + p)
}

/// Runs httparse over a head already known to be complete and CRLF-clean,
/// then derives the framing and connection semantics from the headers.
fn build_head<'b>(
    head: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<RequestHead, ParseError> {
    let mut req = httparse::Request::new(slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(bad("malformed request head")),
        Err(e) => return Err(map_httparse_error(e)),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("malformed request line"));
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(bad("unsupported HTTP version")),
    };
    if target.len() > MAX_URI_BYTES {
        return Err(ParseError::UriTooLong);
    }
    let (path, query) = split_target(method, target)?;

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length = ContentLength::default();
    let mut codings = TransferCodings::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;

    for h in req.headers.iter() {
        let name = h.name;
        // Length first: it rules out almost every header with one compare.
        match name.len() {
            14 if name.eq_ignore_ascii_case("content-length") => content_length.add(h.value),
            17 if name.eq_ignore_ascii_case("transfer-encoding") => codings.add(h.value),
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in list_elements(h.value) {
                    conn_close |= token.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            6 if name.eq_ignore_ascii_case("expect") => {
                expect_continue |= trim_ows(h.value).eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        headers.push(Header {
            name: name.to_owned(),
            value: h.value.to_vec(),
        });
    }

    let both_framings = codings.present && content_length.seen;
    let framing = if codings.present {
        codings.check()?;
        BodyFraming::Chunked
    } else {
        match content_length.finish()? {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Empty,
        }
    };

    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    } && !both_framings;

    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        headers,
        head_len: head.len(),
        framing,
        expect_continue: expect_continue && version == Version::Http11,
        keep_alive,
    })
}

fn map_httparse_error(e: httparse::Error) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::HeaderTooLarge,
        httparse::Error::Version => bad("unsupported HTTP version"),
        httparse::Error::HeaderName => bad("invalid header name or header line without colon"),
        httparse::Error::HeaderValue => bad("invalid character in header value"),
        httparse::Error::Token => bad("malformed request line"),
        httparse::Error::NewLine => bad("malformed line ending"),
        httparse::Error::Status => bad("malformed request"),
    }
}

/// Splits a request-target into (path, query); the fragment belongs to neither.
fn split_target<'a>(method: &str, target: &'a str) -> Result<(&'a str, &'a str), ParseError> {
    let without_fragment = match target.find('#') {
        Some(i) => &target[..i],
        None => target,
    };
    let rest = if target.starts_with('/') {
        without_fragment
    } else if target == "*" {
        return Ok(("*", ""));
    } else if let Some(rest) = absolute_form_rest(without_fragment) {
        rest
    } else if method == "CONNECT" {
        return Ok(("", ""));
    } else {
        return Err(bad("invalid request-target"));
    };
    Ok(match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, ""),
    })
}

/// For `scheme://authority/p?q` returns `/p?q` (possibly empty), else `None`.
fn absolute_form_rest(target: &str) -> Option<&str> {
    let sep = target.find("://")?;
    let scheme = target.as_bytes()[..sep].split_first();
    let valid_scheme = matches!(scheme, Some((first, tail))
        if first.is_ascii_alphabetic()
            && tail.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')));
    if !valid_scheme {
        return None;
    }
    let after = &target[sep + 3..];
    let path_start = after.find(['/', '?']).unwrap_or(after.len());
    Some(&after[path_start..])
}

/// Accumulates Content-Length headers. Repeated headers and comma lists are
/// fine as long as every element is the same number (RFC 9112 §6.3 point 5).
#[derive(Default)]
struct ContentLength {
    seen: bool,
    value: Option<u64>,
    error: Option<ParseError>,
}

impl ContentLength {
    fn add(&mut self, raw: &[u8]) {
        self.seen = true;
        if self.error.is_some() {
            return;
        }
        // split() on an empty value still yields one (empty) element, which
        // parse_decimal rejects: an empty Content-Length is an error too.
        for element in raw.split(|&b| b == b',') {
            let result = parse_decimal(trim_ows(element)).and_then(|n| match self.value {
                Some(prev) if prev != n => Err(bad("conflicting Content-Length values")),
                _ => Ok(n),
            });
            match result {
                Ok(n) => self.value = Some(n),
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
    }

    /// Deferred until we know there is no Transfer-Encoding, which would
    /// make Content-Length irrelevant.
    fn finish(self) -> Result<Option<u64>, ParseError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.value),
        }
    }
}

/// Strictly `1*DIGIT` fitting u64: no sign, no inner spaces, no hex.
fn parse_decimal(digits: &[u8]) -> Result<u64, ParseError> {
    if digits.is_empty() {
        return Err(bad("empty Content-Length"));
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(bad("invalid Content-Length"));
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| bad("Content-Length too large"))
    })
}

/// Accumulates the transfer codings of all Transfer-Encoding headers, in order.
#[derive(Default)]
struct TransferCodings {
    present: bool,
    chunked_count: u32,
    chunked_last: bool,
    other: Option<String>,
}

impl TransferCodings {
    fn add(&mut self, raw: &[u8]) {
        self.present = true;
        for name in list_elements(raw) {
            // A coding with parameters (`chunked;q=1`) is not the bare
            // `chunked` we decode: 501, as in Puma, rather than a guess.
            if name.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.chunked_last = true;
            } else {
                self.chunked_last = false;
                if self.other.is_none() {
                    self.other = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }

    fn check(&self) -> Result<(), ParseError> {
        if self.chunked_count > 1 {
            return Err(bad("chunked transfer coding applied more than once"));
        }
        if self.chunked_count == 1 && !self.chunked_last {
            return Err(bad("chunked is not the final transfer coding"));
        }
        if let Some(other) = &self.other {
            return Err(ParseError::NotImplemented(format!(
                "unsupported transfer coding {other:?}"
            )));
        }
        if self.chunked_count == 0 {
            return Err(bad("empty Transfer-Encoding"));
        }
        Ok(())
    }
}

/// Non-empty, OWS-trimmed elements of a comma-separated header value; empty
/// elements are ignored as RFC 9110 §5.6.1 asks.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &[u8]) -> RequestHead {
        match parse_head(input) {
            Ok(Parsed::Complete(head)) => head,
            other => panic!("expected a complete head for {input:?}, got {other:?}"),
        }
    }

    fn err(input: &[u8]) -> ParseError {
        match parse_head(input) {
            Err(e) => e,
            other => panic!("expected an error for {input:?}, got {other:?}"),
        }
    }

    fn status(input: &[u8]) -> u16 {
        err(input).status()
    }

    /// Feeding every prefix must give Partial until the first decisive prefix,
    /// whose answer must equal the answer for the whole buffer.
    fn assert_split_independent(input: &[u8]) {
        let whole = parse_head(input);
        for len in 0..=input.len() {
            match parse_head(&input[..len]) {
                Ok(Parsed::Partial) => continue,
                first => {
                    assert_eq!(first, whole, "prefix of {len} bytes of {input:?}");
                    return;
                }
            }
        }
        assert_eq!(whole, Ok(Parsed::Partial));
    }

    #[test]
    fn simple_get() {
        let input = b"GET /hello?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let head = ok(input);
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/hello?x=1&y=2");
        assert_eq!(head.path, "/hello");
        assert_eq!(head.query, "x=1&y=2");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.head_len, input.len());
        assert_eq!(head.framing, BodyFraming::Empty);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        assert_eq!(
            head.headers,
            vec![
                Header {
                    name: "Host".into(),
                    value: b"example.com".to_vec()
                },
                Header {
                    name: "Accept".into(),
                    value: b"*/*".to_vec()
                },
            ]
        );
        assert_eq!(head.header("host"), Some(&b"example.com"[..]));
        assert_eq!(head.header("x-missing"), None);
    }

    #[test]
    fn header_names_keep_their_case_and_values_are_trimmed() {
        let head = ok(b"GET / HTTP/1.1\r\nX-CuStOm:   spaced value \t \r\nX-Empty:\r\n\r\n");
        assert_eq!(head.headers[0].name, "X-CuStOm");
        assert_eq!(head.headers[0].value, b"spaced value");
        assert_eq!(head.headers[1].name, "X-Empty");
        assert_eq!(head.headers[1].value, b"");
    }

    #[test]
    fn obs_text_and_htab_allowed_in_values() {
        let head = ok(b"GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\t\xff end\r\n\r\n");
        assert_eq!(head.headers[0].value, b"caf\xc3\xa9\t\xff end");
    }

    #[test]
    fn head_len_excludes_body_and_pipelined_bytes() {
        let input = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        let head = ok(input);
        assert_eq!(head.head_len, 39);
        assert_eq!(&input[head.head_len..head.head_len + 5], b"hello");
        assert_eq!(head.framing, BodyFraming::Length(5));
    }

    #[test]
    fn partial_until_complete() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for len in 0..input.len() {
            assert_eq!(parse_head(&input[..len]), Ok(Parsed::Partial), "len {len}");
        }
        assert!(matches!(parse_head(input), Ok(Parsed::Complete(_))));
    }

    #[test]
    fn answers_do_not_depend_on_read_boundaries() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        ];
        for case in cases {
            assert_split_independent(case);
        }
    }

    #[test]
    fn limits_do_not_depend_on_read_boundaries() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES + 100));
        assert_split_independent(long_target.as_bytes());
        let just_over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_split_independent(just_over.as_bytes());
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let input = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let head = ok(input);
        assert_eq!(head.path, "/");
        assert_eq!(head.head_len, input.len());
        assert_eq!(parse_head(b"\r\n"), Ok(Parsed::Partial));
        assert_eq!(parse_head(b"\r\n\r"), Ok(Parsed::Partial));
        assert_eq!(status(b"\nGET / HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn bare_lf_rejected_everywhere() {
        assert_eq!(status(b"GET / HTTP/1.1\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400);
        // Rejected as soon as it is seen, before the head is complete.
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\n"), 400);
    }

    #[test]
    fn bare_cr_rejected_everywhere() {
        assert_eq!(status(b"GET / HTTP/1.1\r\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a\rb HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\r\r\n"), 400);
        // A CR at the very end may still be followed by LF.
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nX: a\r"), Ok(Parsed::Partial));
    }

    #[test]
    fn malformed_request_lines() {
        for line in [
            &b"GET\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GE T / HTTP/1.1\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET \x7f HTTP/1.1\r\n\r\n",
            b"GET foo HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(status(line), 400, "{line:?}");
        }
    }

    #[test]
    fn http_1_0_and_1_x_only() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
        assert_eq!(ok(b"GET / HTTP/1.1\r\n\r\n").version, Version::Http11);
        // Later 1.x minors are served as 1.1 (RFC 9110 §2.5).
        for v in ["HTTP/1.2", "HTTP/1.9"] {
            let input = format!("GET / {v}\r\nHost: x\r\n\r\n");
            let head = ok(input.as_bytes());
            assert_eq!(
                (head.version, head.keep_alive),
                (Version::Http11, true),
                "{v}"
            );
        }
        for v in [
            "HTTP/2.0",
            "HTTP/0.9",
            "HTTP/1.",
            "HTTP/1.10",
            "HTTP/1.a",
            "HTTP/1",
            "HTTP/11.1",
            "HTTPS/1.1",
        ] {
            let input = format!("GET / {v}\r\n\r\n");
            assert_eq!(status(input.as_bytes()), 400, "{v}");
        }
    }

    #[test]
    fn methods_are_tokens() {
        assert_eq!(ok(b"PURGE / HTTP/1.1\r\n\r\n").method, "PURGE");
        assert_eq!(ok(b"M-SEARCH * HTTP/1.1\r\n\r\n").method, "M-SEARCH");
        assert_eq!(status(b"GET@ / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"G\0T / HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn invalid_header_names() {
        for input in [
            &b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX(y): x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\"y: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\0: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        ] {
            assert_eq!(status(input), 400, "{input:?}");
        }
    }

    #[test]
    fn control_characters_in_values() {
        for input in [
            &b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \0\r\n\r\n",
        ] {
            assert_eq!(status(input), 400, "{input:?}");
        }
    }

    #[test]
    fn obs_fold_rejected() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    }

    #[test]
    fn target_forms() {
        let head = ok(b"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\n\r\n");
        assert_eq!(head.target, "http://example.com:8080/a/b?c=d");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/a/b", "c=d"));

        let head = ok(b"GET https://example.com HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("", ""));

        let head = ok(b"GET http://example.com?x HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("", "x"));

        let head = ok(b"OPTIONS * HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("*", ""));

        let head = ok(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
        assert_eq!(head.target, "example.com:443");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("", ""));

        let head = ok(b"GET //double//slash HTTP/1.1\r\n\r\n");
        assert_eq!(head.path, "//double//slash");

        assert_eq!(status(b"GET example.com:443 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET 1http://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET ://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET *x HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn query_and_fragment() {
        let head = ok(b"GET /a?b=1#frag?x HTTP/1.1\r\n\r\n");
        assert_eq!(head.target, "/a?b=1#frag?x");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/a", "b=1"));

        let head = ok(b"GET /a#frag HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/a", ""));

        let head = ok(b"GET /a? HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/a", ""));

        let head = ok(b"GET /a?b?c HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/a", "b?c"));

        let head = ok(b"GET http://h/p?q#f HTTP/1.1\r\n\r\n");
        assert_eq!((head.path.as_str(), head.query.as_str()), ("/p", "q"));
    }

    #[test]
    fn uri_limit_on_complete_head() {
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(ok(at_limit.as_bytes()).target.len(), MAX_URI_BYTES);
        let over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(err(over.as_bytes()), ParseError::UriTooLong);
        let way_over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(13_000));
        assert_eq!(err(way_over.as_bytes()), ParseError::UriTooLong);
    }

    #[test]
    fn uri_limit_fails_early_on_unterminated_request_line() {
        let mut partial = b"GET /".to_vec();
        partial.resize(MAX_URI_BYTES + REQUEST_LINE_SLACK, b'a');
        assert_eq!(parse_head(&partial), Ok(Parsed::Partial));
        partial.push(b'a');
        assert_eq!(parse_head(&partial), Err(ParseError::UriTooLong));
    }

    #[test]
    fn header_limit_on_complete_head() {
        let filler = |n: usize| {
            let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
            let fixed = head.len() + 4;
            head.resize(head.len() + n - fixed, b'b');
            head.extend_from_slice(b"\r\n\r\n");
            head
        };
        let at_limit = filler(MAX_HEADER_BYTES);
        assert_eq!(ok(&at_limit).head_len, MAX_HEADER_BYTES);
        let over = filler(MAX_HEADER_BYTES + 1);
        assert_eq!(err(&over), ParseError::HeaderTooLarge);
        let mut with_body = filler(120 * 1024);
        with_body.extend_from_slice(b"body");
        assert_eq!(err(&with_body), ParseError::HeaderTooLarge);
    }

    #[test]
    fn header_limit_fails_early_on_unterminated_head() {
        let mut partial = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        partial.resize(MAX_HEADER_BYTES, b'b');
        assert_eq!(parse_head(&partial), Ok(Parsed::Partial));
        partial.push(b'b');
        assert_eq!(parse_head(&partial), Err(ParseError::HeaderTooLarge));
    }

    #[test]
    fn endless_leading_empty_lines_hit_the_header_limit() {
        let crlfs = b"\r\n".repeat(MAX_HEADER_BYTES / 2 + 1);
        assert_eq!(parse_head(&crlfs), Err(ParseError::HeaderTooLarge));
    }

    #[test]
    fn many_headers_beyond_the_inline_slots() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..500 {
            input.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let head = ok(&input);
        assert_eq!(head.headers.len(), 500);
        assert_eq!(head.headers[499].name, "X-499");
    }

    #[test]
    fn too_many_headers() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            input.extend_from_slice(b"a:\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert!(input.len() < MAX_HEADER_BYTES);
        assert_eq!(err(&input), ParseError::HeaderTooLarge);
    }

    #[test]
    fn content_length() {
        let cl = |v: &str| {
            let input = format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
            parse_head(input.as_bytes()).map(|p| match p {
                Parsed::Complete(h) => h.framing,
                Parsed::Partial => panic!("partial"),
            })
        };
        assert_eq!(cl("0"), Ok(BodyFraming::Length(0)));
        assert_eq!(cl("42"), Ok(BodyFraming::Length(42)));
        assert_eq!(cl("007"), Ok(BodyFraming::Length(7)));
        assert_eq!(cl("  5\t"), Ok(BodyFraming::Length(5)));
        assert_eq!(
            cl("18446744073709551615"),
            Ok(BodyFraming::Length(u64::MAX))
        );
        assert_eq!(cl("5, 5"), Ok(BodyFraming::Length(5)));
        assert_eq!(cl("5,5,5"), Ok(BodyFraming::Length(5)));
        for bad_value in [
            "",
            "-1",
            "+5",
            "5 5",
            "0x10",
            "1.0",
            "abc",
            "5,",
            ",5",
            "5, 6",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(
                cl(bad_value).map_err(|e| e.status()),
                Err(400),
                "{bad_value:?}"
            );
        }
    }

    #[test]
    fn repeated_content_length_headers() {
        let head = ok(b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: x\r\n\r\n"),
            400
        );
    }

    #[test]
    fn chunked_framing() {
        let head = ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(head.keep_alive);
        let head = ok(b"POST / HTTP/1.1\r\ntransfer-encoding:  CHUNKED \r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
        let head = ok(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
        // Empty list elements are ignored.
        let head = ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: , chunked,\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
    }

    #[test]
    fn transfer_encoding_wins_over_content_length_and_closes() {
        let head =
            ok(b"POST / HTTP/1.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(!head.keep_alive);
        // Content-Length is ignored entirely, even when malformed.
        let head =
            ok(b"POST / HTTP/1.1\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
    }

    #[test]
    fn transfer_coding_rules() {
        let te = |v: &str| {
            let input = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {v}\r\n\r\n");
            match parse_head(input.as_bytes()) {
                Ok(_) => 200,
                Err(e) => e.status(),
            }
        };
        assert_eq!(te("chunked"), 200);
        assert_eq!(te("gzip"), 501);
        assert_eq!(te("chunked;q=1"), 501);
        assert_eq!(te("chunked ; q=1"), 501);
        assert_eq!(te("gzip;level=1, chunked"), 501);
        assert_eq!(te("identity"), 501);
        assert_eq!(te("x-foo"), 501);
        assert_eq!(te("gzip, chunked"), 501);
        assert_eq!(te("deflate,chunked"), 501);
        assert_eq!(te("chunked, gzip"), 400);
        assert_eq!(te("chunked, chunked"), 400);
        assert_eq!(te("gzip, chunked, chunked"), 400);
        assert_eq!(te(""), 400);
        assert_eq!(te(" , "), 400);
    }

    #[test]
    fn transfer_codings_span_several_headers() {
        let two = |a: &str, b: &str| {
            let input = format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: {a}\r\nTransfer-Encoding: {b}\r\n\r\n"
            );
            parse_head(input.as_bytes())
                .map(|_| 200)
                .unwrap_or_else(|e| e.status())
        };
        assert_eq!(two("chunked", "chunked"), 400);
        assert_eq!(two("chunked", "gzip"), 400);
        assert_eq!(two("gzip", "chunked"), 501);
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |input: &[u8]| ok(input).keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: upgrade, Close\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nConnection: te\r\nConnection: close\r\n\r\n"
        ));
        assert!(ka(b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn expect_continue() {
        let ec = |input: &[u8]| ok(input).expect_continue;
        assert!(ec(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(ec(b"POST / HTTP/1.1\r\nexpect: 100-Continue\r\n\r\n"));
        assert!(!ec(b"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n"));
        assert!(!ec(b"POST / HTTP/1.1\r\n\r\n"));
        assert!(!ec(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn error_status_and_reason() {
        assert_eq!(bad("x").status(), 400);
        assert_eq!(ParseError::UriTooLong.status(), 414);
        assert_eq!(ParseError::HeaderTooLarge.status(), 431);
        assert_eq!(ParseError::NotImplemented("x".into()).status(), 501);
        assert!(bad("bare LF").reason().contains("bare LF"));
        assert!(ParseError::UriTooLong.to_string().contains("12288"));
    }

    #[test]
    fn version_strings() {
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
    }

    #[test]
    fn find_line_break_matches_a_naive_search() {
        let naive = |buf: &[u8], from: usize| {
            buf[from..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map(|p| from + p)
        };
        // Every position and neighbour of CR/LF, including bytes whose
        // subtraction borrows (0x00, 0x0B, 0x0E, 0x8D, 0xFF) next to them.
        let alphabet = [
            b'a', b'\r', b'\n', 0x00, 0x0b, 0x0c, 0x0e, 0x09, 0x8d, 0x8a, 0xff, 0x01,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..40 {
            for _ in 0..200 {
                let buf: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let pick = (seed % 24) as usize;
                        if pick < alphabet.len() {
                            alphabet[pick]
                        } else {
                            b'x'
                        }
                    })
                    .collect();
                for from in 0..=len {
                    assert_eq!(
                        find_line_break(&buf, from),
                        naive(&buf, from),
                        "{buf:?} from {from}"
                    );
                }
            }
        }
        assert_eq!(find_line_break(b"abc", 4), None);
    }

    #[test]
    fn trim_ows_trims_only_spaces_and_tabs() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b"\ra\r"), b"\ra\r");
    }

    #[test]
    fn a_head_sent_one_byte_per_read_is_scanned_once() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..2000 {
            input.extend_from_slice(format!("X-Header-{i}: some value {i}\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let mut scanner = HeadScanner::new();
        let mut head = None;
        for end in 1..=input.len() {
            match scanner.parse(&input[..end]) {
                Ok(Parsed::Partial) => {}
                Ok(Parsed::Complete(h)) => head = Some((end, h)),
                Err(e) => panic!("{e}"),
            }
        }
        let (end, head) = head.expect("complete");
        assert_eq!(end, input.len());
        assert_eq!(head.headers.len(), 2000);
        // Each byte is looked at once, plus once more for a CR that arrived
        // without its LF; rescanning would be ~len²/2 (here ~3·10⁹).
        assert!(
            scanner.work() <= 2 * input.len(),
            "{} for {} bytes",
            scanner.work(),
            input.len()
        );
        let mut by_lines = HeadScanner::new();
        for line_end in input
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\r\n")
            .map(|(i, _)| i + 2)
        {
            let _ = by_lines.parse(&input[..line_end]);
        }
        assert!(by_lines.work() <= input.len() + 4000, "{}", by_lines.work());
    }

    #[test]
    fn scanner_gives_the_stateless_answer_for_every_prefix_sequence() {
        let inputs: [&[u8]; 6] = [
            b"\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\nbody",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\nb\r\n\r\n",
            b"GET / HTTP/1.9\r\n\r\n",
            b"\r\n\x16\x03\x01\x02\x00",
            b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n",
        ];
        for input in inputs {
            let whole = parse_head(input);
            for step in 1..4 {
                let mut scanner = HeadScanner::new();
                let mut answer = Ok(Parsed::Partial);
                let mut end = 0;
                while answer == Ok(Parsed::Partial) && end < input.len() {
                    end = (end + step).min(input.len());
                    answer = scanner.parse(&input[..end]);
                }
                assert_eq!(answer, whole, "{input:?} in steps of {step}");
            }
        }
    }

    #[test]
    fn openings_that_can_never_be_http_are_rejected_at_once() {
        let not_http = |input: &[u8]| match parse_head(input) {
            Err(ParseError::NotHttp(what)) => Some(what),
            _ => None,
        };
        // A TLS ClientHello's record header, even before the rest arrives.
        assert_eq!(
            not_http(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Some(NotHttp::Tls)
        );
        assert_eq!(not_http(b"\x16"), Some(NotHttp::Tls));
        assert_eq!(not_http(b"SSH-2.0-OpenSSH_9.2p1\r\n"), Some(NotHttp::Ssh));
        assert_eq!(not_http(b"SSH-"), Some(NotHttp::Ssh));
        assert_eq!(not_http(b"\0"), Some(NotHttp::NotAToken));
        assert_eq!(not_http(b"\r\n\xff"), Some(NotHttp::NotAToken));
        // Found by fuzzing: the reason must not depend on the read boundary
        // after the first byte (0x16 then 0x01 was "TLS" when split, not whole).
        assert_eq!(not_http(b"\x16\x01"), Some(NotHttp::Tls));
        assert_eq!(not_http(b"\x16\xffGE"), Some(NotHttp::Tls));
        assert_eq!(ParseError::NotHttp(NotHttp::Tls).status(), 400);
        assert!(ParseError::NotHttp(NotHttp::Tls)
            .reason()
            .contains("TLS handshake on a plain port"));
        // Prefixes of real requests wait.
        for partial in [&b"G"[..], b"SSH", b"\r\n", b"\r", b"GET / HTTP/1.1\r\n"] {
            assert_eq!(parse_head(partial), Ok(Parsed::Partial), "{partial:?}");
        }
    }

    #[test]
    fn a_bad_request_line_fails_before_the_rest_of_the_head() {
        for line in [
            &b"GARBAGE\r\n"[..],
            b"GET / HTTP/2.0\r\n",
            b"GET /a b HTTP/1.1\r\n",
            b"GET / HTTP/1.1 \r\n",
        ] {
            assert_eq!(status(line), 400, "{line:?}");
        }
    }
}
