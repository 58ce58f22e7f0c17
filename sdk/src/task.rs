//! Hand-offs: carrying the current context into spawned tasks, threads and callbacks.

use std::future::Future;

use opentelemetry::Context;

use crate::context::run_sync;
use crate::future::InContext;

/// Spawns `fut` on the current tokio runtime, in the current context.
///
/// With the `runtime` hooks (`--cfg tokio_unstable`) installed a plain `tokio::spawn`
/// inherits the context too; this works on any runtime.
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a tokio runtime.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(fut.in_current_context())
}

/// Runs `f` on tokio's blocking pool, in the current context. (Tokio's task
/// hooks do not run for blocking tasks, so use this even with hooks installed.)
///
/// # Panics
///
/// Like `tokio::task::spawn_blocking`, when called outside a tokio runtime.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(bind(f))
}

/// Spawns an OS thread that runs `f` in the current context.
pub fn spawn_thread<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    std::thread::spawn(bind(f))
}

/// Binds `f` to the current context: wherever and whenever it is called, it
/// runs in the context that was current here (≙ `AsyncLocalStorage.bind()`).
///
/// ```
/// use baton::Local;
/// static JOB: Local<u32> = Local::new();
///
/// let callback = JOB.run_sync(42, || baton::bind(|| JOB.get()));
/// assert_eq!(JOB.get(), None);
/// assert_eq!(callback(), Some(42));
/// ```
#[must_use = "the bound closure does nothing until called"]
pub fn bind<F, R>(f: F) -> impl FnOnce() -> R + Send
where
    F: FnOnce() -> R + Send,
{
    let cx = Context::current();
    move || run_sync(cx, f)
}

/// Captures the current context, to run any number of closures in it later
/// (≙ `AsyncLocalStorage.snapshot()`).
///
/// ```
/// use baton::Local;
/// static STEP: Local<&'static str> = Local::new();
///
/// let snap = STEP.run_sync("captured", baton::snapshot);
/// assert_eq!(snap.run(|| STEP.get()), Some("captured"));
/// assert_eq!(snap.run(|| STEP.get()), Some("captured"));
/// ```
#[must_use]
pub fn snapshot() -> Snapshot {
    Snapshot(Context::current())
}

/// A captured context; see [`snapshot`].
#[derive(Clone, Debug)]
pub struct Snapshot(Context);

impl Snapshot {
    /// Runs `f` in the captured context.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        run_sync(self.0.clone(), f)
    }

    /// The captured context.
    pub fn context(&self) -> &Context {
        &self.0
    }
}
