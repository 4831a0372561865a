//! Writing the responses the pool handed back (see [`crate::outgoing`]),
//! then keeping or closing the connection.

use mio::{Interest, Token};

use super::{far_future, Reactor, Slot};
use crate::metrics::Phase;
use crate::outgoing::Flow;

impl Reactor {
    /// Writes what the socket takes; when done, the connection is kept for
    /// the next request or closed, and leaves the in-flight count.
    ///
    /// The write timeout runs from the last write that made progress: any
    /// other event (the client sending more bytes, say) leaves it alone, so
    /// a client that stops reading is dropped however chatty it is. What is
    /// held in memory meanwhile is bounded by the budget the pool thread
    /// reserved before the hand-off ([`crate::budget`]).
    pub(super) fn continue_writing(&mut self, key: usize) {
        let Some(Slot::Writing {
            client,
            out,
            deadline,
        }) = self.clients.get_mut(key)
        else {
            return;
        };
        let before = out.sent();
        // A deadline further off than the write timeout is none: a stream
        // was waiting for its producer, and the clock starts now.
        let unset = *deadline > self.now + self.timeouts.write;
        let flow = out.write_to(&mut client.stream);
        // The first byte is out and more are to come: the write phase began.
        if matches!(flow, Ok(Flow::Waiting | Flow::SocketFull)) && out.sent() > 0 {
            client.timing.began_writing();
        }
        match flow {
            Ok(Flow::Waiting) => {
                // The app is producing: no write timeout while the client
                // has nothing to read.
                *deadline = far_future(self.now);
            }
            Ok(Flow::SocketFull) => {
                let progressed = out.sent() > before || !out.waited || unset;
                if !out.waited {
                    out.waited = true;
                    let _ = self.poll.registry().reregister(
                        client.stream.source(),
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
                if progressed {
                    self.set_deadline(key, self.timeouts.write);
                }
            }
            Ok(Flow::Done) => {
                self.busy = self.busy.saturating_sub(1);
                let keep = out.keep_alive && !self.shared.stopping();
                let Slot::Writing {
                    mut client, out, ..
                } = std::mem::replace(&mut self.clients[key], Slot::busy())
                else {
                    unreachable!()
                };
                client.timing.finished_writing();
                self.shared.metrics.record(Phase::Write, &client.timing);
                if out.waited {
                    let _ = self.poll.registry().reregister(
                        client.stream.source(),
                        Token(key),
                        Interest::READABLE,
                    );
                }
                // The response's budget and file go now, not with the slot;
                // its buffers stay with the connection for the next one.
                let spare = out.into_spare();
                if !keep {
                    let _ = self.poll.registry().deregister(client.stream.source());
                    self.clients.remove(key);
                    return;
                }
                client.reset_for_next_request();
                client.spare = spare;
                self.clients[key] = Slot::Waiting {
                    client,
                    deadline: far_future(self.now),
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
