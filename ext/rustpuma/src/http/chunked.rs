//! Incremental decoder for `Transfer-Encoding: chunked` request bodies
//! (RFC 9112 §7.1).
//!
//! The reactor feeds whatever a read returned; the decoder keeps its place in
//! a small state machine, so input may be split at any byte. Chunk data is
//! handed to a sink as slices of the input, without copying. Decoding stops
//! right after the final CRLF so that a pipelined request that follows stays
//! in the caller's buffer.
//!
//! Everything the server does not use is skipped but bounded, so a client
//! cannot make us buffer or spin forever: chunk extensions (per size line,
//! and per body by Puma's rule: extension bytes may exceed data bytes by
//! less than 16 KiB), trailer fields (in total) and the number of hex digits
//! in a chunk size. A chunk that would take the body past `i64::MAX` bytes
//! (the largest file offset) can never be stored and is rejected at once.
//! Line endings must be CRLF, as in the request head, so that we frame the
//! body exactly as a strict front-end proxy would.

use std::fmt;

/// Longest chunk-size line (size, whitespace and extensions, without CRLF).
pub(crate) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most trailer bytes (all field lines together, CRLFs included).
pub(crate) const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// 16 hex digits fill a u64; more could only overflow or be padding abuse.
const MAX_SIZE_DIGITS: u8 = 16;
/// Puma's `MAX_CHUNK_EXCESS`: how far the extension bytes of a body's size
/// lines may run ahead of its data bytes. Without it a client could send
/// megabytes of extensions for a few bytes of body, all parsed and dropped.
pub(crate) const MAX_EXTENSION_EXCESS: i64 = 16 * 1024;
/// Largest body a chunk may take us to: bodies beyond go to a temp file,
/// whose offsets are `i64`.
pub(crate) const MAX_BODY_BYTES: u64 = i64::MAX as u64;

/// A malformed chunked body. The connection cannot be resynchronised after
/// one, so the caller answers 400 and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedError {
    /// What was wrong with the framing (size line, extension, trailer, CRLF).
    BadChunk(String),
}

impl ChunkedError {
    /// HTTP status for the canned error response.
    #[must_use]
    pub fn status(&self) -> u16 {
        400
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkedError::BadChunk(why) => write!(f, "bad chunked body: {why}"),
        }
    }
}

impl std::error::Error for ChunkedError {}

/// Error from [`ChunkedDecoder::decode`]: either the body is malformed or the
/// sink refused the data (e.g. a body size limit or a failed tempfile write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError<E> {
    /// The body's framing is malformed.
    Chunk(ChunkedError),
    /// The sink refused the data.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for DecodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Chunk(e) => e.fmt(f),
            DecodeError::Sink(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for DecodeError<E> {}

impl<E> From<ChunkedError> for DecodeError<E> {
    fn from(e: ChunkedError) -> Self {
        DecodeError::Chunk(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace between the size and `;` or CR.
    SizeWs,
    /// Chunk extensions, skipped up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer field line, or of the final empty line.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// State machine decoding one chunked body; create a new one per request.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    line_len: usize,
    remaining: u64,
    trailer_len: usize,
    total: u64,
    /// Extension bytes minus data bytes so far (Puma's "chunk excess").
    excess: i64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn bad(why: &str) -> ChunkedError {
    ChunkedError::BadChunk(why.to_owned())
}

/// Bytes that may not appear inside an extension or trailer line: the same
/// controls a header value may not contain. CR and LF are handled by states.
fn is_forbidden_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    #[must_use]
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            remaining: 0,
            trailer_len: 0,
            total: 0,
            excess: 0,
        }
    }

    /// Feeds bytes; decoded data is passed to `sink` (possibly in several
    /// calls). Returns how many input bytes were consumed and whether the body
    /// (trailers and final CRLF included) is complete. Bytes after the end are
    /// not consumed. Unless the body is complete or an error is returned, all
    /// of `input` is consumed.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Chunk`] for a malformed body (answer 400 and close), or
    /// [`DecodeError::Sink`] with whatever the sink returned.
    pub fn decode<E>(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(usize, bool), DecodeError<E>> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    // Hand over as much of the chunk as we have in one go.
                    let available = (input.len() - pos) as u64;
                    let n = self.remaining.min(available) as usize;
                    let data = &input[pos..pos + n];
                    pos += n;
                    self.remaining -= n as u64;
                    self.total += n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    sink(data).map_err(DecodeError::Sink)?;
                }
                _ => {
                    self.step(input[pos])?;
                    pos += 1;
                }
            }
        }
        Ok((pos, self.state == State::Done))
    }

    /// Decoded body bytes so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes of the current chunk announced but not received yet.
    #[must_use]
    pub(crate) fn pending(&self) -> u64 {
        if self.state == State::Data {
            self.remaining
        } else {
            0
        }
    }

    /// Whether the final CRLF has been consumed.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advances over one framing byte (never called in `Data` or `Done`).
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Size => match hex_value(b) {
                Some(d) => {
                    if self.digits == MAX_SIZE_DIGITS {
                        return Err(bad("chunk size has more than 16 hex digits"));
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    self.digits += 1;
                    self.size_line_byte()?;
                }
                None if self.digits == 0 => return Err(bad("invalid chunk size")),
                None => self.after_size(b)?,
            },
            State::SizeWs => self.after_size(b)?,
            State::Extension => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(bad("bare LF in chunk extension")),
                _ if is_forbidden_control(b) => {
                    return Err(bad("control character in chunk extension"))
                }
                _ => self.size_line_byte()?,
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(bad("chunk size line not terminated by CRLF"));
                }
                if self.size == 0 {
                    self.state = State::TrailerStart;
                } else {
                    if self.size > MAX_BODY_BYTES - self.total {
                        return Err(bad("chunk size can never fit (body beyond 2^63 bytes)"));
                    }
                    // Counted as Puma does: data pays for extensions, and
                    // the last chunk (size 0) is not counted.
                    let extension = (self.line_len - usize::from(self.digits)) as i64;
                    self.excess += extension - self.size as i64;
                    if self.excess >= MAX_EXTENSION_EXCESS {
                        return Err(bad("chunk extensions exceed the data by 16 KiB or more"));
                    }
                    self.remaining = self.size;
                    self.state = State::Data;
                }
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
                self.state = State::Size;
            }
            State::TrailerStart | State::Trailer => match b {
                b'\r' if self.state == State::TrailerStart => self.state = State::EndLf,
                b'\r' => {
                    self.trailer_byte()?;
                    self.state = State::TrailerLf;
                }
                b'\n' => return Err(bad("bare LF in trailer")),
                _ if is_forbidden_control(b) => return Err(bad("control character in trailer")),
                _ => {
                    self.trailer_byte()?;
                    self.state = State::Trailer;
                }
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in trailer"));
                }
                self.trailer_byte()?;
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(bad("chunked body not terminated by CRLF"));
                }
                self.state = State::Done;
            }
            State::Data | State::Done => unreachable!("handled by decode"),
        }
        Ok(())
    }

    /// After the size digits: optional whitespace (BWS), then `;` or CR.
    fn after_size(&mut self, b: u8) -> Result<(), ChunkedError> {
        match b {
            b' ' | b'\t' => self.state = State::SizeWs,
            b';' => self.state = State::Extension,
            b'\r' => {
                self.state = State::SizeLf;
                return Ok(());
            }
            _ => return Err(bad("invalid chunk size")),
        }
        self.size_line_byte()
    }

    fn size_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(bad("chunk size line too long"));
        }
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_BYTES {
            return Err(bad("trailer section too large"));
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Decodes `input` fed in the given pieces; returns (body, consumed, done).
    fn feed(pieces: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        for piece in pieces {
            let mut sink = |d: &[u8]| -> Result<(), Infallible> {
                body.extend_from_slice(d);
                Ok(())
            };
            let (n, finished) = decoder.decode(piece, &mut sink).map_err(|e| match e {
                DecodeError::Chunk(c) => c,
                DecodeError::Sink(never) => match never {},
            })?;
            consumed += n;
            if finished {
                done = true;
                break;
            }
            assert_eq!(n, piece.len(), "unfinished decoder must consume everything");
        }
        assert_eq!(decoder.total(), body.len() as u64);
        assert_eq!(decoder.is_done(), done);
        Ok((body, consumed, done))
    }

    fn whole(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        feed(&[input])
    }

    /// Every two-piece split and the byte-by-byte feed agree with one piece.
    fn assert_split_independent(input: &[u8]) {
        let expected = whole(input);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(feed(&[a, b]), expected, "split at {i} of {input:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&bytes), expected, "byte by byte: {input:?}");
    }

    fn body_of(input: &[u8]) -> Vec<u8> {
        let (body, consumed, done) = whole(input).expect("valid body");
        assert!(done);
        assert_eq!(consumed, input.len());
        body
    }

    fn is_bad(input: &[u8]) -> bool {
        whole(input).is_err()
    }

    #[test]
    fn single_chunk() {
        assert_eq!(body_of(b"5\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn several_chunks_and_hex_sizes() {
        let input = b"3\r\nabc\r\nA\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n";
        assert_eq!(body_of(input), b"abc0123456789abcdefghij");
        let big = [b'x'; 0x1f];
        let mut input = b"1F\r\n".to_vec();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(body_of(&input), big);
    }

    #[test]
    fn empty_body() {
        assert_eq!(body_of(b"0\r\n\r\n"), b"");
        assert_eq!(body_of(b"000\r\n\r\n"), b"");
    }

    #[test]
    fn leading_zeros_up_to_sixteen_digits() {
        assert_eq!(body_of(b"0000000000000003\r\nabc\r\n0\r\n\r\n"), b"abc");
        assert!(is_bad(b"00000000000000003\r\nabc\r\n0\r\n\r\n"));
    }

    #[test]
    fn size_cannot_overflow() {
        // Up to 2^63-1 bytes fit; the decoder then waits for that much data.
        let (_, consumed, done) = whole(b"7fffffffffffffff\r\nabc").unwrap();
        assert_eq!((consumed, done), (21, false));
        // Beyond, or past it together with earlier chunks, can never fit.
        assert!(is_bad(b"8000000000000000\r\n"));
        assert!(is_bad(b"ffffffffffffffff\r\nabc"));
        assert!(is_bad(b"1\r\na\r\n7fffffffffffffff\r\n"));
        assert!(is_bad(b"10000000000000000\r\n"));
        assert!(is_bad(b"fffffffffffffffff"));
    }

    #[test]
    fn extensions_are_skipped() {
        let input = b"5;name=value\r\nhello\r\n6 ; a=\"q;d\" ;b\r\n world\r\n0;last\r\n\r\n";
        assert_eq!(body_of(input), b"hello world");
    }

    #[test]
    fn extension_line_is_bounded() {
        let mut ok = b"1;".to_vec();
        ok.resize(MAX_CHUNK_LINE, b'x');
        ok.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        assert_eq!(body_of(&ok), b"a");
        let mut too_long = b"1;".to_vec();
        too_long.resize(MAX_CHUNK_LINE + 1, b'x');
        assert!(is_bad(&too_long));
    }

    #[test]
    fn whitespace_after_size() {
        assert_eq!(body_of(b"3 \t\r\nabc\r\n0\r\n\r\n"), b"abc");
        assert!(is_bad(b"3 4\r\nabc\r\n0\r\n\r\n"));
        assert!(is_bad(b" 3\r\nabc\r\n0\r\n\r\n"));
    }

    #[test]
    fn trailers_are_skipped() {
        let input = b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum: 123\r\n\r\n";
        assert_eq!(body_of(input), b"abc");
    }

    #[test]
    fn trailer_section_is_bounded() {
        let line = |len: usize| {
            let mut l = b"X: ".to_vec();
            l.resize(len - 2, b'v');
            l.extend_from_slice(b"\r\n");
            l
        };
        let mut ok = b"0\r\n".to_vec();
        ok.extend_from_slice(&line(MAX_TRAILER_BYTES));
        ok.extend_from_slice(b"\r\n");
        assert_eq!(body_of(&ok), b"");
        let mut too_big = b"0\r\n".to_vec();
        too_big.extend_from_slice(&line(MAX_TRAILER_BYTES + 1));
        too_big.extend_from_slice(b"\r\n");
        assert!(is_bad(&too_big));
    }

    #[test]
    fn bad_sizes() {
        for input in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b";ext\r\n",
            b"5\0\r\n",
        ] {
            assert!(is_bad(input), "{input:?}");
        }
    }

    #[test]
    fn crlf_is_required() {
        for input in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\rhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello0\r\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\n\rX",
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: y\rZ\r\n\r\n",
        ] {
            assert!(is_bad(input), "{input:?}");
        }
    }

    #[test]
    fn control_characters_rejected_in_extensions_and_trailers() {
        assert!(is_bad(b"1;a\0b\r\nx\r\n0\r\n\r\n"));
        assert!(is_bad(b"1;a\x7f\r\nx\r\n0\r\n\r\n"));
        assert!(is_bad(b"0\r\nX: a\x01\r\n\r\n"));
        assert_eq!(body_of(b"1;a\tb\r\nx\r\n0\r\nX:\ta\xff\r\n\r\n"), b"x");
    }

    #[test]
    fn data_may_contain_anything() {
        assert_eq!(body_of(b"6\r\n\r\n\0\n\r0\r\n0\r\n\r\n"), b"\r\n\0\n\r0");
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (body, consumed, done) = whole(input).unwrap();
        assert_eq!(body, b"abc");
        assert!(done);
        assert_eq!(&input[consumed..], b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn done_decoder_consumes_nothing_more() {
        let mut decoder = ChunkedDecoder::new();
        let mut sink = |_: &[u8]| -> Result<(), Infallible> { Ok(()) };
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut sink), Ok((5, true)));
        assert_eq!(decoder.decode(b"more", &mut sink), Ok((0, true)));
        assert_eq!(decoder.decode(b"", &mut sink), Ok((0, true)));
    }

    #[test]
    fn partial_input_is_not_done() {
        let (body, consumed, done) = whole(b"5\r\nhel").unwrap();
        assert_eq!((body.as_slice(), consumed, done), (&b"hel"[..], 6, false));
        let (_, _, done) = whole(b"5\r\nhello\r\n0\r\n\r").unwrap();
        assert!(!done);
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        for input in [
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
            b"3;x=y\r\nabc\r\nA\r\n0123456789\r\n0;z\r\nT: v\r\nU: w\r\n\r\nNEXT",
            b"1 \r\na\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"00000000000000001\r\n",
            b"0\r\nX: y\rZ\r\n\r\n",
        ] {
            assert_split_independent(input);
        }
    }

    #[test]
    fn sink_errors_are_passed_through() {
        let mut decoder = ChunkedDecoder::new();
        let mut sink = |d: &[u8]| if d.len() > 2 { Err("too big") } else { Ok(()) };
        assert_eq!(
            decoder.decode(b"5\r\nhello\r\n0\r\n\r\n", &mut sink),
            Err(DecodeError::Sink("too big"))
        );
    }

    #[test]
    fn errors_map_to_400() {
        assert_eq!(bad("x").status(), 400);
        assert_eq!(bad("x").to_string(), "bad chunked body: x");
        let e: DecodeError<Infallible> = bad("y").into();
        assert_eq!(e.to_string(), "bad chunked body: y");
    }

    /// `count` chunks of one byte, each with `ext` extension bytes.
    fn with_extensions(count: usize, ext: usize) -> Vec<u8> {
        let mut input = Vec::new();
        for _ in 0..count {
            input.extend_from_slice(b"1;");
            input.resize(input.len() + ext - 1, b'e');
            input.extend_from_slice(b"\r\nx\r\n");
        }
        input.extend_from_slice(b"0\r\n\r\n");
        input
    }

    #[test]
    fn extension_bytes_are_capped_by_the_data_they_come_with() {
        // 64 extension bytes per data byte: 63 of excess per chunk.
        let under = with_extensions(260, 64); // 16 380 < 16 384
        assert_eq!(body_of(&under).len(), 260);
        let over = with_extensions(261, 64); // 16 443
        let err = whole(&over).unwrap_err();
        assert!(err.to_string().contains("16 KiB"), "{err}");
        // Large chunks pay for their extensions: 200 MB of extensions are
        // never accepted for a 65 KB body, but long extensions on big chunks are.
        let mut big = Vec::new();
        for _ in 0..10 {
            big.extend_from_slice(b"1000;");
            big.resize(big.len() + 4000, b'e');
            big.extend_from_slice(b"\r\n");
            big.resize(big.len() + 0x1000, b'd');
            big.extend_from_slice(b"\r\n");
        }
        big.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(body_of(&big).len(), 10 * 0x1000);
    }

    #[test]
    fn pending_is_what_the_current_chunk_still_announces() {
        let mut decoder = ChunkedDecoder::new();
        let mut sink = |_: &[u8]| -> Result<(), Infallible> { Ok(()) };
        decoder.decode(b"10\r\nabc", &mut sink).unwrap();
        assert_eq!(decoder.pending(), 13);
        decoder.decode(b"defghijklmnop\r\n", &mut sink).unwrap();
        assert_eq!(decoder.pending(), 0);
    }
}
