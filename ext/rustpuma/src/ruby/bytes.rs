//! Copying a Ruby String's bytes. Ruby may change, move (GC compaction) or
//! free them as soon as Ruby code runs or an object is allocated, so they
//! are copied out at once, on a Ruby thread that holds the GVL: every
//! Ruby-facing method is one, and no closure given to `gvl::without_gvl`
//! may call these.
//!
//! Three places read a string in place instead: response header names and
//! values are framed straight from them ([`peek`]), and, each with its own
//! `SAFETY` note, a streamed body part (`write_body`) and large response
//! bodies written from frozen heap strings (`request.rs`, `Piece::Pinned`).

use magnus::RString;

/// `s`'s bytes, copied.
pub(crate) fn copy(s: RString) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    append(s, &mut out);
    out
}

/// Appends `s`'s bytes to `out`.
pub(crate) fn append(s: RString, out: &mut Vec<u8>) {
    // SAFETY: this thread holds the GVL (see the module note) and nothing
    // between the borrow and the end of the copy runs Ruby code or
    // allocates a Ruby object.
    out.extend_from_slice(unsafe { s.as_slice() });
}

/// Runs `f` on `s`'s bytes in place, without a copy. `f` must not run Ruby
/// code nor allocate a Ruby object (it gets plain bytes, and the callers'
/// closures only parse and copy them into Rust buffers).
pub(crate) fn peek<R>(s: RString, f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: this thread holds the GVL (see the module note), and `f`,
    // by its contract, runs no Ruby code and allocates no Ruby object, so
    // the bytes stay where they are until it returns.
    f(unsafe { s.as_slice() })
}

/// [`peek`] for two strings at once.
pub(crate) fn peek_pair<R>(a: RString, b: RString, f: impl FnOnce(&[u8], &[u8]) -> R) -> R {
    peek(a, |a| peek(b, |b| f(a, b)))
}
