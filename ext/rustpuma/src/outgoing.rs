//! A response's bytes on their way out through the reactor.
//!
//! Complete responses (Array bodies, the common case) are not written by the
//! pool thread: it hands the bytes to the reactor with the connection, so the
//! Ruby thread moves on to the next request without giving up the GVL, and
//! a client that reads slowly is waited on by epoll, not by a thread.

use std::io;

use crate::socket::Stream;
use crate::vectored::{write_ready, Cursor};

pub(crate) struct Outgoing {
    pieces: Vec<Vec<u8>>,
    at: Cursor,
    /// Bytes not yet written.
    left: usize,
    /// Keep the connection for another request once everything is written.
    pub(crate) keep_alive: bool,
    /// The socket was registered for writability while waiting on the client.
    pub(crate) waited: bool,
}

impl Outgoing {
    pub(crate) fn new(pieces: Vec<Vec<u8>>, keep_alive: bool) -> Self {
        let left = pieces.iter().map(Vec::len).sum();
        Outgoing {
            pieces,
            at: Cursor::default(),
            left,
            keep_alive,
            waited: false,
        }
    }

    /// Bytes still to write (what a slow reader makes the reactor hold).
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Writes as much as the socket takes now. `Ok(true)` once all is sent.
    pub(crate) fn write_to(&mut self, stream: &mut Stream) -> io::Result<bool> {
        let written = write_ready(&self.pieces, &mut self.at, |bufs| {
            stream.write_vectored(bufs)
        })?;
        self.left -= written.bytes;
        if !written.done {
            return Ok(false);
        }
        stream.flush_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Over a real socket pair: a response larger than the socket buffer
    /// stops at `EAGAIN` with the rest held, and goes on from there once the
    /// client reads, arriving whole and in order.
    #[test]
    fn a_full_socket_holds_the_rest_until_the_client_reads() {
        let (ours, theirs) = mio::net::UnixStream::pair().unwrap();
        let mut stream = Stream::Unix(ours);
        let mut client = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        client.set_nonblocking(true).unwrap();
        let pieces: Vec<Vec<u8>> = (0..64u8)
            .map(|i| vec![i; 64 * 1024 + usize::from(i)])
            .collect();
        let expected = pieces.concat();
        let mut out = Outgoing::new(pieces, true);

        assert!(
            !out.write_to(&mut stream).unwrap(),
            "4 MiB fit in a socket buffer"
        );
        assert!(out.left() > 0 && out.left() < expected.len());

        let mut received = Vec::new();
        let mut buf = vec![0; 256 * 1024];
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100_000, "write made no progress");
            let done = out.write_to(&mut stream).unwrap();
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
            assert_eq!(out.left(), expected.len() - received.len());
            if done {
                break;
            }
        }
        assert_eq!(out.left(), 0);
        assert!(received == expected, "bytes arrived out of order or lost");
    }
}
