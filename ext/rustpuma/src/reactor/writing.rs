//! Writing the responses the pool handed back as bytes (see
//! [`crate::outgoing`]), then keeping or closing the connection.

use mio::{Interest, Token};

use super::{far_future, Reactor, Slot};
use crate::log;

impl Reactor {
    /// Writes what the socket takes; when done, the connection is kept for
    /// the next request or closed, and leaves the in-flight count.
    ///
    /// The write timeout runs from the last write that made progress: any
    /// other event (the client sending more bytes, say) leaves it alone, so
    /// a client that stops reading is dropped however chatty it is. What is
    /// left to write counts against `slow_reader_buffer_limit`.
    pub(super) fn continue_writing(&mut self, key: usize) {
        let Some(Slot::Writing {
            client, out, held, ..
        }) = self.clients.get_mut(key)
        else {
            return;
        };
        let before = out.left();
        match out.write_to(&mut client.stream) {
            Ok(false) => {
                let progressed = out.left() < before || !out.waited;
                if !out.waited {
                    out.waited = true;
                    let _ = self.poll.registry().reregister(
                        client.stream.source(),
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
                self.slow_held = self.slow_held - *held + out.left();
                *held = out.left();
                if self.slow_held > self.slow_reader_limit && self.slow_held > *held {
                    log::warn(&format!(
                        "! Shedding slow client {}: {} bytes of responses wait for slow readers, over slow_reader_buffer_limit ({} bytes)",
                        client.remote_addr, self.slow_held, self.slow_reader_limit
                    ));
                    self.busy = self.busy.saturating_sub(1);
                    self.close(key);
                    return;
                }
                if progressed {
                    self.set_deadline(key, self.timeouts.write);
                }
            }
            Ok(true) => {
                self.busy = self.busy.saturating_sub(1);
                let keep = out.keep_alive && !self.shared.stopping();
                let Slot::Writing {
                    mut client,
                    out,
                    held,
                    ..
                } = std::mem::replace(&mut self.clients[key], Slot::Busy)
                else {
                    unreachable!()
                };
                self.slow_held -= held;
                if out.waited {
                    let _ = self.poll.registry().reregister(
                        client.stream.source(),
                        Token(key),
                        Interest::READABLE,
                    );
                }
                if !keep {
                    let _ = self.poll.registry().deregister(client.stream.source());
                    self.clients.remove(key);
                    return;
                }
                client.reset_for_next_request();
                self.clients[key] = Slot::Waiting {
                    client,
                    deadline: far_future(),
                };
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
