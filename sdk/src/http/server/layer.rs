use std::fmt;

use opentelemetry::metrics::Meter;
use opentelemetry_semantic_conventions::metric::{
    HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
};
use tower_layer::Layer;

use super::HttpServerService;
use crate::global::Snapshot;
use crate::http::telemetry::{Instruments, Names};
use crate::instrumentation::{Kind, Options, options, server_options};

const NAMES: Names = Names {
    duration: HTTP_SERVER_REQUEST_DURATION,
    duration_description: "Duration of HTTP server requests.",
    active: HTTP_SERVER_ACTIVE_REQUESTS,
    active_description: "Number of active HTTP server requests.",
};

/// The HTTP server middleware kind.
pub(crate) struct Server;

impl Kind for Server {
    type Instruments = Instruments;

    fn build(meter: &Meter) -> Instruments {
        Instruments::from_meter(meter, &NAMES)
    }

    fn slot(snapshot: &Snapshot) -> &std::sync::OnceLock<Instruments> {
        &snapshot.http_server
    }
}

/// Applies [`HttpServerService`] to a service: context extraction, a SERVER
/// span, a request id and RED metrics for every request. Takes the
/// [options every Baton middleware takes](crate::instrumentation).
///
/// ```
/// use axum::{Router, routing::get};
/// use baton::http::server::HttpServerLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "ok" }))
///     .route("/health", get(|| async { "up" }))
///     // `Router::layer` (not an outer wrapper), so the route template is known.
///     .layer(HttpServerLayer::new().with_filter(|request| request.path() != "/health"));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct HttpServerLayer {
    pub(super) options: Options<Server>,
}

impl HttpServerLayer {
    /// A layer recording to the [global](crate::global) tracer and meter
    /// providers and extracting with the global propagator, as they are at
    /// each request.
    pub fn new() -> Self {
        HttpServerLayer {
            options: Options::new(),
        }
    }

    options!(Server);
    server_options!();
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("options", &self.options)
            .finish()
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService::new(inner, self.clone())
    }
}
