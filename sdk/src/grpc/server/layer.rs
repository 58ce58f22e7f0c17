use std::sync::Arc;

use baton_propagators::Propagator;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use tower_layer::Layer;

use super::GrpcServer;
use crate::grpc::call::{Side, Telemetry};

/// Instruments a gRPC server: see the [module docs](super).
///
/// Uses the global tracer and meter providers and the
/// [configured propagator](crate::propagation) unless told otherwise.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    telemetry: Telemetry,
}

impl GrpcServerLayer {
    /// A layer with the global providers and the configured propagator.
    pub fn new() -> Self {
        GrpcServerLayer {
            telemetry: Telemetry::new(Side::Server),
        }
    }

    /// Starts spans with `provider` instead of the global one.
    #[must_use]
    pub fn with_tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.telemetry.set_tracer_provider(provider);
        self
    }

    /// Records `rpc.server.call.duration` with `provider` instead of the global one.
    #[must_use]
    pub fn with_meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.telemetry.set_meter_provider(provider);
        self
    }

    /// Extracts with `propagator` instead of the configured one.
    #[must_use]
    pub fn with_propagator(mut self, propagator: impl Propagator + 'static) -> Self {
        self.telemetry.set_propagator(Arc::new(propagator));
        self
    }
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            telemetry: Arc::new(self.telemetry.clone()),
        }
    }
}
