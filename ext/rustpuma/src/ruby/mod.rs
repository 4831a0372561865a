//! The Ruby boundary: every module that touches Ruby's objects, its threads
//! or the GVL, and the definition of `Rustpuma::Native`. The only part of
//! the crate allowed `unsafe` (each block says why in a `// SAFETY:` line);
//! the core it drives gets plain Rust values only.

pub(crate) mod bytes;
pub(crate) mod env;
pub(crate) mod error;
pub(crate) mod fatal;
pub(crate) mod fork;
pub(crate) mod gvl;
pub(crate) mod options;
pub(crate) mod pins;
pub(crate) mod pool;
pub(crate) mod request;
pub(crate) mod server;

// A private module, so that the `Init_rustpuma` the macro generates (with
// no doc comment) is not public API. It is here, not at the crate root,
// because an exported `#[no_mangle]` function counts as `unsafe_code`.
mod entry {
    use super::{fork, request, server};
    use crate::log;
    use magnus::{function, method, prelude::*, Error, Ruby};

    /// Defines `Rustpuma::Native` and its classes; called from `Init_rustpuma`,
    /// which Ruby runs on `require "rustpuma/rustpuma"`.
    #[magnus::init]
    fn init(ruby: &Ruby) -> Result<(), Error> {
        let rustpuma = ruby.define_module("Rustpuma")?;
        let native = rustpuma.define_module("Native")?;
        log::install_panic_hook();

        if std::env::var("RUSTPUMA_TEST_HOOKS").as_deref() == Ok("1") {
            native
                .define_singleton_method("__crash_reactor", function!(server::crash_reactor, 0))?;
            let server = native.define_class("Server", ruby.class_object())?;
            server.define_method("__parked?", method!(server::Server::is_parked, 0))?;
        }

        native.define_singleton_method("flush_log", function!(log::flush_for_ruby, 0))?;
        native.define_singleton_method("after_fork_child", function!(fork::after_fork_child, 0))?;

        let server = native.define_class("Server", ruby.class_object())?;
        server.define_singleton_method("new", function!(server::Server::new, 2))?;
        server.define_method("start", method!(server::Server::start, 0))?;
        server.define_method("next_request", method!(server::Server::next_request, 0))?;
        server.define_method("stop", method!(server::Server::stop, 0))?;
        server.define_method("backlog", method!(server::Server::backlog, 0))?;
        server.define_method("requests_count", method!(server::Server::requests_count, 0))?;
        server.define_method("take_maxima", method!(server::Server::take_maxima, 0))?;
        server.define_method("metrics", method!(server::Server::metrics, 0))?;
        let bounds = ruby.ary_from_vec(server::bucket_bounds());
        bounds.freeze();
        native.const_set("PHASE_BUCKET_BOUNDS", bounds)?;
        server.define_method("pause_for_fork", method!(server::Server::pause_for_fork, 0))?;
        server.define_method(
            "resume_after_fork",
            method!(server::Server::resume_after_fork, 0),
        )?;

        let request = native.define_class("Request", ruby.class_object())?;
        request.define_method("fill_env", method!(request::Request::fill_env, 1))?;
        request.define_method("rejection", method!(request::Request::rejection, 0))?;
        request.define_method("hijack_env", method!(request::Request::hijack_env, 0))?;
        request.define_method("remote_addr", method!(request::Request::remote_addr, 0))?;
        request.define_method("request_line", method!(request::Request::request_line, 0))?;
        request.define_method("respond", method!(request::Request::respond, 4))?;
        request.define_method("flush", method!(request::Request::flush, 0))?;
        request.define_method("write_body", method!(request::Request::write_body, 1))?;
        request.define_method("finish_body", method!(request::Request::finish_body, 0))?;
        request.define_method("respond_file", method!(request::Request::respond_file, 3))?;
        request.define_method("abort", method!(request::Request::abort, 0))?;
        request.define_method("early_hints", method!(request::Request::early_hints, 1))?;
        request.define_method("hijack", method!(request::Request::hijack, 0))?;
        request.define_method("hijacked?", method!(request::Request::is_hijacked, 0))?;
        request.define_method("head_sent?", method!(request::Request::is_head_sent, 0))?;
        request.define_method("finish", method!(request::Request::finish, 0))?;
        request.define_method("timings", method!(request::Request::timings, 0))?;
        Ok(())
    }
}
