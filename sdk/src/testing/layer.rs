//! A tower layer that handles a test server's requests in a capture's
//! context, for requests that carry no trace context of their own.

use std::sync::Weak;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::Context;
use tower_layer::Layer;
use tower_service::Service;

use super::{Entry, Inner};

/// Handles every request of the service it wraps in its capture's context:
/// what the request starts (a new root, when it brings no `traceparent`, a
/// malformed one, or reaches a public endpoint) belongs to the capture. Made
/// by [`Capture::layer`](super::Capture::layer); put it outside the
/// instrumentation layers (added after them, in axum's `Router::layer`).
///
/// It holds the capture weakly: once the capture is dropped, requests are
/// handled in their own context, as without it.
#[derive(Clone, Debug)]
pub struct CaptureLayer {
    capture: Weak<Inner>,
}

impl CaptureLayer {
    pub(super) fn new(capture: Weak<Inner>) -> Self {
        CaptureLayer { capture }
    }
}

impl<S> Layer<S> for CaptureLayer {
    type Service = CaptureService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CaptureService {
            inner,
            capture: Weak::clone(&self.capture),
        }
    }
}

/// The service of [`CaptureLayer`].
#[derive(Clone, Debug)]
pub struct CaptureService<S> {
    inner: S,
    capture: Weak<Inner>,
}

impl<S: Service<R>, R> Service<R> for CaptureService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = crate::Run<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let cx = match self.capture.upgrade() {
            Some(inner) => Context::current().with_value(Entry(inner)),
            None => Context::current(),
        };
        // Layers inside start their span in `call` as well as in the future.
        let future = {
            let _entered = crate::enter(cx.clone());
            self.inner.call(request)
        };
        crate::run(cx, future)
    }
}
