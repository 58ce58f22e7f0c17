//! The gRPC server layer: a SERVER span per call, continuing the caller's
//! trace and baggage, current while the handler runs and ended when the
//! response stream ends.
//!
//! ```no_run
//! # async fn serve(routes: tonic::service::Routes) -> Result<(), tonic::transport::Error> {
//! use baton::grpc::server::GrpcServerLayer;
//!
//! tonic::transport::Server::builder()
//!     .layer(GrpcServerLayer::new())
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

use tower_service::Service;

pub use layer::GrpcServerLayer;

use crate::request_id::RequestId;

use super::body::ResponseBody;
use super::call::Telemetry;
use super::future::ResponseFuture;

/// The service [`GrpcServerLayer`] wraps an inner service in.
#[derive(Clone, Debug)]
pub struct GrpcServer<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServer<S>
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
        let parent = self.telemetry.extract(request.headers());
        // The caller's request id when safe to reuse, as the HTTP server does.
        let parent = RequestId::from_headers(request.headers()).set_in(&parent);
        let server = self.telemetry.address(request.uri());
        let call = self
            .telemetry
            .start(&parent, request.uri().path(), server.as_ref());
        let cx = call.context().clone();
        // `call` may already do work (and spawn): it runs in the context too.
        let future = crate::run_sync(cx.clone(), || self.inner.call(request));
        ResponseFuture::new(crate::run(cx, future), call)
    }
}
