//! The reactor's wake-up call: an eventfd of our own rather than mio's
//! `Waker`, whose descriptor cannot be reached, so that it is in the
//! registry of the core's descriptors ([`crate::fds`]) and a forked child
//! closes it.

use std::io;
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::fds::Owned;

pub(crate) struct Waker(Owned<EventFd>);

impl Waker {
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<Waker> {
        let fd = Owned::new(EventFd::from_value_and_flags(
            0,
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Waker(fd))
    }

    /// Every write is a new edge for epoll, even before the counter is read.
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self.0.write(1) {
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Called by the reactor when woken, so the counter never fills up.
    pub(crate) fn reset(&self) {
        let _ = self.0.read();
    }
}
