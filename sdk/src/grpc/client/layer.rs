use opentelemetry::metrics::Meter;
use tower_layer::Layer;

use super::GrpcClientService;
use crate::global::Snapshot;
use crate::grpc::call::{Addresses, Instruments, Side};
use crate::instrumentation::{Address, Kind, Options, client_options, options};

/// The gRPC client middleware kind.
pub(crate) struct Client;

impl Kind for Client {
    type Instruments = Instruments;

    fn build(meter: &Meter) -> Instruments {
        Instruments::new(Side::Client, meter)
    }

    fn slot(snapshot: &Snapshot) -> &std::sync::OnceLock<Instruments> {
        &snapshot.grpc_client
    }
}

/// Instruments a gRPC client: see the [module docs](super). Takes the
/// [options every Baton middleware takes](crate::instrumentation).
///
/// Uses the [global](crate::global) tracer and meter providers and
/// propagator, as they are at each call, unless given its own.
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    pub(super) options: Options<Client>,
    pub(super) addresses: Addresses,
}

impl GrpcClientLayer {
    /// A layer for a channel to `destination`, the URI its `Endpoint` is
    /// made from (`endpoint.uri()`): every call's `server.address` and
    /// `server.port`, and the host the [baggage
    /// policy](crate::instrumentation::BaggagePolicy) decides on. A channel's
    /// requests carry only the path, so the layer cannot see it otherwise.
    pub fn new(destination: &http::Uri) -> Self {
        let mut options = Options::new();
        options.server = destination_address(destination);
        GrpcClientLayer {
            options,
            addresses: Addresses::default(),
        }
    }

    options!(Client);
    client_options!();
}

/// The address of a channel's destination, its port defaulted by scheme.
pub(crate) fn destination_address(destination: &http::Uri) -> Option<Address> {
    let host = destination.host()?;
    let port = destination.port_u16().or(match destination.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    Some(Address::configured(host, port))
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService::new(inner, self.clone())
    }
}
