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
//! every response), and the GC may then free the strings. Until then they
//! stay pinned: with no further request, the last responses' strings stay.
//!
//! Nothing here takes a lock a fork could leave held: the reactor pushes
//! ids onto [`RELEASED`], a lock-free stack (its pause before a fork is
//! bounded, not guaranteed, so a fork may catch it mid-push), and
//! [`LENDERS`] is only touched by threads holding the GVL, and the thread
//! that forks holds it.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
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
/// GVL): a lock-free stack, taken whole.
static RELEASED: Released = Released(AtomicPtr::new(ptr::null_mut()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Buffers lent to responses not yet released, by address, and how many
/// lend each. Locked only by threads holding the GVL (so never by another
/// thread at a fork): counted up in `lend`, down in `release_finished`.
static LENDERS: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);

struct Released(AtomicPtr<Node>);

struct Node {
    id: u64,
    next: *mut Node,
}

impl Released {
    fn push(&self, id: u64) {
        let node = Box::into_raw(Box::new(Node {
            id,
            next: ptr::null_mut(),
        }));
        let mut head = self.0.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the exchange below publishes it.
            unsafe { (*node).next = head };
            match self
                .0
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Every id pushed so far (the stack is taken whole: no ABA).
    fn take_all(&self) -> Vec<u64> {
        if self.0.load(Ordering::Relaxed).is_null() {
            return Vec::new();
        }
        let mut next = self.0.swap(ptr::null_mut(), Ordering::Acquire);
        let mut ids = Vec::new();
        while !next.is_null() {
            // SAFETY: the swap made this list ours alone; each node came
            // from `Box::into_raw` in `push` and is freed once, here.
            let node = unsafe { Box::from_raw(next) };
            ids.push(node.id);
            next = node.next;
        }
        ids
    }
}

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
        RELEASED.push(self.0);
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
    /// The first lender of this buffer not yet released (see
    /// [`Lent::counted`]).
    counted: bool,
    _release: Arc<Release>,
}

impl LentString {
    /// Call with the GVL (see [`LENDERS`]).
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
    let ids = RELEASED.take_all();
    if ids.is_empty() {
        return Ok(());
    }
    let pins = PINS.get_inner_with(ruby);
    let mut addresses = Vec::new();
    for id in ids {
        let Some(keep) = pins.delete::<u64, Option<RArray>>(id)? else {
            continue;
        };
        for i in 0..keep.len() {
            let s: RString = keep.entry(i as isize)?;
            // SAFETY: the GVL is held; only the buffer's address is read,
            // the same one `lend` counted (a lent string's buffer stays put).
            addresses.push(unsafe { s.as_slice() }.as_ptr() as usize);
        }
    }
    // No Ruby call while the lock is held: it is never held without the GVL.
    let mut lenders = LENDERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = lenders.as_mut() {
        for address in addresses {
            if let Some(holders) = map.get_mut(&address) {
                *holders -= 1;
                if *holders == 0 {
                    map.remove(&address);
                }
            }
        }
    }
    Ok(())
}

/// In a forked child: the parent's responses are not ours to send.
pub(crate) fn forget_in_child(ruby: &Ruby) {
    RELEASED.take_all();
    *LENDERS.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let _ = PINS
        .get_inner_with(ruby)
        .funcall::<_, _, magnus::Value>("clear", ());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// A child forked while another thread pushes ids (the reactor, which
    /// a fork may catch mid-push) can push and take ids itself. With a
    /// lock, a child forked while the pusher held it waited forever.
    #[test]
    fn a_child_forked_during_pushes_can_push_and_take() {
        let released = Arc::new(Released(AtomicPtr::new(ptr::null_mut())));
        let stop = Arc::new(AtomicBool::new(false));
        let pusher = {
            let (released, stop) = (released.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    released.push(1);
                    released.take_all();
                }
            })
        };
        let mut hung = 0;
        for _ in 0..40 {
            // SAFETY: the child only uses `released` and exits with
            // `_exit`; glibc makes malloc safe after fork.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                released.take_all();
                released.push(7);
                let ok = released.take_all() == vec![7];
                // SAFETY: ends the child without running the parent's
                // destructors or test harness.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let until = Instant::now() + Duration::from_secs(5);
            let mut status = 0;
            loop {
                // SAFETY: waits for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
                    break;
                }
                if Instant::now() >= until {
                    hung += 1;
                    // SAFETY: our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::Relaxed);
        pusher.join().unwrap();
        assert_eq!(hung, 0, "children that never finished");
    }
}
