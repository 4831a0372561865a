//! One client connection while the reactor owns it: the socket and the
//! request being read from it.
//!
//! The reactor calls [`Client::advance`] whenever the socket is readable or
//! the client comes back from the pool; a request reaches Ruby only once its
//! head and whole body are here, so a slow client never holds a pool thread.
//! The byte-level work (head, body framing, pipelining) is the
//! [`Reader`](crate::reader::Reader)'s; this file adds the socket.

use std::io;

use crate::body::Body;
use crate::http::parser::RequestHead;
use crate::metrics::Timing;
use crate::outgoing::Spare;
use crate::reader::{Event, Reader};
use crate::socket::Stream;

pub(crate) use crate::reader::{Limits, Rejection};

const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    // The reactor thread's read buffer, reused for every client.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub(crate) enum Advance {
    /// `client.request` holds a complete request.
    Ready,
    /// Wait for the socket to become readable again.
    NeedMore,
    /// The read budget is spent and the socket may still hold data: call
    /// again after the other connections had their turn (no new edge will
    /// come for bytes already there).
    Yield,
    /// The peer closed between requests, or the socket failed: drop quietly.
    Gone,
    /// The TLS layer refused the client (failed handshake, bad record):
    /// dropped, and logged at debug level.
    TlsFailed(String),
    Reject(Rejection),
}

pub(crate) struct Client {
    pub stream: Stream,
    pub remote_addr: String,
    reader: Reader,
    /// The request handed to Ruby, with its body.
    pub request: Option<(RequestHead, Body)>,
    /// Or, with `Limits::errors_to_app`, why it was rejected.
    pub rejection: Option<Rejection>,
    /// Requests answered on this connection so far (`max_keep_alive`).
    pub served: u64,
    /// When the current request's phases began and ended (`metrics.rs`).
    pub timing: Timing,
    /// The last read took all the socket had (a short read on a plain
    /// socket): until epoll reports it again ([`Client::readable`]) a read
    /// would only return `WouldBlock`. Saves that read when a keep-alive
    /// connection comes back from the pool before its next request.
    drained: bool,
    /// The last response's buffers, for the next one (see [`Spare`]).
    pub spare: Spare,
    /// Epoll reported a hang-up or an error (a FIN or a reset). Its report
    /// may come with bytes still queued before it, and it is not repeated:
    /// reads then go on until they return the end or the error, a short
    /// read no longer meaning there is nothing left to see.
    hung_up: bool,
}

impl Client {
    pub(crate) fn new(stream: Stream, remote_addr: String) -> Self {
        Client {
            stream,
            remote_addr,
            reader: Reader::new(),
            request: None,
            rejection: None,
            served: 0,
            timing: Timing::default(),
            drained: false,
            spare: Spare::default(),
            hung_up: false,
        }
    }

    /// Epoll reported the socket (edge-triggered: new bytes since the last
    /// report); `hung_up`: the report said the peer closed or reset it.
    pub(crate) fn readable(&mut self, hung_up: bool) {
        self.drained = false;
        self.hung_up |= hung_up;
    }

    /// True when a request has started arriving but is not complete, which
    /// decides between a silent close and 408 when the client times out.
    pub(crate) fn has_partial_request(&self) -> bool {
        self.reader.has_partial_request()
    }

    pub(crate) fn has_buffered(&self) -> bool {
        self.reader.has_buffered()
    }

    /// Bytes read past the current request, for whoever takes the
    /// connection over (a hijacked TLS tunnel).
    pub(crate) fn take_buffered(&mut self) -> Vec<u8> {
        self.reader.take_buffered()
    }

    /// Called when the previous response is done and the connection is kept.
    pub(crate) fn reset_for_next_request(&mut self) {
        self.request = None;
        self.served += 1;
        self.timing = Timing::default();
    }

    /// Moves the current request forward with what is buffered and what the
    /// socket has, until it is complete, the socket is drained, it fails, or
    /// `budget` bytes were read (one reactor thread serves everyone: a fast
    /// uploader must not keep it to itself).
    pub(crate) fn advance(&mut self, limits: &Limits, budget: usize) -> Advance {
        let mut read = 0;
        loop {
            match self.step(limits) {
                Ok(Some(result)) => return result,
                Ok(None) => {}
                Err(rejection) => return Advance::Reject(rejection),
            }
            if read >= budget {
                return Advance::Yield;
            }
            if self.drained {
                if !self.reader.has_partial_request() {
                    self.reader.shrink_idle();
                }
                return Advance::NeedMore;
            }
            match self.fill() {
                Ok(n) if n > 0 => {
                    read += n;
                    // A TLS stream may hold decrypted bytes back; after a
                    // hang-up the end is still to be read (no new report).
                    self.drained = n < READ_CHUNK && !self.stream.is_tls() && !self.hung_up;
                }
                // End of stream: between requests that is a normal close; in
                // the middle of one, nobody is left to answer.
                Ok(_) => return Advance::Gone,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.reader.has_partial_request() {
                        self.reader.shrink_idle();
                    }
                    return Advance::NeedMore;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData && self.stream.is_tls() => {
                    return Advance::TlsFailed(e.to_string())
                }
                Err(_) => return Advance::Gone,
            }
        }
    }

    /// Reads once; `Ok(0)` is end of stream. Reads land in a shared
    /// scratch buffer first: growing `buf` by the read size would zero 64 KiB
    /// per read, which showed up as the reactor's top cost in profiles.
    fn fill(&mut self) -> io::Result<usize> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = self.stream.read(&mut scratch[..])?;
            self.reader.push(&scratch[..n]);
            Ok(n)
        })
    }

    /// Uses the buffered bytes. `Ok(None)` means more bytes are needed.
    fn step(&mut self, limits: &Limits) -> Result<Option<Advance>, Rejection> {
        loop {
            match self.reader.next_event(limits)? {
                Event::NeedMore => return Ok(None),
                Event::Ready(head, body) => {
                    self.request = Some((head, body));
                    return Ok(Some(Advance::Ready));
                }
                Event::ProxySource(ip) => self.remote_addr = ip,
                Event::SendContinue => self.stream.try_write(CONTINUE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A client whose socket holds far more than the budget stops after
    /// about one budget and says so; the rest is read on later calls.
    #[test]
    fn advance_yields_once_the_read_budget_is_spent() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut theirs = theirs;
        let body_len = 100 * 1024 * 1024;
        theirs
            .write_all(
                format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0;
        while let Ok(n) = theirs.write(&chunk) {
            sent += n;
        }
        let budget = 32 * 1024;
        assert!(
            sent > 2 * (budget + READ_CHUNK),
            "the socket buffer should hold more than a budget ({sent})"
        );
        let mut client = Client::new(
            Stream::Unix(mio::net::UnixStream::from_std(ours)),
            "127.0.0.1".into(),
        );
        let limits = Limits::default();
        assert!(matches!(client.advance(&limits, budget), Advance::Yield));
        assert!(matches!(client.advance(&limits, budget), Advance::Yield));
        assert!(matches!(
            client.advance(&limits, usize::MAX),
            Advance::NeedMore
        ));
    }

    /// A keep-alive connection that received a large head keeps no more
    /// than a small buffer once it is idle.
    #[test]
    fn idle_connection_gives_back_its_peak_read_buffer() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let big = "a".repeat(60 * 1024);
        theirs
            .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
            .unwrap();
        let mut client = Client::new(
            Stream::Unix(mio::net::UnixStream::from_std(ours)),
            "127.0.0.1".into(),
        );
        let limits = Limits::default();
        assert!(matches!(
            client.advance(&limits, usize::MAX),
            Advance::Ready
        ));
        assert!(
            client.reader.buffer_capacity() >= 60 * 1024,
            "the head was buffered"
        );
        client.reset_for_next_request();
        assert!(matches!(
            client.advance(&limits, usize::MAX),
            Advance::NeedMore
        ));
        assert!(
            client.reader.buffer_capacity() <= IDLE_KEEP_FOR_TEST,
            "idle buffer kept {} bytes",
            client.reader.buffer_capacity()
        );
    }

    const IDLE_KEEP_FOR_TEST: usize = 4 * 1024;

    /// A client resets its connection with part of a spilled body still
    /// queued: epoll reports the reset together with those bytes, and only
    /// once. Reading must go past them to the reset, though the last read
    /// of the bytes is short (it ended as "drained", and the connection
    /// sat until first_data_timeout with its socket and temporary file).
    #[test]
    fn a_reset_reported_with_queued_bytes_is_read_through() {
        use std::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut client = Client::new(
            Stream::Tcp(mio::net::TcpStream::from_std(ours)),
            "127.0.0.1".into(),
        );
        let limits = Limits::default();
        assert!(matches!(
            client.advance(&limits, usize::MAX),
            Advance::NeedMore
        ));
        // Head and part of the body in one write (Nagle could hold a second
        // one back until the reset drops it): less than a loopback window,
        // and no multiple of a read.
        let mut sent = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n".to_vec();
        sent.resize(sent.len() + 50_000, b'y');
        peer.write_all(&sent).unwrap();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(&peer, nix::sys::socket::sockopt::Linger, &linger).unwrap();
        drop(peer);
        // The reset has arrived (on loopback, before the close returned;
        // waited for all the same).
        let hung_up = nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR;
        let mut waited = 0;
        loop {
            let mut fds = [nix::poll::PollFd::new(
                client.stream.fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap();
            if fds[0].revents().is_some_and(|r| r.intersects(hung_up)) {
                break;
            }
            waited += 1;
            assert!(waited < 50, "no reset seen on the server's socket");
        }
        client.readable(true);
        assert!(matches!(client.advance(&limits, usize::MAX), Advance::Gone));
    }
}
