//! The gRPC client layer: a CLIENT span per call, child of the current
//! context, whose trace context (and, where the [baggage
//! policy](crate::instrumentation::BaggagePolicy) allows, baggage) goes out
//! in the request metadata; ended when the response stream ends.
//!
//! ```
//! use baton::grpc::client::GrpcClientLayer;
//! use tonic::transport::Endpoint;
//!
//! # #[tokio::main] async fn main() {
//! let endpoint = Endpoint::from_static("http://orders:50051");
//! let channel = tower::ServiceBuilder::new()
//!     // `server.address` orders, `server.port` 50051; baggage allowed
//!     // (a single-label service name is internal).
//!     .layer(GrpcClientLayer::new(endpoint.uri()))
//!     .service(endpoint.connect_lazy());
//! // Hand `channel` to a generated client: `EchoClient::new(channel)`.
//! # drop(channel);
//! # }
//! ```

mod layer;

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::Context;
use tower_service::Service;

pub use layer::GrpcClientLayer;
pub(crate) use layer::destination_address;

use super::body::ResponseBody;
use super::call::{self, Side};
use super::future::ResponseFuture;
use crate::instrumentation::{RequestView, service_accessors};
use crate::propagation::inject;

/// The service [`GrpcClientLayer`] wraps an inner service (a channel) in.
#[derive(Clone, Debug)]
pub struct GrpcClientService<S> {
    inner: S,
    layer: Arc<GrpcClientLayer>,
}

service_accessors!(GrpcClientService, GrpcClientLayer);

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, task: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(task)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let layer = &*self.layer;
        let options = &layer.options;
        // The destination the layer was made for comes first, an absolute
        // URI second.
        let server = layer
            .addresses
            .or_seen(options.server.as_ref(), request.uri());
        let server = server.as_deref();
        // Unknown destinations get no baggage.
        let with_baggage = server.is_some_and(|server| options.baggage.allows(server.host()));
        let (cx, call) = options.with(|resolved| {
            let current = Context::current();
            let view = RequestView::from_parts(
                request.method(),
                request.uri(),
                request.headers(),
                request.extensions(),
            );
            let (cx, call) = if options.records(&view) {
                let parents = (&current, &current);
                let call = call::start(
                    Side::Client,
                    options,
                    &resolved,
                    parents,
                    &view,
                    server,
                    None,
                );
                (call.context().clone(), Some(call))
            } else {
                (current, None)
            };
            inject(
                resolved.propagator,
                &cx,
                request.headers_mut(),
                with_baggage,
            );
            (cx, call)
        });
        let future = crate::run_sync(cx.clone(), || self.inner.call(request));
        ResponseFuture::new(crate::run(cx, future), call)
    }
}
