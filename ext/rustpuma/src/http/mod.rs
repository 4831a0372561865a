//! HTTP/1.1 wire format: everything that turns bytes into a request head or a
//! request body, and a Rack response into bytes. Pure Rust, no Ruby, no I/O:
//! the reactor and the pool call into it with buffers.

pub mod chunked;
pub mod parser;
pub(crate) mod response;
pub(crate) mod writing;
