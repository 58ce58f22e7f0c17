//! The gRPC client layer: a CLIENT span per call, child of the current
//! context, whose trace context and baggage go out in the request metadata;
//! ended when the response stream ends.
//!
//! ```
//! use baton::grpc::client::GrpcClientLayer;
//! use tonic::transport::Endpoint;
//!
//! # #[tokio::main] async fn main() {
//! let channel = Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().with_server_address("127.0.0.1", 50051))
//!     .service(channel);
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

use super::body::ResponseBody;
use super::call::{Address, Telemetry};
use super::future::ResponseFuture;

/// The service [`GrpcClientLayer`] wraps an inner service (a channel) in.
#[derive(Clone, Debug)]
pub struct GrpcClient<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
    server: Option<Address>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClient<S>
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
        // A generated client over a channel sends only the path; the
        // configured address comes first, an absolute URI second.
        let from_uri;
        let server = match &self.server {
            Some(server) => Some(server),
            None => {
                from_uri = self.telemetry.address(request.uri());
                from_uri.as_ref()
            }
        };
        let call = self
            .telemetry
            .start(&Context::current(), request.uri().path(), server);
        let cx = call.context().clone();
        self.telemetry.inject(&cx, request.headers_mut());
        crate::request_id::RequestId::inject(&cx, request.headers_mut());
        let future = crate::run_sync(cx.clone(), || self.inner.call(request));
        ResponseFuture::new(crate::run(cx, future), call)
    }
}
