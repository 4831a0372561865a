//! `Native::Server.new`'s options Hash, read into the core's [`Config`].
//! Every key is required (a missing one raises `KeyError`): the defaults
//! are Ruby's (`Rustpuma::Server#native_options`), and a value this side
//! filled in for itself could silently disagree with them.

use std::time::Duration;

use magnus::{Error, RHash, Ruby, TryConvert};

use crate::client::Limits;
use crate::config::{Config, Timeouts};
use crate::ruby::error::Failure;

pub(crate) fn config(ruby: &Ruby, options: RHash) -> Result<Config, Error> {
    let seconds = |key: &str| -> Result<Duration, Error> {
        let secs: f64 = required(ruby, options, key)?;
        Duration::try_from_secs_f64(secs.max(0.0)).map_err(|_| {
            Failure::Argument(format!("{key}: {secs} is not a number of seconds")).into()
        })
    };
    let timeouts = Timeouts {
        first_data: seconds("first_data_timeout")?,
        persistent: seconds("persistent_timeout")?,
        write: seconds("write_timeout")?,
    };
    let max_threads: usize = required(ruby, options, "max_threads")?;
    let accept_delay: Option<f64> = required(ruby, options, "accept_delay")?;
    let methods: Option<Vec<String>> = required(ruby, options, "supported_http_methods")?;
    let limits = Limits {
        max_body: required(ruby, options, "http_content_length_limit")?,
        errors_to_app: required(ruby, options, "errors_to_app")?,
        methods: methods.map(Into::into),
        proxy_protocol: required(ruby, options, "proxy_protocol")?,
        debug: required(ruby, options, "debug")?,
        drain_on_shutdown: required(ruby, options, "drain_on_shutdown")?,
        accept_delay: accept_delay
            .filter(|d| *d > 0.0)
            .map(|d| (Duration::from_secs_f64(d), max_threads)),
    };
    let slow_reader_limit: u64 = required(ruby, options, "slow_reader_buffer_limit")?;
    let stream_limit: u64 = required(ruby, options, "streaming_body_buffer_limit")?;
    Ok(Config {
        timeouts,
        limits,
        slow_reader_limit: slow_reader_limit.try_into().unwrap_or(usize::MAX),
        stream_limit: stream_limit.try_into().unwrap_or(usize::MAX),
        max_keep_alive: required(ruby, options, "max_keep_alive")?,
        keep_alives: required(ruby, options, "enable_keep_alives")?,
        metrics: required(ruby, options, "request_metrics")?,
    })
}

/// The value at `key` (a Symbol); `KeyError` when Ruby did not pass it. An
/// `Option` type accepts nil, nothing else does.
fn required<T: TryConvert>(ruby: &Ruby, options: RHash, key: &str) -> Result<T, Error> {
    options.fetch(ruby.to_symbol(key))
}
