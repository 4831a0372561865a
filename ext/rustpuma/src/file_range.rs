//! A range of a file sent as (part of) a response body, as the socket
//! allows: `to_path` bodies (`Rack::Files`, `send_file`) are handed to the
//! reactor as an open file, so no pool thread waits on the client and no
//! copy of the file is kept in memory.
//!
//! Plain sockets get `sendfile(2)` (the kernel copies from the page cache);
//! TLS needs the plaintext, so the file is read in chunks into rustls. The
//! range is the length the head declared: a file that ends before it is an
//! error (the connection closes, the client sees a short body); a file that
//! grew is cut at the range, and [`FileRange::grew`] says so, so that the
//! connection is not kept.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;

use crate::fds::Owned;
use crate::socket::Stream;
use crate::vectored::Written;

/// How much of the file a TLS connection reads at a time.
const TLS_CHUNK: usize = 64 * 1024;
/// At most this much per `sendfile` call (Linux sends at most ~2 GiB).
const SENDFILE_MAX: u64 = 1 << 30;

pub(crate) struct FileRange {
    /// In the registry of the core's descriptors (fork safety).
    file: Owned<File>,
    /// Next byte to send, and one past the last.
    offset: u64,
    end: u64,
    /// TLS only: bytes read from the file that rustls has not taken yet.
    chunk: Vec<u8>,
    chunk_at: usize,
}

impl FileRange {
    /// `len` bytes of `file` from `offset`.
    pub(crate) fn new(file: Owned<File>, offset: u64, len: u64) -> Self {
        FileRange {
            file,
            offset,
            end: offset.saturating_add(len),
            chunk: Vec::new(),
            chunk_at: 0,
        }
    }

    /// Bytes still to send.
    #[cfg(test)]
    pub(crate) fn left(&self) -> u64 {
        // `offset` moves as the stream takes bytes, so a chunk read but not
        // yet taken is still counted.
        self.end - self.offset
    }

    /// Whether the file now holds more than the range (it grew since its
    /// size was taken): what was sent is cut, the connection must close.
    pub(crate) fn grew(&self) -> bool {
        self.file.metadata().map_or(true, |m| m.len() > self.end)
    }

    /// Sends as much as the socket takes now: `done` once the whole range
    /// is out, otherwise the socket is full (`EAGAIN`).
    pub(crate) fn write_to(&mut self, stream: &mut Stream) -> io::Result<Written> {
        if stream.is_tls() {
            self.write_through(stream)
        } else {
            self.sendfile(stream)
        }
    }

    fn sendfile(&mut self, stream: &Stream) -> io::Result<Written> {
        let mut bytes = 0;
        while self.offset < self.end {
            let mut at = i64::try_from(self.offset).map_err(io::Error::other)?;
            let count = (self.end - self.offset).min(SENDFILE_MAX) as usize;
            match nix::sys::sendfile::sendfile(stream.fd(), &*self.file, Some(&mut at), count) {
                Ok(0) => return Err(shorter()),
                Ok(n) => {
                    self.offset += n as u64;
                    bytes += n;
                }
                Err(Errno::EAGAIN) => return Ok(Written { bytes, done: false }),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Written { bytes, done: true })
    }

    /// TLS: reads a chunk, offers it to the stream (rustls encrypts and
    /// sends what the socket takes), and reads the next once it is taken.
    fn write_through(&mut self, stream: &mut Stream) -> io::Result<Written> {
        let mut bytes = 0;
        loop {
            if self.chunk_at == self.chunk.len() {
                if self.offset == self.end {
                    return Ok(Written { bytes, done: true });
                }
                let want = (self.end - self.offset).min(TLS_CHUNK as u64) as usize;
                self.chunk.resize(want, 0);
                let n = loop {
                    match self.file.read_at(&mut self.chunk, self.offset) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other?,
                    }
                };
                if n == 0 {
                    return Err(shorter());
                }
                self.chunk.truncate(n);
                self.chunk_at = 0;
            }
            match stream.write_vectored(&[IoSlice::new(&self.chunk[self.chunk_at..])]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.chunk_at += n;
                    self.offset += n as u64;
                    bytes += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Written { bytes, done: false })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn shorter() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file ended before the length the head declared",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;

    fn pair() -> (Stream, std::os::unix::net::UnixStream) {
        let (ours, theirs) = mio::net::UnixStream::pair().unwrap();
        let client = std::os::unix::net::UnixStream::from(OwnedFd::from(theirs));
        client.set_nonblocking(true).unwrap();
        (Stream::Unix(ours), client)
    }

    fn file_with(content: &[u8]) -> Owned<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        Owned::new(file)
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Reads what the socket holds now.
    fn drain(client: &mut std::os::unix::net::UnixStream, into: &mut Vec<u8>) {
        let mut buf = vec![0; 256 * 1024];
        loop {
            match client.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// More than the socket buffer: `sendfile` stops at `EAGAIN` part way,
    /// and goes on from there as the client reads; the range arrives whole,
    /// in order, and nothing before or after it.
    #[test]
    fn a_full_socket_stops_sendfile_and_it_resumes_where_it_stopped() {
        let data = content(4 * 1024 * 1024 + 7);
        let (mut stream, mut client) = pair();
        let mut range = FileRange::new(file_with(&data), 3, data.len() as u64 - 10);
        let first = range.write_to(&mut stream).unwrap();
        assert!(!first.done, "4 MiB fit in a socket buffer");
        assert!(first.bytes > 0);
        assert_eq!(range.left(), data.len() as u64 - 10 - first.bytes as u64);

        let mut received = Vec::new();
        let mut rounds = 0;
        loop {
            drain(&mut client, &mut received);
            let w = range.write_to(&mut stream).unwrap();
            rounds += 1;
            assert!(rounds < 100_000, "no progress");
            if w.done {
                break;
            }
        }
        drain(&mut client, &mut received);
        assert_eq!(range.left(), 0);
        assert!(
            received == data[3..data.len() - 7],
            "bytes lost or out of order"
        );
        assert!(range.grew(), "the file holds 7 bytes past the range");
    }

    #[test]
    fn a_file_shorter_than_its_range_is_an_error_after_what_it_had() {
        let data = content(1000);
        let (mut stream, mut client) = pair();
        let mut range = FileRange::new(file_with(&data), 0, 5000);
        let err = range.write_to(&mut stream).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut received = Vec::new();
        drain(&mut client, &mut received);
        assert_eq!(received, data);
    }

    #[test]
    fn an_exact_range_is_done_and_did_not_grow() {
        let data = content(10_000);
        let (mut stream, mut client) = pair();
        let mut range = FileRange::new(file_with(&data), 0, data.len() as u64);
        let w = range.write_to(&mut stream).unwrap();
        assert_eq!((w.bytes, w.done), (data.len(), true));
        assert!(!range.grew());
        let mut received = Vec::new();
        drain(&mut client, &mut received);
        assert_eq!(received, data);
    }
}
