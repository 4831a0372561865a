//! The one error type of the Ruby-facing methods, and the one place where it
//! becomes a Ruby exception.

use std::io;

use magnus::{Error, Ruby};

/// Which Ruby exception to raise, with its message.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `IOError`: the socket, a file, or the request's own state.
    Io(String),
    /// `ArgumentError`: a setting Ruby passed cannot be used.
    Argument(String),
    /// `TypeError`: the app returned something of the wrong kind.
    Type(String),
    /// `RuntimeError`: the process could not do what was asked (a thread).
    Runtime(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e.to_string())
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        // Only Ruby-facing methods return a `Failure`, and they run on a Ruby
        // thread.
        let ruby = Ruby::get().expect("a Ruby exception built off a Ruby thread");
        let (class, message) = match failure {
            Failure::Io(m) => (ruby.exception_io_error(), m),
            Failure::Argument(m) => (ruby.exception_arg_error(), m),
            Failure::Type(m) => (ruby.exception_type_error(), m),
            Failure::Runtime(m) => (ruby.exception_runtime_error(), m),
        };
        Error::new(class, message)
    }
}
