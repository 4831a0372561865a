//! A response on its way out through the reactor: an ordered list of
//! sources (bytes in memory, a range of a file, a streamed body's queue),
//! written as the socket allows.
//!
//! Complete responses (Array bodies and files, the common case) are not
//! written by the pool thread: it hands them to the reactor with the
//! connection, so the Ruby thread moves on to the next request without
//! giving up the GVL, and a client that reads slowly is waited on by epoll,
//! not by a thread. Bytes in memory count against the reactor's
//! [`crate::budget`] until written; files do not.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::budget::Reservation;
use crate::file_range::FileRange;
use crate::socket::Stream;
use crate::stream_queue::{Drain, StreamSource};
use crate::vectored::{write_ready, Cursor};

/// Bytes their owner lends instead of a copy (large app strings, kept
/// alive by the Ruby boundary until the piece drops: `ruby/pins.rs`).
pub(crate) trait Lent: Send {
    fn bytes(&self) -> &[u8];
    /// Whether these bytes count against the budget: a buffer lent to many
    /// responses at once (an app constant) is in memory once, and counted
    /// for the first of them only.
    fn counted(&self) -> bool;
}

/// A buffer larger than this is freed rather than kept with an idle
/// connection as its [`Spare`].
const SPARE_MAX: usize = 4096;

/// The buffers of a response already written, kept with its connection
/// (`Client::spare`) to build the next response there, on whichever pool
/// thread serves it. A response then allocates nothing for its head and
/// pieces, and the reactor frees nothing a pool thread allocated: such a
/// free, once the reactor's cache for that size is full, takes the other
/// thread's malloc arena lock, and profiles showed both threads waiting on
/// it (futex calls from `_int_free` and from Ruby's allocations).
#[derive(Default)]
pub(crate) struct Spare {
    sources: VecDeque<Source>,
    pieces: Vec<Piece>,
    bytes: Vec<u8>,
}

impl Spare {
    /// An empty byte buffer, with the capacity the last response left.
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// An empty list of pieces, with its capacity.
    pub(crate) fn take_pieces(&mut self) -> Vec<Piece> {
        std::mem::take(&mut self.pieces)
    }
}

/// One stretch of bytes in memory.
pub(crate) enum Piece {
    Owned(Vec<u8>),
    Lent(Box<dyn Lent>),
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        match self {
            Piece::Owned(v) => v,
            Piece::Lent(l) => l.bytes(),
        }
    }
}

/// One part of a response, written after the one before it.
pub(crate) enum Source {
    /// Bytes in memory, written together (`writev`).
    Bytes(Vec<Piece>, Cursor),
    /// A file range (`sendfile`, or chunks through TLS).
    File(FileRange),
    /// A streamed body, as its pool thread produces it; its end says
    /// whether the connection may be kept.
    Stream(StreamSource),
}

/// Where a write left the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Everything is written (and flushed, for TLS).
    Done,
    /// The socket is full: wait for it to be writable.
    SocketFull,
    /// A streamed body has nothing to write yet: its producer wakes the
    /// reactor when it has (no write timeout runs meanwhile).
    Waiting,
}

pub(crate) struct Outgoing {
    sources: VecDeque<Source>,
    /// Bytes of `Bytes` sources not yet written (what a slow reader makes
    /// the reactor hold in memory).
    in_memory: usize,
    /// Of those, bytes of lent buffers another response already counts.
    uncounted: usize,
    /// Bytes taken by the socket so far (progress, for the write timeout).
    sent: u64,
    /// This response's share of the budget, given back as bytes leave.
    reservation: Option<Reservation>,
    /// Keep the connection for another request once everything is written:
    /// true unless a source or the response's framing forbids it.
    pub(crate) keep_alive: bool,
    /// The socket was registered for writability while waiting on the client.
    pub(crate) waited: bool,
    /// Buffers of sources already written, for [`Outgoing::into_spare`].
    written: Spare,
}

impl Outgoing {
    pub(crate) fn new() -> Self {
        Self::reusing(&mut Spare::default())
    }

    /// An empty response in the list of sources `spare` kept.
    pub(crate) fn reusing(spare: &mut Spare) -> Self {
        Outgoing {
            sources: std::mem::take(&mut spare.sources),
            in_memory: 0,
            uncounted: 0,
            sent: 0,
            reservation: None,
            // Until a source says otherwise (a file that grew) and the
            // response's own framing decides (`Request::finish`).
            keep_alive: true,
            waited: false,
            written: Spare::default(),
        }
    }

    /// The buffers to build the next response with, once this one is
    /// written. Its budget reservation (and anything not written) is
    /// released here.
    pub(crate) fn into_spare(mut self) -> Spare {
        self.sources.clear();
        Spare {
            sources: std::mem::take(&mut self.sources),
            pieces: std::mem::take(&mut self.written.pieces),
            bytes: std::mem::take(&mut self.written.bytes),
        }
    }

    /// Keeps a written source's list and its first buffer (emptied), when
    /// they are small and none is kept yet; the rest is freed.
    fn keep(&mut self, mut pieces: Vec<Piece>) {
        if self.written.bytes.capacity() == 0 {
            if let Some(Piece::Owned(mut bytes)) = pieces.drain(..).next() {
                if bytes.capacity() <= SPARE_MAX {
                    bytes.clear();
                    self.written.bytes = bytes;
                }
            }
        }
        pieces.clear();
        if self.written.pieces.capacity() == 0 && pieces.capacity() <= 16 {
            self.written.pieces = pieces;
        }
    }

    /// A response made of these bytes only.
    pub(crate) fn bytes(pieces: Vec<Vec<u8>>) -> Self {
        let mut out = Outgoing::new();
        out.push_bytes(pieces);
        out
    }

    /// Appends bytes (joined to the last source when that is bytes too, so
    /// they leave in one `writev`).
    pub(crate) fn push_bytes(&mut self, pieces: Vec<Vec<u8>>) {
        self.push_pieces(pieces.into_iter().map(Piece::Owned).collect());
    }

    /// [`Outgoing::push_bytes`] for pieces that may be lent.
    pub(crate) fn push_pieces(&mut self, pieces: Vec<Piece>) {
        self.in_memory += pieces.iter().map(|p| p.as_ref().len()).sum::<usize>();
        self.uncounted += pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Lent(l) if !l.counted() => Some(l.bytes().len()),
                _ => None,
            })
            .sum::<usize>();
        match self.sources.back_mut() {
            Some(Source::Bytes(last, _)) => last.extend(pieces),
            _ => self
                .sources
                .push_back(Source::Bytes(pieces, Cursor::default())),
        }
    }

    pub(crate) fn push_file(&mut self, range: FileRange) {
        self.sources.push_back(Source::File(range));
    }

    pub(crate) fn push_stream(&mut self, source: StreamSource) {
        self.sources.push_back(Source::Stream(source));
    }

    pub(crate) fn has_file(&self) -> bool {
        self.sources.iter().any(|s| matches!(s, Source::File(_)))
    }

    /// Bytes in memory still to write (what the budget must cover).
    pub(crate) fn in_memory(&self) -> usize {
        self.in_memory
    }

    /// What the budget must cover: bytes in memory still to write, but a
    /// buffer shared with other responses once.
    pub(crate) fn budgeted(&self) -> usize {
        self.in_memory.saturating_sub(self.uncounted)
    }

    /// Bytes the socket took so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Holds `reservation` until the bytes it covers are written.
    pub(crate) fn hold(&mut self, reservation: Reservation) {
        self.reservation = Some(reservation);
    }

    /// Writes as much as the socket takes now. A file that grew past its
    /// range clears `keep_alive`; a file that ended early is an error.
    pub(crate) fn write_to(&mut self, stream: &mut Stream) -> io::Result<Flow> {
        while let Some(source) = self.sources.front_mut() {
            let written = match source {
                Source::Bytes(pieces, at) => {
                    let w = write_ready(pieces, at, |bufs| stream.write_vectored(bufs))?;
                    self.in_memory -= w.bytes;
                    if let Some(r) = self.reservation.as_mut() {
                        r.release(w.bytes);
                    }
                    w
                }
                Source::File(range) => {
                    let w = range.write_to(stream)?;
                    if w.done && range.grew() {
                        self.keep_alive = false;
                    }
                    w
                }
                Source::Stream(source) => {
                    let (bytes, drain) = source.write_to(|bufs| stream.write_vectored(bufs))?;
                    self.sent += bytes as u64;
                    match drain {
                        Drain::End { keep_alive } => self.keep_alive &= keep_alive,
                        Drain::SocketFull => return Ok(Flow::SocketFull),
                        // What TLS still holds must go out before the wait.
                        Drain::Waiting if stream.flush_pending()? => return Ok(Flow::Waiting),
                        Drain::Waiting => return Ok(Flow::SocketFull),
                    }
                    self.sources.pop_front();
                    continue;
                }
            };
            self.sent += written.bytes as u64;
            if !written.done {
                return Ok(Flow::SocketFull);
            }
            if let Some(Source::Bytes(pieces, _)) = self.sources.pop_front() {
                self.keep(pieces);
            }
        }
        Ok(if stream.flush_pending()? {
            Flow::Done
        } else {
            Flow::SocketFull
        })
    }

    /// Writes everything from a pool thread (without the GVL, the caller
    /// makes sure), waiting while the client's window is full: at most
    /// `timeout` without progress, or until `cancel` is set.
    pub(crate) fn write_all(
        &mut self,
        stream: &mut Stream,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> io::Result<()> {
        let mut deadline = Instant::now() + timeout;
        loop {
            let before = self.sent;
            let flow = self.write_to(stream)?;
            if self.sent > before {
                deadline = Instant::now() + timeout;
            }
            if flow == Flow::Done {
                return Ok(());
            }
            stream.wait_writable(deadline, cancel)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fds::Owned;
    use std::io::{Read, Write};

    fn pair() -> (Stream, std::os::unix::net::UnixStream) {
        let (ours, theirs) = mio::net::UnixStream::pair().unwrap();
        let client = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        client.set_nonblocking(true).unwrap();
        (Stream::Unix(ours), client)
    }

    /// Writes until done, reading the client's side between rounds; returns
    /// what it received.
    fn pump(
        out: &mut Outgoing,
        stream: &mut Stream,
        client: &mut std::os::unix::net::UnixStream,
    ) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buf = vec![0; 256 * 1024];
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100_000, "write made no progress");
            let flow = out.write_to(stream).unwrap();
            loop {
                match client.read(&mut buf) {
                    Ok(0) => unreachable!("our end is open"),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // A Unix socket queues what it took on the reader's side only,
            // so after draining it every byte written has been received.
            assert_eq!(out.sent(), received.len() as u64);
            if flow == Flow::Done {
                return received;
            }
        }
    }

    /// A stream source after bytes: the reactor waits while the queue is
    /// empty, writes what the producer pushes, and the producer's end
    /// decides keep-alive.
    #[test]
    fn a_stream_source_waits_for_its_producer_and_its_end_decides_keep_alive() {
        use crate::budget::Budget;
        use crate::stream_queue::StreamQueue;
        for keep in [true, false] {
            let (mut stream, mut client) = pair();
            let budget = Budget::new(1 << 20);
            let queue = std::sync::Arc::new(StreamQueue::new(1 << 20, || {}));
            let mut out = Outgoing::bytes(vec![b"head;".to_vec()]);
            out.push_stream(StreamSource::new(queue.clone()));
            assert_eq!(out.write_to(&mut stream).unwrap(), Flow::Waiting);
            queue
                .push(b"one;".to_vec(), budget.try_reserve(4).unwrap())
                .unwrap();
            assert_eq!(out.write_to(&mut stream).unwrap(), Flow::Waiting);
            queue
                .push(b"two".to_vec(), budget.try_reserve(3).unwrap())
                .unwrap();
            queue.close(keep);
            assert_eq!(out.write_to(&mut stream).unwrap(), Flow::Done);
            assert_eq!(out.keep_alive, keep);
            assert_eq!(budget.held(), 0, "written bytes give their budget back");
            let mut got = vec![0; 64];
            let n = client.read(&mut got).unwrap();
            assert_eq!(&got[..n], b"head;one;two");
        }
    }

    /// Over a real socket pair: a response larger than the socket buffer
    /// stops at `EAGAIN` with the rest held, and goes on from there once the
    /// client reads, arriving whole and in order.
    #[test]
    fn a_full_socket_holds_the_rest_until_the_client_reads() {
        let (mut stream, mut client) = pair();
        let pieces: Vec<Vec<u8>> = (0..64u8)
            .map(|i| vec![i; 64 * 1024 + usize::from(i)])
            .collect();
        let expected = pieces.concat();
        let mut out = Outgoing::bytes(pieces);

        assert_eq!(out.write_to(&mut stream).unwrap(), Flow::SocketFull);
        assert!(out.in_memory() > 0 && out.in_memory() < expected.len());
        let received = pump(&mut out, &mut stream, &mut client);
        assert_eq!(out.in_memory(), 0);
        assert!(received == expected, "bytes arrived out of order or lost");
    }

    /// Bytes, a file range, bytes: in order, and the budget is given back
    /// as the in-memory bytes leave (the file's bytes never counted).
    #[test]
    fn sources_go_out_in_order_and_release_their_budget() {
        let (mut stream, mut client) = pair();
        let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&body).unwrap();
        let budget = crate::budget::Budget::new(1 << 30);
        let mut out = Outgoing::bytes(vec![b"head\r\n\r\n".to_vec()]);
        out.push_file(FileRange::new(Owned::new(file), 0, body.len() as u64));
        out.push_bytes(vec![b"tail".to_vec()]);
        out.keep_alive = true;
        out.hold(budget.try_reserve(out.in_memory()).unwrap());
        assert_eq!(budget.held(), 12);

        let received = pump(&mut out, &mut stream, &mut client);
        assert_eq!(budget.held(), 0);
        assert!(out.keep_alive);
        let expected = [&b"head\r\n\r\n"[..], &body, b"tail"].concat();
        assert!(received == expected, "bytes arrived out of order or lost");
    }

    /// A written response leaves its buffers, emptied, for the next one on
    /// the connection; a large buffer is freed instead of kept.
    #[test]
    fn a_written_response_leaves_its_small_buffers_for_the_next() {
        let (mut stream, mut client) = pair();
        let mut out = Outgoing::bytes(vec![b"first response".to_vec()]);
        assert_eq!(pump(&mut out, &mut stream, &mut client), b"first response");
        let mut spare = out.into_spare();
        let mut bytes = spare.take_bytes();
        let mut pieces = spare.take_pieces();
        assert!(bytes.is_empty() && bytes.capacity() >= 14);
        assert!(pieces.is_empty() && pieces.capacity() >= 1);
        assert!(spare.sources.capacity() >= 1, "the list of sources is kept");
        bytes.extend_from_slice(b"second");
        pieces.push(Piece::Owned(bytes));
        let mut out = Outgoing::reusing(&mut spare);
        out.push_pieces(pieces);
        assert_eq!(pump(&mut out, &mut stream, &mut client), b"second");

        let mut out = Outgoing::bytes(vec![vec![b'x'; 2 * SPARE_MAX]]);
        assert_eq!(
            pump(&mut out, &mut stream, &mut client).len(),
            2 * SPARE_MAX
        );
        assert_eq!(out.into_spare().take_bytes().capacity(), 0);
    }

    #[test]
    fn a_file_that_grew_past_its_range_is_cut_and_not_kept_alive() {
        let (mut stream, mut client) = pair();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let mut out = Outgoing::new();
        out.push_file(FileRange::new(Owned::new(file), 0, 4));
        out.keep_alive = true;
        let received = pump(&mut out, &mut stream, &mut client);
        assert_eq!(received, b"0123");
        assert!(!out.keep_alive);
    }
}
