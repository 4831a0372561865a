//! Writing the responses the pool handed back as bytes (see
//! [`crate::outgoing`]), then keeping or closing the connection.

use mio::{Interest, Token};

use super::{far_future, Reactor, Slot};
use crate::socket::WRITE_TIMEOUT;

impl Reactor {
    /// Writes what the socket takes; when done, the connection is kept for
    /// the next request or closed, and leaves the in-flight count.
    pub(super) fn continue_writing(&mut self, key: usize) {
        let Some(Slot::Writing { client, out, .. }) = self.clients.get_mut(key) else { return };
        match out.write_to(&mut client.stream) {
            Ok(false) => {
                out.waited = true;
                let _ = self.poll.registry().reregister(
                    client.stream.source(),
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                );
                self.set_deadline(key, WRITE_TIMEOUT);
            }
            Ok(true) => {
                self.busy = self.busy.saturating_sub(1);
                let keep = out.keep_alive && !self.shared.stopping();
                let Slot::Writing { mut client, out, .. } = std::mem::replace(&mut self.clients[key], Slot::Busy) else {
                    unreachable!()
                };
                if out.waited {
                    let _ = self.poll.registry().reregister(client.stream.source(), Token(key), Interest::READABLE);
                }
                if !keep {
                    let _ = self.poll.registry().deregister(client.stream.source());
                    self.clients.remove(key);
                    return;
                }
                client.reset_for_next_request();
                self.clients[key] = Slot::Waiting { client, deadline: far_future() };
                self.set_deadline(key, self.timeouts.persistent);
                self.on_readable(key);
            }
            Err(_) => {
                self.busy = self.busy.saturating_sub(1);
                self.close(key);
            }
        }
    }
}
