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
//! let destination: http::Uri = "http://orders:50051".parse().expect("a uri");
//! let cx = baton::baggage::set("tenant", "acme").expect("a valid entry");
//! let request = baton::run_sync(cx, || {
//!     InjectInterceptor::new(&destination).call(tonic::Request::new(()))
//! });
//! let request = request.expect("injection never fails");
//! assert_eq!(
//!     request.metadata().get("baggage").map(|v| v.to_str().expect("ascii")),
//!     Some("tenant=acme"),
//! );
//!
//! // The request id of the context travels too.
//! let id = baton::request_id::RequestId::parse("checkout-7").expect("a valid id");
//! let request = baton::run_sync(id.set_in(&baton::current()), || {
//!     InjectInterceptor::new(&destination).call(tonic::Request::new(()))
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

use crate::instrumentation::{Address, BaggagePolicy};
use crate::propagation::inject;

/// Writes the current context (trace context, and baggage where the
/// [policy](BaggagePolicy) allows) into each request's metadata with the
/// [global](crate::global) propagator (or its own), and the current
/// [request id](crate::request_id) as `x-request-id` unless the request
/// already has one.
#[derive(Clone, Debug)]
pub struct InjectInterceptor {
    propagator: Option<Arc<dyn Propagator>>,
    destination: Option<Address>,
    policy: BaggagePolicy,
    /// What `policy` says of `destination`, decided once.
    with_baggage: bool,
}

impl InjectInterceptor {
    /// An interceptor for a channel to `destination` (`endpoint.uri()`),
    /// which the baggage policy decides on; internal destinations get
    /// baggage by default.
    pub fn new(destination: &http::Uri) -> Self {
        let destination = super::client::destination_address(destination);
        InjectInterceptor {
            propagator: None,
            destination,
            policy: BaggagePolicy::default(),
            with_baggage: false,
        }
        .decided()
    }

    /// Injects with `propagator` instead of the global one.
    #[must_use]
    pub fn with_propagator(mut self, propagator: impl Propagator + 'static) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }

    /// Which destinations get the baggage (internal ones by default).
    #[must_use]
    pub fn with_baggage_policy(mut self, policy: BaggagePolicy) -> Self {
        self.policy = policy;
        self.decided()
    }

    fn decided(mut self) -> Self {
        self.with_baggage = self
            .destination
            .as_ref()
            .is_some_and(|destination| self.policy.allows(destination.host()));
        self
    }
}

impl Interceptor for InjectInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        // Called where the request is made, so the current context is the caller's.
        let cx = Context::current();
        let headers = request.metadata_mut().as_mut();
        match &self.propagator {
            Some(propagator) => inject(&**propagator, &cx, headers, self.with_baggage),
            None => crate::global::with(|global| {
                inject(&*global.propagator, &cx, headers, self.with_baggage);
            }),
        }
        Ok(request)
    }
}
