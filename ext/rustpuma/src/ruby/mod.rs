//! The modules that touch Ruby: its objects, its threads and the GVL. The
//! rest of the crate is plain Rust.

pub(crate) mod env;
pub(crate) mod gvl;
pub(crate) mod pool;
pub(crate) mod request;
pub(crate) mod server;
