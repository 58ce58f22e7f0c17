use std::sync::Arc;

use baton_propagators::Propagator;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use tower_layer::Layer;

use super::GrpcClient;
use crate::grpc::call::{Address, Side, Telemetry};

/// Instruments a gRPC client: see the [module docs](super).
///
/// Uses the global tracer and meter providers and the
/// [configured propagator](crate::propagation) unless told otherwise.
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    telemetry: Telemetry,
    server: Option<Address>,
}

impl GrpcClientLayer {
    /// A layer with the global providers and the configured propagator.
    pub fn new() -> Self {
        GrpcClientLayer {
            telemetry: Telemetry::new(Side::Client),
            server: None,
        }
    }

    /// The `server.address` and `server.port` of every call: a channel's
    /// requests carry only the path, so the layer cannot see where they go.
    #[must_use]
    pub fn with_server_address(mut self, host: impl Into<String>, port: u16) -> Self {
        self.server = Some(Address::configured(&host.into(), port));
        self
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

    /// Records `rpc.client.call.duration` with `provider` instead of the global one.
    #[must_use]
    pub fn with_meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.telemetry.set_meter_provider(provider);
        self
    }

    /// Injects with `propagator` instead of the configured one.
    #[must_use]
    pub fn with_propagator(mut self, propagator: impl Propagator + 'static) -> Self {
        self.telemetry.set_propagator(Arc::new(propagator));
        self
    }
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClient {
            inner,
            telemetry: Arc::new(self.telemetry.clone()),
            server: self.server.clone(),
        }
    }
}
