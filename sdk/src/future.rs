//! [`Run`]: a future or stream that carries a context into every poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use opentelemetry::Context;
use pin_project_lite::pin_project;

use crate::context::poll_scope;

pin_project! {
    /// A future or stream whose context is current during every poll and
    /// while it is dropped (so destructors see it too). Made by [`run`](crate::run)
    /// and [`InContext`].
    #[derive(Debug)]
    #[must_use = "futures and streams do nothing unless polled"]
    pub struct Run<T> {
        cx: Context,
        // `Option` so the inner value can be dropped in place inside the
        // context, with `Pin::set`, without `unsafe`.
        #[pin]
        inner: Option<T>,
    }

    impl<T> PinnedDrop for Run<T> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // A finished one was dropped already, inside its last poll.
            if this.inner.is_some() {
                poll_scope(this.cx, || this.inner.set(None));
            }
        }
    }
}

impl<T> Run<T> {
    pub(crate) fn new(cx: Context, inner: T) -> Self {
        Run {
            cx,
            inner: Some(inner),
        }
    }

    /// The context this future runs in.
    pub fn context(&self) -> &Context {
        &self.cx
    }
}

impl<F: Future> Future for Run<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        poll_scope(this.cx, || {
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                // Finished: polled again only by a caller breaking the
                // `Future` contract.
                return Poll::Pending;
            };
            let polled = inner.poll(task);
            if polled.is_ready() {
                // Dropped now, still in the context, rather than entering it
                // once more just to drop it later.
                this.inner.set(None);
            }
            polled
        })
    }
}

impl<S: Stream> Stream for Run<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        poll_scope(this.cx, || {
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Ready(None);
            };
            let polled = inner.poll_next(task);
            if let Poll::Ready(None) = polled {
                // Ended: dropped now, as a finished future is.
                this.inner.set(None);
            }
            polled
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

/// Runs `fut` with `cx` as the current context (≙ `AsyncLocalStorage.run()`).
///
/// The context is current during every poll of the future — across every
/// `.await`, `select!`, `join!`, timeout and stream item — and while it is
/// dropped. Nested runs override and then restore the outer context. Other
/// tasks on the same thread never see it.
///
/// ```
/// use baton::Local;
/// static TENANT: Local<String> = Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = TENANT.set_in(&baton::current(), "acme".to_owned());
/// let seen = baton::run(cx, async {
///     tokio::task::yield_now().await;
///     TENANT.get()
/// })
/// .await;
/// assert_eq!(seen.as_deref(), Some("acme"));
/// # }
/// ```
pub fn run<F: IntoFuture>(cx: Context, fut: F) -> Run<F::IntoFuture> {
    Run::new(cx, fut.into_future())
}

/// Carries a context into any future or stream.
///
/// ```
/// use baton::InContext;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = baton::baggage::set("tenant", "acme").expect("valid entry");
/// let tenant = async { baton::baggage::get("tenant") }.in_context(cx).await;
/// assert_eq!(tenant.as_deref(), Some("acme"));
/// # }
/// ```
pub trait InContext: Sized {
    /// Wraps `self` so that `cx` is current whenever it is polled or dropped.
    fn in_context(self, cx: Context) -> Run<Self> {
        Run::new(cx, self)
    }

    /// Wraps `self` in the context that is current now, so it keeps it when
    /// polled elsewhere (another task, thread or executor).
    fn in_current_context(self) -> Run<Self> {
        Run::new(Context::current(), self)
    }
}

impl<T> InContext for T {}
