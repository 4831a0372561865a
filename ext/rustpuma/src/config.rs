//! What Ruby configures in the native core, as plain values. Ruby owns every
//! default (`lib/rustpuma/configuration.rb`, and `Const::WRITE_TIMEOUT` for
//! the one Puma does not let users change) and passes every value: nothing
//! here has a `Default`, so the core cannot run on a value of its own that
//! disagrees with Ruby's. `ruby/options.rs` builds it from Ruby's Hash.

use std::time::Duration;

use crate::reader::Limits;

/// How long a connection may take at each stage before it is closed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// `first_data_timeout`: a new connection's time to send its request,
    /// and the time allowed between reads of one request.
    pub(crate) first_data: Duration,
    /// `persistent_timeout`: a kept-alive connection's time to start its
    /// next request.
    pub(crate) persistent: Duration,
    /// Puma's write timeout: how long a client may take no response bytes.
    pub(crate) write: Duration,
}

/// One server's settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) timeouts: Timeouts,
    pub(crate) limits: Limits,
    /// `slow_reader_buffer_limit`: response bytes the reactor holds for
    /// slow readers before it sheds one.
    pub(crate) slow_reader_limit: usize,
    /// `streaming_body_buffer_limit`: bytes of one streamed body held for
    /// its client before the app's thread waits for it to read.
    pub(crate) stream_limit: usize,
    /// `max_keep_alive`: requests served on one connection before it closes
    /// (`None`: no limit).
    pub(crate) max_keep_alive: Option<u64>,
    /// `enable_keep_alives` (and `queue_requests`): false closes every
    /// connection after its response.
    pub(crate) keep_alives: bool,
    /// `request_metrics`: time each request's phases (`metrics.rs`).
    pub(crate) metrics: bool,
}
