//! The kinds of socket a client can arrive on, behind one type, and how
//! the pool sends a response: the write loop of [`crate::vectored`], waiting
//! for the client between its rounds.
//!
//! Sockets stay non-blocking for their whole life (the reactor owns them
//! between requests); a pool thread that meets `EAGAIN` waits with `poll(2)`
//! in short slices so that a Ruby interrupt or the write timeout ends it.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustls::ServerConfig;

use crate::fds;
use crate::tls::TlsStream;
use crate::vectored::{write_ready, Cursor};

const POLL_SLICE_MS: u16 = 100;

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
    /// `ssl://`: TCP with a TLS session per connection.
    Tls(TcpListener, Arc<ServerConfig>),
}

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

impl Listener {
    /// Accepts one client; `REMOTE_ADDR` is the peer's IP, or 127.0.0.1 for
    /// a Unix socket as in Puma.
    pub(crate) fn accept(&self) -> io::Result<(Stream, String)> {
        let (stream, addr) = match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                // Responses leave in one write; Nagle would only delay them.
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), addr.ip().to_string())
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                (Stream::Unix(s), "127.0.0.1".to_string())
            }
            Listener::Tls(l, config) => {
                let (s, addr) = l.accept()?;
                let _ = s.set_nodelay(true);
                (
                    Stream::Tls(Box::new(TlsStream::new(s, config.clone())?)),
                    addr.ip().to_string(),
                )
            }
        };
        fds::track(stream.raw_fd());
        Ok((stream, addr))
    }

    /// Takes a listener the server built and records its descriptor as the
    /// core's (see [`crate::fds`]).
    pub(crate) fn tracked(self) -> Self {
        fds::track(self.raw_fd());
        self
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    pub(crate) fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l,
            Listener::Unix(l) => l,
        }
    }
}

// Out of the registry of the core's descriptors before the socket (a
// field) closes; accepted streams are put in by `Listener::accept`.
impl Drop for Listener {
    fn drop(&mut self) {
        fds::untrack(self.raw_fd());
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        fds::untrack(self.raw_fd());
    }
}

impl Stream {
    fn raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl Stream {
    pub(crate) fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
            Stream::Tls(s) => &mut s.tcp,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// `puma.peercert`: the client certificate of a mutual TLS connection.
    pub(crate) fn peer_cert_pem(&self) -> Option<String> {
        match self {
            Stream::Tls(s) => s.peer_cert_pem(),
            _ => None,
        }
    }

    /// The socket's descriptor, borrowed (a full hijack duplicates it).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.tcp.as_fd(),
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tls(s) => s.write_vectored(bufs),
        }
    }

    /// Sends bytes a TLS session still holds. `Ok(true)` when none are left
    /// (always, for plain sockets); `Ok(false)` if the socket is full.
    pub(crate) fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Stream::Tls(s) => match s.flush() {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            },
            _ => Ok(true),
        }
    }

    /// Best effort for tiny control messages (`100 Continue`, canned errors)
    /// written by the reactor, which must never wait on a client.
    pub(crate) fn try_write(&mut self, data: &[u8]) {
        let _ = self.write_vectored(&[IoSlice::new(data)]);
        let _ = self.flush_pending();
    }

    /// Writes every byte of `parts` in order, waiting (without the GVL, the
    /// caller makes sure) while the client's window is full: at most
    /// `timeout` without progress. Setting `cancel` (Ruby's unblocking
    /// function does) ends the wait.
    pub(crate) fn write_all(
        &mut self,
        parts: &[&[u8]],
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> io::Result<()> {
        let mut at = Cursor::default();
        let mut deadline = Instant::now() + timeout;
        loop {
            let written = write_ready(parts, &mut at, |bufs| self.write_vectored(bufs))?;
            if written.bytes > 0 {
                deadline = Instant::now() + timeout;
            }
            if written.done {
                break;
            }
            self.wait_writable(deadline, cancel)?;
        }
        while !self.flush_pending()? {
            self.wait_writable(deadline, cancel)?;
        }
        Ok(())
    }

    /// Waits until the socket takes bytes again, in short slices: ends with
    /// `Interrupted` once `cancel` is set, `TimedOut` at `deadline`.
    pub(crate) fn wait_writable(&self, deadline: Instant, cancel: &AtomicBool) -> io::Result<()> {
        loop {
            if cancel.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "interrupted by Ruby",
                ));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client did not read the response",
                ));
            }
            let mut fds = [PollFd::new(self.fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, PollTimeout::from(POLL_SLICE_MS)) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    /// Puma's default write timeout.
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn pair() -> (Stream, std::os::unix::net::UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let client = std::os::unix::net::UnixStream::from(OwnedFd::from(theirs));
        client.set_nonblocking(false).unwrap();
        (Stream::Unix(ours), client)
    }

    fn payload() -> Vec<Vec<u8>> {
        (0..64u8)
            .map(|i| vec![i; 64 * 1024 + usize::from(i)])
            .collect()
    }

    /// More than the socket holds: the pool's writer waits for the client
    /// between rounds and everything arrives in order.
    #[test]
    fn write_all_waits_for_a_reading_client_and_sends_everything() {
        let (mut stream, mut client) = pair();
        let pieces = payload();
        let expected = pieces.concat();
        let reader = std::thread::spawn(move || {
            let mut received = Vec::new();
            client.read_to_end(&mut received).map(|_| received)
        });
        let parts: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        stream
            .write_all(&parts, TIMEOUT, &AtomicBool::new(false))
            .unwrap();
        drop(stream);
        let received = reader.join().unwrap().unwrap();
        assert!(received == expected, "bytes arrived out of order or lost");
    }

    /// A client that never reads: once the socket is full the wait ends on
    /// the cancel flag, not on the write timeout.
    #[test]
    fn write_all_stops_waiting_when_cancelled() {
        let (mut stream, _client) = pair();
        let pieces = payload();
        let parts: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let err = stream
            .write_all(&parts, TIMEOUT, &AtomicBool::new(true))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }
}
