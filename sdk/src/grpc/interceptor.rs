//! An interceptor that only injects: for clients that want the current
//! context to travel without a CLIENT span of Baton's.
//!
//! An interceptor sees the request, never the response, so it can carry
//! context out but cannot time or end a call; that takes
//! [`GrpcClientLayer`](super::client::GrpcClientLayer).
//!
//! ```
//! use baton::grpc::interceptor::InjectInterceptor;
//! use tonic::service::Interceptor;
//!
//! let cx = baton::baggage::set("tenant", "acme").expect("a valid entry");
//! let request = baton::run_sync(cx, || InjectInterceptor::new().call(tonic::Request::new(())));
//! let request = request.expect("injection never fails");
//! assert_eq!(
//!     request.metadata().get("baggage").map(|v| v.to_str().expect("ascii")),
//!     Some("tenant=acme"),
//! );
//!
//! // The request id of the context travels too.
//! let id = baton::request_id::RequestId::parse("checkout-7").expect("a valid id");
//! let request = baton::run_sync(id.set_in(&baton::current()), || {
//!     InjectInterceptor::new().call(tonic::Request::new(()))
//! });
//! let request = request.expect("injection never fails");
//! assert_eq!(
//!     request.metadata().get("x-request-id").map(|v| v.to_str().expect("ascii")),
//!     Some("checkout-7"),
//! );
//! ```

use std::sync::Arc;

use baton_propagators::Propagator;
use opentelemetry::Context;
use tonic::service::Interceptor;

use super::call::inject;
use crate::request_id::RequestId;

/// Writes the current context (trace context, baggage) into each request's
/// metadata with the [configured propagator](crate::propagation), and the
/// current [request id](crate::request_id) as `x-request-id` unless the
/// request already has one.
#[derive(Clone, Debug)]
pub struct InjectInterceptor {
    propagator: Arc<dyn Propagator>,
}

impl InjectInterceptor {
    /// An interceptor with the configured propagator.
    pub fn new() -> Self {
        InjectInterceptor {
            propagator: crate::propagation::get(),
        }
    }

    /// An interceptor with `propagator`.
    pub fn with_propagator(propagator: impl Propagator + 'static) -> Self {
        InjectInterceptor {
            propagator: Arc::new(propagator),
        }
    }
}

impl Default for InjectInterceptor {
    fn default() -> Self {
        Self::new()
    }
}

impl Interceptor for InjectInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        // Called where the request is made, so the current context is the caller's.
        let cx = Context::current();
        inject(&*self.propagator, &cx, request.metadata_mut().as_mut());
        RequestId::inject(&cx, request.metadata_mut().as_mut());
        Ok(request)
    }
}
