//! The current context: reading it, and entering one for a scope.
//!
//! Baton keeps no store of its own: the current context *is*
//! `opentelemetry::Context::current()`, so spans started through the plain
//! `opentelemetry` API, and any library using it, see exactly what Baton sees.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::{Context, ContextGuard};

thread_local! {
    /// How many [`EnterGuard`]s are alive on this thread. A poll scope
    /// compares it before and after polling: a difference means a guard
    /// outlived the poll that created it, and its context is leaking into
    /// whatever this thread polls next.
    static OPEN_GUARDS: Cell<isize> = const { Cell::new(0) };
}

static LEAKED_GUARDS: AtomicU64 = AtomicU64::new(0);

/// The current context (≙ `AsyncLocalStorage.getStore()`).
///
/// Cheap: a thread-local read and two reference-count increments. To look at
/// the context without cloning it, use [`with_current`].
///
/// ```
/// let cx = baton::current();
/// assert!(baton::baggage::entries().is_empty());
/// # drop(cx);
/// ```
#[must_use]
pub fn current() -> Context {
    Context::current()
}

/// Calls `f` with a reference to the current context, without cloning it.
pub fn with_current<R>(f: impl FnOnce(&Context) -> R) -> R {
    Context::map_current(f)
}

/// Makes `cx` current until the returned guard is dropped (≙ a scoped
/// `AsyncLocalStorage.enterWith()`), for synchronous code.
///
/// The guard is `!Send` and must not be held across an `.await`: use
/// [`run`](crate::run) or [`InContext`](crate::InContext) in async code. A guard
/// that outlives the poll it was created in is caught: a debug build panics
/// with an explanation, a release build counts it in [`leaked_guards`]. The
/// workspace `clippy.toml` line `await-holding-invalid-types` flags it at
/// compile time too.
///
/// ```
/// use baton::Local;
/// static REQUEST_ID: Local<u32> = Local::new();
///
/// let cx = REQUEST_ID.set_in(&baton::current(), 7);
/// {
///     let _guard = baton::enter(cx);
///     assert_eq!(REQUEST_ID.get(), Some(7));
/// }
/// assert_eq!(REQUEST_ID.get(), None);
/// ```
pub fn enter(cx: Context) -> EnterGuard {
    OPEN_GUARDS.with(|n| n.set(n.get() + 1));
    EnterGuard {
        _otel: cx.attach(),
        _not_send: PhantomData,
    }
}

/// Runs `f` with `cx` as the current context, restoring the previous one
/// afterwards, even if `f` panics (≙ `AsyncLocalStorage.run()` with a
/// synchronous callback).
///
/// ```
/// use baton::Local;
/// static USER: Local<&'static str> = Local::new();
///
/// let cx = USER.set_in(&baton::current(), "ada");
/// assert_eq!(baton::run_sync(cx, || USER.get()), Some("ada"));
/// assert_eq!(USER.get(), None);
/// ```
pub fn run_sync<R>(cx: Context, f: impl FnOnce() -> R) -> R {
    let _guard = enter(cx);
    f()
}

/// The guard returned by [`enter`]: the entered context stays current until
/// it is dropped, and the previous one comes back then, also on panic.
#[must_use = "the context is current only while the guard is alive"]
#[derive(Debug)]
pub struct EnterGuard {
    _otel: ContextGuard,
    // Already `!Send` through `ContextGuard`; stated here so it stays so.
    _not_send: PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        OPEN_GUARDS.with(|n| n.set(n.get() - 1));
    }
}

/// How many times a context guard was found to outlive the poll that
/// created it (held across an `.await`, or forgotten). Always 0 in a correct
/// program; debug builds panic at the first one instead of counting.
pub fn leaked_guards() -> u64 {
    LEAKED_GUARDS.load(Ordering::Relaxed)
}

/// Where each poll of a context-carrying future starts: makes `cx` current
/// for the duration of `f` and checks that no guard created inside escapes.
///
/// Every poll attaches its own context, so a context leaked by some other
/// future's guard never decides what this one sees.
pub(crate) fn poll_scope<R>(cx: &Context, f: impl FnOnce() -> R) -> R {
    let open = open_guards();
    let guard = cx.clone().attach();
    let out = f();
    check_no_escape(open);
    drop(guard);
    out
}

/// The leak check of [`poll_scope`], shared with the task hooks: `open` is
/// the guard count when the poll began.
pub(crate) fn check_no_escape(open: isize) {
    let now = open_guards();
    if now == open {
        return;
    }
    // Rebalance, so each escape is reported once; a lower count is a guard
    // that escaped an earlier poll (already reported) being dropped now.
    OPEN_GUARDS.with(|n| n.set(open));
    if now > open {
        LEAKED_GUARDS.fetch_add(1, Ordering::Relaxed);
        debug_assert!(
            false,
            "baton: a context guard outlived the poll that created it (held across an \
             `.await` or forgotten), so its context would leak into other tasks; \
             use `baton::run(cx, fut)` or `fut.in_context(cx)` in async code"
        );
    }
}

pub(crate) fn open_guards() -> isize {
    OPEN_GUARDS.with(Cell::get)
}
