//! Bookkeeping of relayed hijacks in the reactor's slots; the pumping
//! itself is [`crate::tunnel`]'s.

use mio::{Interest, Token};

use super::{Reactor, Slot};
use crate::client::Client;
use crate::fds::Owned;
use crate::tunnel::{Pumped, Tunnel};

impl Reactor {
    pub(super) fn start_tunnel(
        &mut self,
        key: usize,
        mut client: Box<Client>,
        mut pair: Owned<mio::net::UnixStream>,
    ) {
        let pair_key = self.clients.insert(Slot::TunnelPeer { tls_key: key });
        let interest = Interest::READABLE | Interest::WRITABLE;
        let registered = self
            .poll
            .registry()
            .register(&mut *pair, Token(pair_key), interest)
            .is_ok()
            && self
                .poll
                .registry()
                .reregister(client.stream.source(), Token(key), interest)
                .is_ok();
        self.clients[key] = Slot::Tunnel(Box::new(Tunnel::new(client, pair, pair_key)));
        self.tunnel_slots = self.tunnel_slots.saturating_add(2);
        if registered {
            self.pump_tunnel(key);
        } else {
            self.close_tunnel(key);
        }
    }

    pub(super) fn pump_tunnel(&mut self, key: usize) {
        let Some(Slot::Tunnel(tunnel)) = self.clients.get_mut(key) else {
            return;
        };
        match tunnel.pump(super::READ_BUDGET) {
            Pumped::Open => {}
            Pumped::MoreLater => self.ready.push(key),
            Pumped::Closed => self.close_tunnel(key),
        }
    }

    pub(super) fn close_tunnel(&mut self, key: usize) {
        if let Slot::Tunnel(mut tunnel) = self.clients.remove(key) {
            let _ = self.poll.registry().deregister(&mut *tunnel.pair);
            let _ = self
                .poll
                .registry()
                .deregister(tunnel.client.stream.source());
            self.clients.remove(tunnel.pair_key);
            self.tunnel_slots = self.tunnel_slots.saturating_sub(2);
        }
    }
}
