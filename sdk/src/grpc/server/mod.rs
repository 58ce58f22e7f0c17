//! The gRPC server layer: a SERVER span per call, continuing the caller's
//! trace and baggage, current while the handler runs and ended when the
//! response stream ends.
//!
//! ```no_run
//! # async fn serve(routes: tonic::service::Routes) -> Result<(), tonic::transport::Error> {
//! use baton::grpc::server::GrpcServerLayer;
//!
//! tonic::transport::Server::builder()
//!     // Health checks are not worth a span.
//!     .layer(GrpcServerLayer::new().with_filter(|call| !call.is_grpc_health_check()))
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse().expect("address"))
//!     .await
//! # }
//! ```
//!
//! `serve` sets `TCP_NODELAY` on accepted connections; `serve_with_incoming`
//! does not, so ask for it there, or each reply can wait about 40 ms for a
//! delayed ACK: `TcpIncoming::from(listener).with_nodelay(Some(true))`.

mod layer;

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::Context;
use tower_service::Service;

pub use layer::GrpcServerLayer;

use super::body::ResponseBody;
use super::call::{self, Side};
use super::future::ResponseFuture;
use crate::instrumentation::{RequestView, service_accessors};
use crate::propagation::{extract, remote_parent};
use crate::request_id::RequestId;
use crate::trace::Incoming;

/// The service [`GrpcServerLayer`] wraps an inner service in.
#[derive(Clone, Debug)]
pub struct GrpcServerService<S> {
    inner: S,
    layer: Arc<GrpcServerLayer>,
}

service_accessors!(GrpcServerService, GrpcServerLayer);

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServerService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, task: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(task)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let layer = &*self.layer;
        let options = &layer.options;
        let view = RequestView::from_parts(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        );
        let (cx, call) = options.with(|resolved| {
            let current = Context::current();
            if options.public && !options.records(&view) {
                return (current, None);
            }
            let incoming = extract(resolved.propagator, &current, request.headers());
            if !options.records(&view) {
                return (incoming, None);
            }
            let remote = remote_parent(&incoming);
            // A public endpoint starts a new trace in the server's own
            // context: nothing the caller sent but the link.
            let fresh = Context::new();
            let (parent, base) = if options.public {
                (&fresh, &current)
            } else {
                (&incoming, &incoming)
            };
            let server = layer
                .addresses
                .or_seen(options.server.as_ref(), request.uri());
            let server = server.as_deref();
            let link = remote.clone().filter(|_| options.public);
            let call = call::start(
                Side::Server,
                options,
                &resolved,
                (parent, base),
                &view,
                server,
                link,
            );
            // The caller's request id when safe to reuse, as the HTTP server does.
            let cx = call.context().with_value(Incoming {
                remote,
                request_id: RequestId::from_headers(request.headers()),
            });
            (cx, Some(call))
        });
        // `call` may already do work (and spawn): it runs in the context too.
        let future = crate::run_sync(cx.clone(), || self.inner.call(request));
        ResponseFuture::new(crate::run(cx, future), call)
    }
}
