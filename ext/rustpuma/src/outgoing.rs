//! A response's bytes on their way out through the reactor.
//!
//! Complete responses (Array bodies, the common case) are not written by the
//! pool thread: it hands the bytes to the reactor with the connection, so the
//! Ruby thread moves on to the next request without giving up the GVL, and
//! a client that reads slowly is waited on by epoll, not by a thread.

use std::io::{self, IoSlice};

use crate::socket::Stream;

pub(crate) struct Outgoing {
    pieces: Vec<Vec<u8>>,
    piece: usize,
    offset: usize,
    /// Bytes not yet written.
    left: usize,
    /// Keep the connection for another request once everything is written.
    pub keep_alive: bool,
    /// The socket was registered for writability while waiting on the client.
    pub waited: bool,
}

impl Outgoing {
    pub(crate) fn new(pieces: Vec<Vec<u8>>, keep_alive: bool) -> Self {
        let left = pieces.iter().map(Vec::len).sum();
        Outgoing {
            pieces,
            piece: 0,
            offset: 0,
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
        loop {
            while self.piece < self.pieces.len() && self.offset == self.pieces[self.piece].len() {
                self.piece += 1;
                self.offset = 0;
            }
            if self.piece == self.pieces.len() {
                return stream.flush_pending();
            }
            let mut slices = Vec::with_capacity(self.pieces.len() - self.piece);
            slices.push(IoSlice::new(&self.pieces[self.piece][self.offset..]));
            slices.extend(
                self.pieces[self.piece + 1..]
                    .iter()
                    .map(|p| IoSlice::new(p)),
            );
            match stream.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.left = self.left.saturating_sub(n);
        while n > 0 {
            let left = self.pieces[self.piece].len() - self.offset;
            if n >= left {
                n -= left;
                self.piece += 1;
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_walks_across_pieces() {
        let mut out = Outgoing::new(vec![b"abc".to_vec(), b"de".to_vec(), b"f".to_vec()], true);
        out.advance(4);
        assert_eq!((out.piece, out.offset), (1, 1));
        out.advance(2);
        assert_eq!((out.piece, out.offset), (3, 0));
    }
}
