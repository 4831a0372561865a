//! Hijacked connections that cannot simply be handed to Ruby as a file
//! descriptor: TLS ones (websockets over `ssl://`), and plain ones whose
//! client already sent bytes past the request (they sit in our buffer).
//!
//! The app gets one end of a Unix socket pair, and the reactor pumps bytes
//! between the other end and the client's stream: for TLS, decrypting what
//! the client sends and encrypting what the app writes. To the app it is a
//! plain socket, exactly as a direct hijack on a `tcp://` listener.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::UnixStream;

use crate::client::Client;
use crate::fds::Owned;

const CHUNK: usize = 16 * 1024;

pub(crate) struct Tunnel {
    pub client: Box<Client>,
    /// Ours; the app's end was handed to Ruby.
    pub pair: Owned<UnixStream>,
    /// The reactor's slot for `pair`.
    pub pair_key: usize,
    /// Decrypted bytes from the client not yet taken by the app.
    to_app: Vec<u8>,
    /// App bytes the TLS layer has not accepted yet.
    to_client: Vec<u8>,
    client_eof: bool,
}

pub(crate) enum Pumped {
    Open,
    /// The budget is spent with bytes possibly left: pump again later.
    MoreLater,
    /// Either side is done for good: drop the tunnel.
    Closed,
}

impl Tunnel {
    /// `client` still holds bytes read past the request (the first
    /// websocket frames, say): they go to the app first.
    pub(crate) fn new(mut client: Box<Client>, pair: Owned<UnixStream>, pair_key: usize) -> Self {
        let to_app = client.take_buffered();
        Tunnel {
            client,
            pair,
            pair_key,
            to_app,
            to_client: Vec::new(),
            client_eof: false,
        }
    }

    /// Moves bytes both ways until neither side can make progress, or
    /// `budget` bytes were read (then `MoreLater`: the sockets are
    /// edge-triggered, so the caller must come back without a new event).
    pub(crate) fn pump(&mut self, budget: usize) -> Pumped {
        match self.pump_both(budget) {
            Ok(Some(pumped)) => pumped,
            Ok(None) | Err(_) => Pumped::Closed,
        }
    }

    /// `Ok(None)`: the tunnel is done.
    fn pump_both(&mut self, budget: usize) -> io::Result<Option<Pumped>> {
        let mut buf = [0u8; CHUNK];
        let mut read = 0;
        loop {
            if read >= budget {
                return Ok(Some(Pumped::MoreLater));
            }
            let mut progress = false;

            if self.to_app.is_empty() && !self.client_eof {
                match fill(|b| self.client.stream.read(b), &mut buf, &mut self.to_app)? {
                    Filled::Eof => {
                        self.client_eof = true;
                        let _ = self.pair.shutdown(Shutdown::Write);
                        progress = true;
                    }
                    Filled::Bytes(n) => {
                        read += n;
                        progress = true;
                    }
                    Filled::Nothing => {}
                }
            }
            progress |= drain(|b| self.pair.write(b), &mut self.to_app)?;

            if self.to_client.is_empty() {
                match fill(|b| self.pair.read(b), &mut buf, &mut self.to_client)? {
                    // The app closed its socket: what it wrote is flushed
                    // below, then the connection ends.
                    Filled::Eof => return self.finish(),
                    Filled::Bytes(n) => {
                        read += n;
                        progress = true;
                    }
                    Filled::Nothing => {}
                }
            }
            progress |= drain(
                |b| self.client.stream.write_vectored(&[IoSlice::new(b)]),
                &mut self.to_client,
            )?;
            self.client.stream.flush_pending()?;

            if !progress {
                return Ok(Some(Pumped::Open));
            }
        }
    }

    /// Best effort: send what is left, then let the caller close.
    fn finish(&mut self) -> io::Result<Option<Pumped>> {
        if !self.to_client.is_empty() {
            let _ = self
                .client
                .stream
                .write_vectored(&[IoSlice::new(&self.to_client)]);
        }
        let _ = self.client.stream.flush_pending();
        Ok(None)
    }
}

/// What one read from a side of the tunnel gave.
enum Filled {
    Eof,
    Bytes(usize),
    /// Nothing to read now (or interrupted): try again on the next event.
    Nothing,
}

/// One read from a side of the tunnel, appended to the buffer for the other.
fn fill(
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    buf: &mut [u8],
    into: &mut Vec<u8>,
) -> io::Result<Filled> {
    match read(buf) {
        Ok(0) => Ok(Filled::Eof),
        Ok(n) => {
            into.extend_from_slice(&buf[..n]);
            Ok(Filled::Bytes(n))
        }
        Err(e) if would_block(&e) => Ok(Filled::Nothing),
        Err(e) => Err(e),
    }
}

/// One write of what `from` holds, if anything; true when bytes went out.
fn drain(write: impl FnOnce(&[u8]) -> io::Result<usize>, from: &mut Vec<u8>) -> io::Result<bool> {
    if from.is_empty() {
        return Ok(false);
    }
    match write(from) {
        Ok(n) => {
            from.drain(..n);
            Ok(n > 0)
        }
        Err(e) if would_block(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}
