//! The Ruby boundary for blocking work: running Rust code with the GVL
//! released, and waking it when Ruby wants the thread back.
//!
//! Every `unsafe` call into Ruby's thread API lives here. The rest of the
//! crate calls [`without_gvl`] with a closure that touches no Ruby object and
//! gets an [`Interrupt`] to watch, so that `Thread#kill`, Ctrl-C and shutdown
//! reach a pool thread that is parked on the request queue or waiting for a
//! slow client to accept bytes.
//!
//! We use `rb_thread_call_without_gvl2`, not `..._gvl`: the latter raises
//! pending interrupts itself, which would `longjmp` across Rust frames. The
//! `2` variant only returns; the interrupt is then handled by the VM as soon
//! as the calling Ruby code continues.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Raised by Ruby's unblocking function: a flag for loops that poll, and an
/// `unpark` for code parked with `std::thread::park` (the pool's queue).
pub(crate) struct Interrupt {
    flag: AtomicBool,
    /// The Ruby thread this belongs to (it is created on it).
    thread: std::thread::Thread,
}

impl Interrupt {
    fn new() -> Self {
        Interrupt {
            flag: AtomicBool::new(false),
            thread: std::thread::current(),
        }
    }

    /// Set when Ruby interrupts the thread: the core's write loop polls it.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    fn raise(&self) {
        self.flag.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Forget an interrupt that was already handled: Ruby checks pending
    /// interrupts before it releases the GVL, so a stale one must not cut
    /// the next wait short.
    fn reset(&self) {
        self.flag.store(false, Ordering::Release);
    }
}

thread_local! {
    // One per Ruby thread, reused by every blocking call on that thread.
    static INTERRUPT: RefCell<Option<Arc<Interrupt>>> = const { RefCell::new(None) };
}

fn current_interrupt() -> Arc<Interrupt> {
    INTERRUPT.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| Arc::new(Interrupt::new()))
            .clone()
    })
}

struct Call<'a, F, R> {
    func: Option<F>,
    interrupt: &'a Interrupt,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn trampoline<F, R>(data: *mut c_void) -> *mut c_void
where
    F: FnOnce(&Interrupt) -> R,
{
    // SAFETY: `data` is the `&mut Call` that `without_gvl` passed to Ruby; it
    // outlives the call and nothing else touches it while Ruby runs us.
    let call = unsafe { &mut *(data as *mut Call<'_, F, R>) };
    if let Some(func) = call.func.take() {
        let interrupt = call.interrupt;
        // A panic must not unwind into Ruby's C frames.
        call.result = Some(panic::catch_unwind(AssertUnwindSafe(|| func(interrupt))));
    }
    ptr::null_mut()
}

unsafe extern "C" fn unblock(data: *mut c_void) {
    // SAFETY: `data` is the `Interrupt` kept alive by the `Arc` held in
    // `without_gvl` for the whole blocking region; `raise` is thread-safe.
    let interrupt = unsafe { &*(data as *const Interrupt) };
    interrupt.raise();
}

/// Runs `func` with the GVL released. Returns `None` when Ruby had an
/// interrupt pending and did not run `func` at all; the caller returns to
/// Ruby, which then handles the interrupt.
///
/// `func` must not touch any Ruby object: it runs in parallel with Ruby.
pub(crate) fn without_gvl<F, R>(func: F) -> Option<R>
where
    F: FnOnce(&Interrupt) -> R,
{
    let interrupt = current_interrupt();
    interrupt.reset();
    let mut call = Call {
        func: Some(func),
        interrupt: &interrupt,
        result: None,
    };
    // SAFETY: called on a Ruby thread holding the GVL (every caller is a
    // method invoked from Ruby). `call` and `interrupt` outlive the call;
    // the trampoline catches panics so nothing unwinds through Ruby, and
    // the `2` variant never longjmps out of here.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(trampoline::<F, R>),
            &mut call as *mut Call<'_, F, R> as *mut c_void,
            Some(unblock),
            Arc::as_ptr(&interrupt) as *mut c_void,
        );
    }
    match call.result {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(payload)) => panic::resume_unwind(payload),
    }
}

/// How often [`without_gvl_retrying`] lets Ruby handle an interrupt and
/// tries again before giving up (an interrupt deferred by
/// `Thread.handle_interrupt` stays pending however often it is checked).
const INTERRUPT_RETRIES: u32 = 1000;

/// [`without_gvl`] for work that must be done, such as writing a response.
/// Ruby skips `func` whenever any interrupt is pending, and most often that
/// is only the timer asking this thread to let others run; taking that for
/// a failure dropped responses under load. So the interrupt is handled
/// first (which raises for `Thread#kill` or `Thread#raise`, returned as
/// `Err`) and `func` is tried again. `Ok(None)`: still skipped after
/// `INTERRUPT_RETRIES` turns.
pub(crate) fn without_gvl_retrying<F, R>(
    ruby: &magnus::Ruby,
    mut func: F,
) -> Result<Option<R>, magnus::Error>
where
    F: FnMut(&Interrupt) -> R,
{
    for _ in 0..INTERRUPT_RETRIES {
        if let Some(value) = without_gvl(&mut func) {
            return Ok(Some(value));
        }
        ruby.thread_check_ints()?;
    }
    Ok(None)
}
