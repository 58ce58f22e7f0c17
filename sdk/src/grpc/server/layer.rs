use opentelemetry::metrics::Meter;
use tower_layer::Layer;

use super::GrpcServerService;
use crate::global::Snapshot;
use crate::grpc::call::{Addresses, Instruments, Side};
use crate::instrumentation::{Kind, Options, options, server_options};

/// The gRPC server middleware kind.
pub(crate) struct Server;

impl Kind for Server {
    type Instruments = Instruments;

    fn build(meter: &Meter) -> Instruments {
        Instruments::new(Side::Server, meter)
    }

    fn slot(snapshot: &Snapshot) -> &std::sync::OnceLock<Instruments> {
        &snapshot.grpc_server
    }
}

/// Instruments a gRPC server: see the [module docs](super). Takes the
/// [options every Baton middleware takes](crate::instrumentation).
///
/// Uses the [global](crate::global) tracer and meter providers and
/// propagator, as they are at each call, unless given its own.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    pub(super) options: Options<Server>,
    pub(super) addresses: Addresses,
}

impl GrpcServerLayer {
    /// A layer with the global providers and propagator.
    pub fn new() -> Self {
        GrpcServerLayer {
            options: Options::new(),
            addresses: Addresses::default(),
        }
    }

    options!(Server);
    server_options!();
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService::new(inner, self.clone())
    }
}
