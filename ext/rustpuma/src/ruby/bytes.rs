//! Copying a Ruby String's bytes. Ruby may change, move (GC compaction) or
//! free them as soon as Ruby code runs or an object is allocated, so they
//! are copied out at once, on a Ruby thread that holds the GVL: every
//! Ruby-facing method is one, and no closure given to `gvl::without_gvl`
//! may call these.
//!
//! Two places read a string in place instead, each with its own `SAFETY`
//! note: a streamed body part is framed straight from it (`write_body`),
//! and large response bodies are written from frozen heap strings
//! (`request.rs`, `Piece::Pinned`).

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
