//! Taking new connections off the listeners.

use std::io;
use std::time::Instant;

use mio::{Interest, Token};

use super::{far_future, Reactor, Slot, ACCEPT_BACKOFF};
use crate::client::Client;
use crate::log;

impl Reactor {
    pub(super) fn accept(&mut self, index: usize) {
        if self.shared.stopping() {
            return;
        }
        self.accept_pending(index);
    }

    pub(super) fn accept_pending(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index).and_then(Option::as_ref) else { return };
            match listener.accept() {
                Ok((stream, remote_addr)) => {
                    let entry = self.clients.vacant_entry();
                    let key = entry.key();
                    let mut client = Box::new(Client::new(stream, remote_addr));
                    if self.poll.registry().register(client.stream.source(), Token(key), Interest::READABLE).is_err() {
                        continue;
                    }
                    entry.insert(Slot::Waiting { client, deadline: far_future() });
                    self.set_deadline(key, self.timeouts.first_data);
                    // The client may have sent its request with the handshake.
                    self.on_readable(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE and friends: the pending connection stays in
                    // the backlog; try again shortly.
                    log::warn(&format!("accept failed: {e}"));
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}
