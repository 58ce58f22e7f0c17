use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use opentelemetry::Context;
use pin_project_lite::pin_project;

use super::Recording;
use crate::{InContext, Run};

pin_project! {
    /// The response future of [`HttpServerService`](super::HttpServerService):
    /// runs the inner future in the request's context and finishes the span
    /// and metrics when it completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Run<F>,
        // `None` for a filtered-out request, and once finished.
        recording: Option<Recording>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(cx: Context, inner: F, recording: Option<Recording>) -> Self {
        ResponseFuture {
            inner: inner.in_context(cx),
            recording,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(task));
        if let Some(recording) = this.recording.take() {
            match &mut result {
                Ok(response) => recording.response(response),
                Err(_) => recording.error::<E>(),
            }
        }
        Poll::Ready(result)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
