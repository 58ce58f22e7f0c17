//! [`ResponseFuture`]: the response future of both gRPC layers' services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::call::{Call, Outcome};
use crate::Run;

pin_project! {
    /// The response future of a gRPC layer's service: runs the inner future in
    /// the call's context and hands the call on to the [`ResponseBody`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Run<F>,
        call: Option<Call>,
    }
}

impl<F> ResponseFuture<F> {
    /// `call` is `None` for a call left out of the telemetry.
    pub(crate) fn new(inner: Run<F>, call: Option<Call>) -> Self {
        ResponseFuture { inner, call }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(task));
        let mut call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only response ends with its headers, but its
                // empty body may never be polled: the call then ends when the
                // body is dropped, with the status read here.
                if let Some(call) = &mut call {
                    call.on_response(&response);
                }
                Ok(response.map(|body| ResponseBody::new(body, call)))
            }
            Err(error) => {
                if let Some(call) = &mut call {
                    call.finish(Outcome::Failed);
                }
                Err(error)
            }
        })
    }
}
