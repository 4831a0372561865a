//! App strings lent to the reactor without a copy: large Array bodies
//! (8 MiB strings, say) are written from the app's own buffers, by the
//! reactor, for as long as the client takes to read them.
//!
//! A string may be lent when its bytes cannot change or move while Ruby
//! runs on without us: frozen (nobody changes or frees the bytes), on the
//! heap and longer than any object slot (GC compaction moves objects, not
//! such buffers; on Ruby 3.2+ it may re-embed a short heap string). It is
//! kept alive by [`PINS`], a GC-registered Hash, under one id per response.
//!
//! The reactor never touches a Ruby value: when the response's last lent
//! piece drops (written, or the connection closed), its id goes to
//! [`RELEASED`], plain Rust data; a pool thread removes those ids from the
//! Hash the next time it holds the GVL ([`release_finished`], called for
//! every response), and the GC may then free the strings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use magnus::prelude::*;
use magnus::rb_sys::AsRawValue;
use magnus::value::{InnerValue, Lazy};
use magnus::{Error, RArray, RHash, RString, Ruby};

use crate::outgoing::Lent;

/// Strings shorter than this are copied: Ruby keeps short strings inside
/// their object slot, which compaction moves. No slot is this large.
pub(crate) const PIN_MIN: usize = 4 * 1024;

/// Lent strings by response id: id => Array of frozen Strings.
static PINS: Lazy<RHash> = Lazy::new(|ruby| ruby.hash_new());
/// Ids whose responses are over (pushed by the reactor, drained under the
/// GVL).
static RELEASED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Buffers lent to live responses, by address, and how many hold each.
static LENDERS: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);
/// `RELEASED` may hold ids: spares every response the lock otherwise.
static ANY_RELEASED: AtomicBool = AtomicBool::new(false);

/// The strings one response lends: call [`Pins::lend`] for each string,
/// under the GVL.
pub(crate) struct Pins {
    keep: RArray,
    release: Arc<Release>,
}

/// Queues the response's id for release when its last piece drops.
struct Release(u64);

impl Drop for Release {
    fn drop(&mut self) {
        RELEASED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
        ANY_RELEASED.store(true, Ordering::Release);
    }
}

/// A lent string's buffer, from its start: [`LentBuf::take`] says how much
/// of it the response sends.
pub(crate) struct LentBuf(LentString);

impl LentBuf {
    pub(crate) fn take(mut self, len: usize) -> Box<dyn Lent> {
        self.0.len = self.0.len.min(len);
        Box::new(self.0)
    }
}

struct LentString {
    ptr: *const u8,
    len: usize,
    /// The first live lender of this buffer (see [`Lent::counted`]).
    counted: bool,
    _release: Arc<Release>,
}

impl LentString {
    fn new(ptr: *const u8, len: usize, release: Arc<Release>) -> Self {
        let mut lenders = LENDERS.lock().unwrap_or_else(|e| e.into_inner());
        let holders = lenders
            .get_or_insert_with(HashMap::new)
            .entry(ptr as usize)
            .or_insert(0);
        *holders += 1;
        LentString {
            ptr,
            len,
            counted: *holders == 1,
            _release: release,
        }
    }
}

impl Drop for LentString {
    fn drop(&mut self) {
        let mut lenders = LENDERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = lenders.as_mut() {
            if let Some(holders) = map.get_mut(&(self.ptr as usize)) {
                *holders -= 1;
                if *holders == 0 {
                    map.remove(&(self.ptr as usize));
                }
            }
        }
    }
}

// SAFETY: the bytes behind `ptr` belong to a frozen heap String that PINS
// keeps alive until `_release` (held here) has dropped and a thread holding
// the GVL removed it; nothing writes them meanwhile (see the module doc).
// Reading them from another thread is then reading immutable memory.
unsafe impl Send for LentString {}

impl Lent for LentString {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see `unsafe impl Send` above: valid, unchanged bytes for
        // as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn counted(&self) -> bool {
        self.counted
    }
}

impl Pins {
    pub(crate) fn new(ruby: &Ruby) -> Result<Self, Error> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let keep = ruby.ary_new();
        PINS.get_inner_with(ruby).aset(id, keep)?;
        Ok(Pins {
            keep,
            release: Arc::new(Release(id)),
        })
    }

    /// `s`'s buffer, lent, when the string may be lent (see the module
    /// doc); None when it must be copied. Freezing a long string does not
    /// copy it: Ruby moves its buffer to a new frozen string that the
    /// original shares, so a later change to the original copies on write
    /// and leaves ours intact. This allocates Ruby objects: take `s`'s
    /// bytes for anything else after it.
    pub(crate) fn lend(&self, s: RString) -> Result<Option<LentBuf>, Error> {
        if s.len() < PIN_MIN {
            return Ok(None);
        }
        let frozen = RString::new_frozen(s);
        // SAFETY: reads the flags word of a live String while holding the GVL.
        let flags = unsafe { (*(frozen.as_raw() as *const rb_sys::RBasic)).flags };
        let on_heap = flags & (rb_sys::ruby_rstring_flags::RSTRING_NOEMBED as rb_sys::VALUE) != 0;
        if !on_heap || frozen.len() < PIN_MIN {
            return Ok(None);
        }
        self.keep.push(frozen)?;
        // SAFETY: the GVL is held; the address is taken once, now, from a
        // string that stays where it is (module doc) and alive in PINS.
        let bytes = unsafe { frozen.as_slice() };
        Ok(Some(LentBuf(LentString::new(
            bytes.as_ptr(),
            bytes.len(),
            self.release.clone(),
        ))))
    }
}

/// Lets the GC have the strings of responses the reactor has finished.
/// Call with the GVL (every response does).
pub(crate) fn release_finished(ruby: &Ruby) -> Result<(), Error> {
    if !ANY_RELEASED.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    let ids = std::mem::take(&mut *RELEASED.lock().unwrap_or_else(|e| e.into_inner()));
    if ids.is_empty() {
        return Ok(());
    }
    let pins = PINS.get_inner_with(ruby);
    for id in ids {
        pins.delete::<u64, magnus::Value>(id)?;
    }
    Ok(())
}

/// In a forked child: the parent's responses are not ours to send.
pub(crate) fn forget_in_child(ruby: &Ruby) {
    if let Ok(mut released) = RELEASED.try_lock() {
        released.clear();
    }
    if let Ok(mut lenders) = LENDERS.try_lock() {
        *lenders = None;
    }
    let _ = PINS
        .get_inner_with(ruby)
        .funcall::<_, _, magnus::Value>("clear", ());
}
