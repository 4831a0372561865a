//! The modules that touch Ruby: its objects, its threads and the GVL. The
//! rest of the crate is plain Rust.

pub mod env;
pub mod gvl;
pub mod pool;
pub mod request;
pub mod server;
