//! rustpuma's native core: a Rack server's listener, reactor and HTTP/1.1
//! handling in Rust, driven by Ruby glue in `lib/rustpuma/`.
//!
//! The request path, in module order: [`socket`] (listeners and client
//! sockets) → [`reactor`] (mio event loop) → [`client`] (one connection's
//! buffering, using [`http`] and [`body`]) → [`queue`] and [`ruby::pool`]
//! (hand-off to Ruby threads, via [`ruby::gvl`]) → [`ruby::request`] (the Ruby-facing
//! request: [`ruby::env`] in, response out). [`ruby::server`] ties them
//! together for Ruby. [`fds`] (the descriptors the core owns) and
//! `ruby::fork` (what a forked child does with them) keep forks safe.
//!
//! Everything that touches Ruby (its objects, its threads, the GVL) lives in
//! [`ruby`], the only module allowed `unsafe`; the rest is plain Rust that
//! never sees a Ruby value.

#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    rust_2018_idioms
)]

pub mod body;
mod budget;
mod client;
mod config;
pub mod fds;
mod file_range;
pub mod http;
mod log;
mod metrics;
mod outgoing;
mod queue;
mod reactor;
pub mod reader;
#[allow(unsafe_code)]
mod ruby;
mod socket;
mod stream_queue;
mod timers;
mod tls;
mod tunnel;
mod vectored;
