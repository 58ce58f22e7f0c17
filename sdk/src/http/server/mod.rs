//! A tower layer for HTTP servers (axum, hyper, tower): it extracts the
//! caller's context, starts a SERVER span, assigns a request id and records
//! RED metrics, then runs the inner service in that context.
//!
//! Per request, following the HTTP semantic conventions 1.42.0:
//!
//! - context extracted from the headers with the [global](crate::global)
//!   propagator (or the layer's own); a malformed header counts as absent;
//!   the caller's span context stays readable as
//!   [`remote_parent`](crate::trace::remote_parent);
//! - a SERVER span `{method} {route}`, the route being the template from
//!   [`with_route`](HttpServerLayer::with_route), a [`Route`] extension or
//!   (with the `axum` feature) axum's `MatchedPath`, never the raw path;
//!   just `{method}` when no template is known (`HTTP` for a method outside the conventions' list,
//!   recorded as `_OTHER`). Attributes: `http.request.method`
//!   (`http.request.method_original`), `http.route`, `url.path`,
//!   `url.query` (signature values such as `sig` replaced by `REDACTED`),
//!   `url.scheme`, `server.address`, `server.port`, `user_agent.original`,
//!   `network.protocol.version`, `http.response.status_code`, `error.type`;
//! - span status error for a 5xx response (`error.type` = the status code)
//!   or an inner-service error (`error.type` = the error's type name); a 4xx
//!   is the client's mistake, not the server's, and leaves the status unset;
//! - a request id: the incoming `x-request-id` when
//!   [`RequestId::parse`] accepts it, a generated one otherwise; it is in the
//!   handler's context ([`RequestId::current`]) and echoed in the response;
//! - `http.server.request.duration` (seconds, [`DURATION_BOUNDARIES`]) with
//!   `http.request.method`, `http.route`, `http.response.status_code`,
//!   `url.scheme`, `network.protocol.version` and `error.type`, and
//!   `http.server.active_requests` with `http.request.method` and `url.scheme`.
//!
//! The inner service is called, and its future polled and dropped, inside
//! [`run`](crate::run) with the span's context, so the handler and anything
//! it hands the context to ([`spawn`](crate::spawn)) see the span, baggage,
//! request id and every [`Local`](crate::Local) of the caller's context.
//!
//! The span ends and the duration is recorded when the inner service produces
//! the response (or its error): the time spent streaming the body is not
//! included. A request whose future is dropped first (the client went away)
//! ends its span and leaves the active count, but records no duration.
//!
//! `url.scheme` is the request URI's, `http` when it has none: TLS is
//! terminated outside the service, which cannot tell.
//!
//! [`RequestId::parse`]: crate::request_id::RequestId::parse
//! [`RequestId::current`]: crate::request_id::RequestId::current
//! [`DURATION_BOUNDARIES`]: crate::metrics::DURATION_BOUNDARIES

mod future;
mod layer;
mod recording;

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::{HttpServerLayer, Route};

use recording::Recording;

use crate::instrumentation::{RequestView, service_accessors};

/// Extracts, traces and measures each request, then calls the inner service
/// in the request's context. Made by [`HttpServerLayer`].
#[derive(Clone, Debug)]
pub struct HttpServerService<S> {
    inner: S,
    /// Shared: axum clones the service for every request.
    layer: Arc<HttpServerLayer>,
}

service_accessors!(HttpServerService, HttpServerLayer);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let view =
            RequestView::from_parts(&parts.method, &parts.uri, &parts.headers, &parts.extensions);
        let (cx, recording) = if self.layer.options.records(&view) {
            let (cx, recording) = Recording::start(&self.layer, &parts, &view);
            (cx, Some(recording))
        } else {
            (Recording::unrecorded(&self.layer, &parts), None)
        };
        let req = Request::from_parts(parts, body);
        let fut = crate::run_sync(cx.clone(), || self.inner.call(req));
        ResponseFuture::new(cx, fut, recording)
    }
}
