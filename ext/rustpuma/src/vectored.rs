//! Partial writes of a response held as a list of byte pieces: the one
//! write loop both writers use, the reactor's ([`crate::outgoing`], which
//! stops at `EAGAIN` and waits for epoll) and the pool's
//! ([`crate::socket::Stream::write_all`], which waits with `poll(2)`).
//!
//! Sockets are non-blocking, so a `writev` may take any prefix of the
//! pieces; [`Cursor`] remembers where the next byte is, and [`write_ready`]
//! keeps writing until everything is out or the socket is full.

use std::io::{self, IoSlice};

/// Where the next byte to write is in a list of pieces.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    piece: usize,
    offset: usize,
}

impl Cursor {
    /// Moves past `n` written bytes.
    fn advance<P: AsRef<[u8]>>(&mut self, pieces: &[P], mut n: usize) {
        while n > 0 && self.piece < pieces.len() {
            let left = pieces[self.piece].as_ref().len() - self.offset;
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

    /// Steps over finished (and empty) pieces; true when none is left.
    fn skip_finished<P: AsRef<[u8]>>(&mut self, pieces: &[P]) -> bool {
        while self.piece < pieces.len() && self.offset == pieces[self.piece].as_ref().len() {
            self.piece += 1;
            self.offset = 0;
        }
        self.piece == pieces.len()
    }
}

/// What one [`write_ready`] call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Bytes the writer took during this call.
    pub(crate) bytes: usize,
    /// Every piece is written; otherwise the writer would block.
    pub(crate) done: bool,
}

/// Writes `pieces` from `at` with `write` (a `writev`) for as long as it
/// takes bytes: returns when everything is written or `write` reports
/// `WouldBlock`, with `at` moved past what was written. `Interrupted`
/// (`EINTR`) is retried; a write of zero bytes is `WriteZero`; any other
/// error is returned as is.
pub(crate) fn write_ready<P: AsRef<[u8]>>(
    pieces: &[P],
    at: &mut Cursor,
    mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<Written> {
    let mut bytes = 0;
    loop {
        if at.skip_finished(pieces) {
            return Ok(Written { bytes, done: true });
        }
        let rest = &pieces[at.piece..];
        let mut slices = Vec::with_capacity(rest.len());
        slices.push(IoSlice::new(&rest[0].as_ref()[at.offset..]));
        slices.extend(rest[1..].iter().map(|p| IoSlice::new(p.as_ref())));
        match write(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes += n;
                at.advance(pieces, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Written { bytes, done: false })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A socket that answers each `writev` from a script: `Ok(n)` takes at
    /// most `n` bytes, errors are returned as they are. It records every
    /// byte it took and the slices of each call.
    struct Scripted {
        script: VecDeque<io::Result<usize>>,
        taken: Vec<u8>,
        calls: Vec<Vec<Vec<u8>>>,
    }

    impl Scripted {
        fn new(script: Vec<io::Result<usize>>) -> Self {
            Scripted {
                script: script.into(),
                taken: Vec::new(),
                calls: Vec::new(),
            }
        }

        fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls.push(bufs.iter().map(|b| b.to_vec()).collect());
            let room = self
                .script
                .pop_front()
                .expect("no write beyond the script")?;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(room - n);
                self.taken.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
    }

    fn err(kind: io::ErrorKind) -> io::Result<usize> {
        Err(kind.into())
    }

    const PIECES: [&[u8]; 3] = [b"abc", b"de", b"fgh"];

    /// One `write_ready` call from `at`: (bytes written, done).
    fn step<P: AsRef<[u8]>>(sock: &mut Scripted, pieces: &[P], at: &mut Cursor) -> (usize, bool) {
        let w = write_ready(pieces, at, |b| sock.write(b)).unwrap();
        (w.bytes, w.done)
    }

    #[test]
    fn a_socket_that_takes_everything_is_written_in_one_call() {
        let mut sock = Scripted::new(vec![Ok(usize::MAX)]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &PIECES, &mut at), (8, true));
        assert_eq!(sock.taken, b"abcdefgh");
        assert_eq!(sock.calls.len(), 1);
    }

    #[test]
    fn partial_writes_resume_mid_piece_and_across_pieces() {
        let mut sock = Scripted::new(vec![Ok(2), Ok(2), Ok(3), Ok(1)]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &PIECES, &mut at), (8, true));
        assert_eq!(sock.taken, b"abcdefgh");
        // Each call starts at the first unwritten byte and offers the rest.
        assert_eq!(
            sock.calls[1],
            vec![b"c".to_vec(), b"de".to_vec(), b"fgh".to_vec()]
        );
        assert_eq!(sock.calls[2], vec![b"e".to_vec(), b"fgh".to_vec()]);
        assert_eq!(sock.calls[3], vec![b"h".to_vec()]);
    }

    #[test]
    fn would_block_returns_and_the_next_call_resumes_where_it_stopped() {
        let mut sock = Scripted::new(vec![
            Ok(4),
            err(io::ErrorKind::WouldBlock),
            Ok(1),
            err(io::ErrorKind::WouldBlock),
            Ok(usize::MAX),
        ]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &PIECES, &mut at), (4, false));
        assert_eq!(step(&mut sock, &PIECES, &mut at), (1, false));
        assert_eq!(step(&mut sock, &PIECES, &mut at), (3, true));
        assert_eq!(sock.taken, b"abcdefgh");
    }

    #[test]
    fn would_block_before_any_byte_reports_no_progress() {
        let mut sock = Scripted::new(vec![err(io::ErrorKind::WouldBlock)]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &PIECES, &mut at), (0, false));
        assert_eq!(at, Cursor::default());
    }

    #[test]
    fn eintr_is_retried() {
        let mut sock = Scripted::new(vec![
            err(io::ErrorKind::Interrupted),
            Ok(3),
            err(io::ErrorKind::Interrupted),
            err(io::ErrorKind::Interrupted),
            Ok(usize::MAX),
        ]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &PIECES, &mut at), (8, true));
        assert_eq!(sock.taken, b"abcdefgh");
        assert_eq!(sock.calls[1], sock.calls[0]);
        assert_eq!(sock.calls[3], vec![b"de".to_vec(), b"fgh".to_vec()]);
    }

    #[test]
    fn a_zero_byte_write_is_an_error_not_a_spin() {
        let mut sock = Scripted::new(vec![Ok(1), Ok(0)]);
        let mut at = Cursor::default();
        let e = write_ready(&PIECES, &mut at, |b| sock.write(b)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn other_errors_are_returned_with_the_cursor_after_what_was_written() {
        let mut sock = Scripted::new(vec![Ok(4), err(io::ErrorKind::BrokenPipe)]);
        let mut at = Cursor::default();
        let e = write_ready(&PIECES, &mut at, |b| sock.write(b)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(
            at,
            Cursor {
                piece: 1,
                offset: 1
            }
        );
    }

    #[test]
    fn empty_pieces_are_skipped_and_nothing_to_write_is_done_without_a_write() {
        let pieces: [&[u8]; 4] = [b"", b"ab", b"", b"c"];
        let mut sock = Scripted::new(vec![Ok(2), Ok(usize::MAX)]);
        let mut at = Cursor::default();
        assert_eq!(step(&mut sock, &pieces, &mut at), (3, true));
        assert_eq!(
            sock.calls[0],
            vec![b"ab".to_vec(), b"".to_vec(), b"c".to_vec()]
        );
        assert_eq!(sock.calls[1], vec![b"c".to_vec()]);

        let empty: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut at = Cursor::default();
        let w = write_ready(&empty, &mut at, |_| panic!("nothing to write")).unwrap();
        assert_eq!(
            w,
            Written {
                bytes: 0,
                done: true
            }
        );
    }
}
