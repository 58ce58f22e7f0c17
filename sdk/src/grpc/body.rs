//! [`ResponseBody`]: the response stream, which ends the call when it ends.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::call::{Call, Outcome};
use crate::context::poll_scope;

pin_project! {
    /// The body of a response from a gRPC layer's service.
    ///
    /// A server's is polled inside the call's context. It ends the call (its
    /// span and its duration) when the stream ends, at the trailers that
    /// carry the status, not when the first message leaves.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // `None` once the call has ended.
        call: Option<Call>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, call: Option<Call>) -> Self {
        ResponseBody { inner, call }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(call) = this.call else {
            return this.inner.poll_frame(task);
        };
        // A server's body is the handler's response stream: its code runs
        // here and must see the call's context. A client's is the
        // transport's, with no application code to see it.
        let polled = if call.is_server() {
            poll_scope(call.context(), || this.inner.poll_frame(task))
        } else {
            this.inner.poll_frame(task)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                Some(trailers) => call.on_trailers(trailers),
                None => return polled,
            },
            Poll::Ready(Some(Err(_))) => call.finish(Outcome::Failed),
            Poll::Ready(None) => {}
            Poll::Pending => return polled,
        }
        // Trailers come last: the call is over.
        call.end_of_stream();
        *this.call = None;
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
