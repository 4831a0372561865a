//! The writing side of one response, as a small state machine: the head goes
//! out, then the body through its encoder, then the response is either
//! `Done` (the client can tell where it ended, so the connection may serve
//! another request) or `Closed` (the body was cut short, ran over what the
//! head declared, or has no end the client could see).
//!
//! Only `Done` keeps a connection alive. Everything that can go wrong half
//! way (an app body raising in `each`, a file that shrank, a client that
//! went away) leaves the machine in `Body` or moves it to `Closed`, and the
//! connection is closed: the next pipelined response can never be read as
//! the rest of a broken body. This mirrors hyper's `Writing` states
//! (`proto/h1/conn.rs`), where keep-alive is decided only after `end_body`.

use crate::http::chunked::ChunkedDecoder;
use crate::http::response::{push_chunk_head, CHUNK_END, LAST_CHUNK};

/// How the body is delimited on the wire.
#[derive(Debug, Clone)]
pub(crate) enum Encoder {
    /// `Content-Length`: exactly this many bytes are still owed. More are
    /// never sent; fewer mean the response is broken.
    Length(u64),
    /// Our own `Transfer-Encoding: chunked`.
    Chunked,
    /// No framing: the body ends when we close (HTTP/1.0 without a length,
    /// or a transfer coding the app applied that we cannot follow).
    CloseDelimited,
    /// The app declared `Transfer-Encoding: chunked` and encodes the body
    /// itself (as Rack 2's `Rack::Chunked` does); its bytes go out as they
    /// are, followed by a decoder so that nothing after the app's last chunk
    /// is sent and an unfinished stream is never kept alive.
    AppChunked(ChunkedDecoder),
    /// A response without a body on the wire (HEAD, 1xx, 204, 304): the
    /// app's body is read and dropped.
    Discard,
}

/// Where the response stands. See the module comment.
#[derive(Debug, Clone, Default)]
pub(crate) enum Writing {
    /// Nothing sent yet.
    #[default]
    Init,
    /// The head is out; the body follows through this encoder.
    Body(Encoder),
    /// Complete: the connection may be kept.
    Done,
    /// Aborted or not delimitable: the connection must be closed.
    Closed,
}

/// What to send for one piece of body data: `prefix`, then the first `take`
/// bytes of the piece, then `suffix`. Callers that write from the app's own
/// buffers (without copying) use this; others call [`Writing::encode`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    pub prefix: Vec<u8>,
    pub take: usize,
    pub suffix: &'static [u8],
}

impl Writing {
    /// The head has been produced; the body is framed by `encoder`.
    pub(crate) fn start(encoder: Encoder) -> Self {
        Writing::Body(encoder)
    }

    /// Frames `len` bytes of body data. Data the framing cannot carry (past a
    /// declared length, after the app's last chunk, or after an abort) is
    /// cut, and the response becomes `Closed`.
    pub(crate) fn frame(&mut self, data: &[u8]) -> Frame {
        let len = data.len();
        let Writing::Body(encoder) = self else {
            // Body data after the end, or before the head: never sent.
            if len > 0 {
                *self = Writing::Closed;
            }
            return Frame::default();
        };
        match encoder {
            Encoder::Length(remaining) => {
                let take = (*remaining).min(len as u64) as usize;
                *remaining -= take as u64;
                if take < len {
                    // More than the head declared: the rest must not reach
                    // the client, where it would be read as the next response.
                    *self = Writing::Closed;
                }
                Frame {
                    take,
                    ..Frame::default()
                }
            }
            Encoder::Chunked => {
                if len == 0 {
                    // A zero-size chunk would end the body.
                    return Frame::default();
                }
                let mut prefix = Vec::with_capacity(20);
                push_chunk_head(&mut prefix, len);
                Frame {
                    prefix,
                    take: len,
                    suffix: CHUNK_END,
                }
            }
            Encoder::CloseDelimited => Frame {
                take: len,
                ..Frame::default()
            },
            Encoder::AppChunked(decoder) => {
                let mut ignore = |_: &[u8]| Ok::<(), ()>(());
                match decoder.decode(data, &mut ignore) {
                    Ok((take, _)) => {
                        if take < len {
                            // Bytes after the app's last chunk.
                            *self = Writing::Closed;
                        }
                        Frame {
                            take,
                            ..Frame::default()
                        }
                    }
                    Err(_) => {
                        // The app's framing is broken; what went out so far
                        // cannot be repaired, so nothing more is added.
                        *self = Writing::Closed;
                        Frame::default()
                    }
                }
            }
            Encoder::Discard => Frame::default(),
        }
    }

    /// Appends the framed `data` to `out` (the copying form of [`frame`]).
    ///
    /// [`frame`]: Writing::frame
    pub(crate) fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let frame = self.frame(data);
        out.extend_from_slice(&frame.prefix);
        out.extend_from_slice(&data[..frame.take]);
        out.extend_from_slice(frame.suffix);
    }

    /// The body is complete as far as the app is concerned: returns the bytes
    /// that end it on the wire (the last chunk) and settles the state.
    pub(crate) fn finish(&mut self) -> &'static [u8] {
        let (next, tail) = match self {
            Writing::Body(Encoder::Length(0)) => (Writing::Done, &b""[..]),
            Writing::Body(Encoder::Chunked) => (Writing::Done, LAST_CHUNK),
            Writing::Body(Encoder::AppChunked(decoder)) if decoder.is_done() => {
                (Writing::Done, &b""[..])
            }
            Writing::Body(Encoder::Discard) => (Writing::Done, &b""[..]),
            Writing::Done => (Writing::Done, &b""[..]),
            // Short of the declared length, an unfinished app-encoded stream,
            // a close-delimited body, or never started.
            _ => (Writing::Closed, &b""[..]),
        };
        *self = next;
        tail
    }

    /// Something went wrong mid-body (the app raised, the client is gone).
    pub(crate) fn abort(&mut self) {
        *self = Writing::Closed;
    }

    /// Only a completed response lets the connection serve another request.
    #[must_use]
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Writing::Done)
    }

    /// Whether body data is still expected (the head is out, no end yet).
    #[must_use]
    pub(crate) fn in_body(&self) -> bool {
        matches!(self, Writing::Body(_))
    }

    /// Body data would be dropped anyway (HEAD, 204…): callers may skip work.
    #[must_use]
    pub(crate) fn discards(&self) -> bool {
        matches!(self, Writing::Body(Encoder::Discard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(w: &mut Writing, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            w.encode(p, &mut out);
        }
        out.extend_from_slice(w.finish());
        out
    }

    #[test]
    fn exact_length_is_done() {
        let mut w = Writing::start(Encoder::Length(5));
        assert_eq!(send(&mut w, &[b"he", b"llo"]), b"hello");
        assert!(w.is_done());
    }

    #[test]
    fn short_body_closes() {
        let mut w = Writing::start(Encoder::Length(10));
        assert_eq!(send(&mut w, &[b"hello"]), b"hello");
        assert!(!w.is_done());
        assert!(matches!(w, Writing::Closed));
    }

    #[test]
    fn long_body_is_cut_at_the_declared_length_and_closes() {
        let mut w = Writing::start(Encoder::Length(3));
        assert_eq!(send(&mut w, &[b"he", b"llo", b"more"]), b"hel");
        assert!(matches!(w, Writing::Closed));
    }

    #[test]
    fn chunked_ends_with_the_last_chunk() {
        let mut w = Writing::start(Encoder::Chunked);
        assert_eq!(
            send(&mut w, &[b"ab", b"", b"cde"]),
            b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );
        assert!(w.is_done());
    }

    #[test]
    fn aborted_chunked_never_gets_its_terminator() {
        let mut w = Writing::start(Encoder::Chunked);
        let mut out = Vec::new();
        w.encode(b"ab", &mut out);
        w.abort();
        assert_eq!(w.finish(), b"");
        assert!(!w.is_done());
        w.encode(b"late", &mut out);
        assert_eq!(out, b"2\r\nab\r\n");
    }

    #[test]
    fn close_delimited_never_keeps_the_connection() {
        let mut w = Writing::start(Encoder::CloseDelimited);
        assert_eq!(send(&mut w, &[b"abc"]), b"abc");
        assert!(!w.is_done());
    }

    #[test]
    fn discard_sends_nothing_and_is_done() {
        let mut w = Writing::start(Encoder::Discard);
        assert_eq!(send(&mut w, &[b"abc"]), b"");
        assert!(w.is_done());
    }

    #[test]
    fn app_chunked_passes_through_and_keeps_a_finished_stream() {
        let mut w = Writing::start(Encoder::AppChunked(ChunkedDecoder::new()));
        assert_eq!(
            send(&mut w, &[b"5\r\nhel", b"lo\r\n0\r\n\r\n"]),
            b"5\r\nhello\r\n0\r\n\r\n"
        );
        assert!(w.is_done());
    }

    #[test]
    fn app_chunked_cuts_what_follows_the_last_chunk() {
        let mut w = Writing::start(Encoder::AppChunked(ChunkedDecoder::new()));
        assert_eq!(
            send(&mut w, &[b"0\r\n\r\nHTTP/1.1 200 OK\r\n"]),
            b"0\r\n\r\n"
        );
        assert!(matches!(w, Writing::Closed));
    }

    #[test]
    fn app_chunked_unfinished_or_malformed_closes() {
        let mut w = Writing::start(Encoder::AppChunked(ChunkedDecoder::new()));
        assert_eq!(send(&mut w, &[b"5\r\nhello\r\n"]), b"5\r\nhello\r\n");
        assert!(!w.is_done());
        let mut w = Writing::start(Encoder::AppChunked(ChunkedDecoder::new()));
        assert_eq!(send(&mut w, &[b"hello"]), b"");
        assert!(!w.is_done());
    }

    #[test]
    fn frames_for_in_place_writes() {
        let mut w = Writing::start(Encoder::Chunked);
        assert_eq!(
            w.frame(&[0; 26]),
            Frame {
                prefix: b"1a\r\n".to_vec(),
                take: 26,
                suffix: b"\r\n"
            }
        );
        let mut w = Writing::start(Encoder::Length(4));
        assert_eq!(w.frame(&[0; 6]).take, 4);
        assert_eq!(w.frame(&[0; 6]).take, 0);
    }

    #[test]
    fn never_started_is_not_done() {
        let mut w = Writing::Init;
        assert_eq!(w.finish(), b"");
        assert!(!w.is_done());
    }
}
