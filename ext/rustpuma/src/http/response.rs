//! Response serialisation: the status line, Rack headers and chunked body
//! framing, written into a caller-owned buffer, plus the canned responses the
//! reactor sends by itself when a request is rejected before reaching Ruby.
//!
//! Rack apps hand us arbitrary strings, so header names and values are
//! validated here: a newline smuggled into a value must never start a header
//! line of its own (response splitting). Multi-line values follow Rack's
//! convention (one header line per `\n`-separated part) the way Puma does.

use crate::http::parser::Version;

/// Terminates a chunked response body (last-chunk plus an empty trailer section).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Reason phrase for `status`: the IANA registry names (RFC 9110 wording),
/// and Puma's `"CUSTOM"` for codes without one, so status lines match Puma's.
#[must_use]
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm A Teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "CUSTOM",
    }
}

/// Appends `"HTTP/1.x <status> <reason>\r\n"`. Like Puma, a 1.0 request gets
/// an `HTTP/1.0` status line: a 1.0 client may not understand 1.1 framing.
pub(crate) fn push_status_line(out: &mut Vec<u8>, version: Version, status: u16) {
    if status == 200 {
        // By far the most common line; skip the formatting.
        out.extend_from_slice(match version {
            Version::Http11 => b"HTTP/1.1 200 OK\r\n",
            Version::Http10 => b"HTTP/1.0 200 OK\r\n",
        });
        return;
    }
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 `tchar`: the only bytes allowed in a header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Non-empty and made of RFC 9110 token characters only.
#[must_use]
pub(crate) fn is_valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// No CR, LF, NUL or other control (0x00-0x1F except HTAB, and 0x7F);
/// obs-text (0x80-0xFF) is allowed since Rack strings may be UTF-8.
#[must_use]
pub(crate) fn is_valid_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Rack keys that are for the server, not the client: `rack.*` (e.g.
/// `rack.hijack`) and the Rack 1 `Status` key, which Puma drops as well.
fn is_rack_internal(name: &[u8]) -> bool {
    (name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"rack."))
        || name.eq_ignore_ascii_case(b"status")
}

/// Writes one Rack header as `Name: value\r\n` lines and returns how many
/// lines were written.
///
/// Names starting with `rack.` (case-insensitive), the name `status`, and
/// invalid names are dropped. The value is split on `\n` into one line per
/// part, like Ruby's `String#split("\n")`, so trailing empty parts produce no
/// line, but an entirely empty value still produces one `Name: ` line. Parts
/// with control characters (a stray CR included) are dropped one by one.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> usize {
    if is_rack_internal(name) || !is_valid_header_name(name) {
        return 0;
    }
    if value.is_empty() {
        push_header_line(out, name, value);
        return 1;
    }
    let mut end = value.len();
    while end > 0 && value[end - 1] == b'\n' {
        end -= 1;
    }
    if end == 0 {
        return 0;
    }
    let mut written = 0;
    for part in value[..end].split(|&b| b == b'\n') {
        if is_valid_header_value(part) {
            push_header_line(out, name, part);
            written += 1;
        }
    }
    written
}

fn push_header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `Content-Length: <len>\r\n`.
pub(crate) fn push_content_length(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Ends one chunk's data.
pub(crate) const CHUNK_END: &[u8] = b"\r\n";

/// Appends the size line of a chunk of `len` bytes, `"<hex len>\r\n"`.
pub(crate) fn push_chunk_head(out: &mut Vec<u8>, len: usize) {
    push_hex(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

/// An app's `Content-Length` value when it is one plain decimal number
/// (spaces around it allowed); `None` for anything else (a second value
/// after a newline, a sign, letters, an overflow). An unusable value is
/// dropped and the length taken from the body, as Puma drops a value with
/// control characters, so the head never carries two different lengths.
#[must_use]
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    let trimmed = value.trim_ascii();
    if trimmed.is_empty() || trimmed.len() > 19 || !trimmed.iter().all(u8::is_ascii_digit) {
        return None;
    }
    trimmed.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether a response with this status may carry a body. 1xx, 204 and 304
/// never do (RFC 9112 §6.3), whatever their headers say. 205 is left to the
/// app: its body must be empty, but clients still frame it normally, so it
/// needs a `Content-Length: 0`.
#[must_use]
pub(crate) fn body_allowed(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

/// Complete response for a request rejected by the reactor itself. It
/// declares an empty body and closes, so no client waits for more and the
/// unread rest of a bad request is never taken for a new one.
#[must_use]
pub(crate) fn error_response(status: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    push_status_line(&mut out, Version::Http11, status);
    out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
    out
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One chunk as the chunked encoder writes it (`push_chunk_head`, data,
    /// `CHUNK_END`); empty data writes nothing, as a zero-size chunk would
    /// end the body.
    fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        push_chunk_head(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    }

    fn status_line(version: Version, status: u16) -> Vec<u8> {
        let mut out = Vec::new();
        push_status_line(&mut out, version, status);
        out
    }

    fn header(name: &[u8], value: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let n = push_header(&mut out, name, value);
        (out, n)
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(103), "Early Hints");
        assert_eq!(reason_phrase(404), "Not Found");
        assert_eq!(reason_phrase(414), "URI Too Long");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(501), "Not Implemented");
        assert_eq!(reason_phrase(299), "CUSTOM");
        assert_eq!(reason_phrase(0), "CUSTOM");
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(Version::Http11, 200), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(status_line(Version::Http10, 200), b"HTTP/1.0 200 OK\r\n");
        assert_eq!(
            status_line(Version::Http11, 404),
            b"HTTP/1.1 404 Not Found\r\n"
        );
        assert_eq!(
            status_line(Version::Http10, 304),
            b"HTTP/1.0 304 Not Modified\r\n"
        );
        assert_eq!(
            status_line(Version::Http11, 599),
            b"HTTP/1.1 599 CUSTOM\r\n"
        );
        assert_eq!(
            status_line(Version::Http11, 103),
            b"HTTP/1.1 103 Early Hints\r\n"
        );
    }

    #[test]
    fn status_line_appends() {
        let mut out = b"x".to_vec();
        push_status_line(&mut out, Version::Http11, 500);
        assert_eq!(out, b"xHTTP/1.1 500 Internal Server Error\r\n");
    }

    #[test]
    fn header_names() {
        assert!(is_valid_header_name(b"Content-Type"));
        assert!(is_valid_header_name(b"x!#$%&'*+-.^_`|~09az"));
        for bad in [
            &b""[..],
            b"A B",
            b"A:B",
            b"A\r",
            b"A\n",
            b"A\0",
            b"(x)",
            b"a\"",
            b"\xc3\xa9",
            b"a/b",
        ] {
            assert!(!is_valid_header_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn header_values() {
        assert!(is_valid_header_value(b""));
        assert!(is_valid_header_value(b"text/html; charset=utf-8"));
        assert!(is_valid_header_value(b"a\tb \xc3\xa9 ~"));
        for bad in [
            &b"a\rb"[..],
            b"a\nb",
            b"\0",
            b"a\x01",
            b"\x1f",
            b"\x7f",
            b"\x1b[31m",
        ] {
            assert!(!is_valid_header_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn plain_header() {
        assert_eq!(
            header(b"Content-Type", b"text/plain"),
            (b"Content-Type: text/plain\r\n".to_vec(), 1)
        );
    }

    #[test]
    fn empty_value_still_writes_the_header() {
        assert_eq!(header(b"X-Empty", b""), (b"X-Empty: \r\n".to_vec(), 1));
    }

    #[test]
    fn multi_line_values_become_several_headers() {
        assert_eq!(
            header(b"Set-Cookie", b"a=1\nb=2"),
            (b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n".to_vec(), 2)
        );
        // Like Ruby's split: trailing empty parts vanish, inner ones stay.
        assert_eq!(header(b"X", b"a\n"), (b"X: a\r\n".to_vec(), 1));
        assert_eq!(
            header(b"X", b"a\n\nb"),
            (b"X: a\r\nX: \r\nX: b\r\n".to_vec(), 3)
        );
        assert_eq!(header(b"X", b"\n"), (Vec::new(), 0));
    }

    #[test]
    fn header_injection_is_defused() {
        // The CR-carrying part is dropped; the rest cannot start a new line.
        assert_eq!(
            header(b"Location", b"/x\r\nSet-Cookie: evil=1"),
            (b"Location: Set-Cookie: evil=1\r\n".to_vec(), 1)
        );
        assert_eq!(header(b"X", b"a\rb"), (Vec::new(), 0));
        assert_eq!(
            header(b"X", b"ok\nbad\0\nfine"),
            (b"X: ok\r\nX: fine\r\n".to_vec(), 2)
        );
    }

    #[test]
    fn internal_and_invalid_names_dropped() {
        assert_eq!(header(b"rack.hijack", b"x").1, 0);
        assert_eq!(header(b"Rack.Something", b"x").1, 0);
        assert_eq!(header(b"status", b"200").1, 0);
        assert_eq!(header(b"Status", b"200").1, 0);
        assert_eq!(header(b"Bad Name", b"x").1, 0);
        assert_eq!(header(b"X\r\nInjected", b"x").1, 0);
        assert_eq!(header(b"", b"x").1, 0);
        // Only the exact prefix and exact name are internal.
        assert_eq!(header(b"rackx", b"y").1, 1);
        assert_eq!(header(b"Status-Code", b"y").1, 1);
        assert_eq!(header(b"X-rack.y", b"y").1, 1);
    }

    #[test]
    fn content_length_header() {
        let mut out = Vec::new();
        push_content_length(&mut out, 0);
        push_content_length(&mut out, 1234567890123);
        assert_eq!(
            out,
            b"Content-Length: 0\r\nContent-Length: 1234567890123\r\n"
        );
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"hello");
        push_chunk(&mut out, b"");
        push_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        let mut expected = b"5\r\nhello\r\n1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        let mut out = Vec::new();
        push_chunk(&mut out, &vec![0u8; 0x1000]);
        assert!(out.starts_with(b"1000\r\n"));
        let mut out = Vec::new();
        push_hex(&mut out, u64::MAX);
        assert_eq!(out, b"ffffffffffffffff");
    }

    #[test]
    fn chunks_round_trip_through_the_decoder() {
        use crate::http::chunked::ChunkedDecoder;
        let mut wire = Vec::new();
        push_chunk(&mut wire, b"hello ");
        push_chunk(&mut wire, b"world");
        wire.extend_from_slice(LAST_CHUNK);
        let mut body = Vec::new();
        let mut sink = |d: &[u8]| -> Result<(), ()> {
            body.extend_from_slice(d);
            Ok(())
        };
        let result = ChunkedDecoder::new().decode(&wire, &mut sink);
        assert_eq!(result, Ok((wire.len(), true)));
        assert_eq!(body, b"hello world");
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(
            parse_content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b" ",
            b"5\n6",
            b"5\n5",
            b"+5",
            b"-1",
            b"0x10",
            b"5 5",
            b"1e3",
            b"abc",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bodies_allowed() {
        for s in [100, 101, 103, 199, 204, 304] {
            assert!(!body_allowed(s), "{s}");
        }
        for s in [200, 201, 205, 206, 301, 404, 500] {
            assert!(body_allowed(s), "{s}");
        }
    }

    #[test]
    fn error_responses() {
        assert_eq!(
            error_response(400),
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            error_response(431),
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            error_response(414),
            b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            error_response(501),
            b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn decimals() {
        let mut out = Vec::new();
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }
}
