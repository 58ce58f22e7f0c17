//! The fastrace variant's CLIENT span: fastrace-tonic's client layer only
//! injects `traceparent` from the current local parent, so this layer, in
//! front of it, starts a span per call, local parent while the call is made
//! (so the injected `traceparent` names it) and held until the response.

use std::task::{Context as TaskContext, Poll};

use fastrace::Span;
use fastrace::future::{FutureExt as _, InSpan};

#[derive(Clone, Copy)]
pub(crate) struct SpanLayer;

impl<S> tower::Layer<S> for SpanLayer {
    type Service = Spanned<S>;

    fn layer(&self, inner: S) -> Spanned<S> {
        Spanned { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Spanned<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Spanned<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InSpan<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let span = Span::enter_with_local_parent(path.strip_prefix('/').unwrap_or(path).to_owned());
        let response = {
            let _parent = span.set_local_parent();
            self.inner.call(request)
        };
        response.in_span(span)
    }
}
