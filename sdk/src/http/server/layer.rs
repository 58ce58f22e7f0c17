use std::fmt;
use std::sync::Arc;

use baton_propagators::Propagator;
use http::request::Parts;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry_semantic_conventions::metric::{
    HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
};
use tower_layer::Layer;

use super::HttpServerService;
use crate::http::telemetry::{self, Instruments, Names};
use crate::metrics::LayerTracer;

const NAMES: Names = Names {
    duration: HTTP_SERVER_REQUEST_DURATION,
    duration_description: "Duration of HTTP server requests.",
    active: HTTP_SERVER_ACTIVE_REQUESTS,
    active_description: "Number of active HTTP server requests.",
};

/// Decides whether a request is recorded: `false` leaves it out entirely.
type Filter = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Applies [`HttpServerService`] to a service: context extraction, a SERVER
/// span, a request id and RED metrics for every request.
///
/// ```
/// use axum::{Router, routing::get};
/// use baton::http::server::HttpServerLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "ok" }))
///     .route("/health", get(|| async { "up" }))
///     // `Router::layer` (not an outer wrapper), so the route template is known.
///     .layer(HttpServerLayer::new().with_filter(|parts| parts.uri.path() != "/health"));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct HttpServerLayer {
    pub(super) tracer: LayerTracer,
    pub(super) instruments: Instruments,
    pub(super) propagator: Arc<dyn Propagator>,
    pub(super) filter: Option<Filter>,
    pub(super) public: bool,
}

impl HttpServerLayer {
    /// A layer recording to the global tracer and meter providers (as they
    /// are now) and extracting with the [configured propagator](crate::propagation::get).
    pub fn new() -> Self {
        HttpServerLayer {
            tracer: telemetry::global_tracer(),
            instruments: Instruments::global(&NAMES),
            propagator: crate::propagation::get(),
            filter: None,
            public: false,
        }
    }

    /// Records spans with `provider` instead of the global one.
    #[must_use]
    pub fn with_tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = telemetry::tracer(provider);
        self
    }

    /// Records metrics with `provider` instead of the global one.
    #[must_use]
    pub fn with_meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.instruments = Instruments::new(provider, &NAMES);
        self
    }

    /// Leaves out every request for which `filter` returns `false` (health
    /// checks, say): no span, no metrics, no request id; the inner service
    /// still handles it, in the caller's context.
    #[must_use]
    pub fn with_filter(mut self, filter: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Treats callers as untrusted, for an endpoint open to the internet:
    /// each request starts a new trace whose span *links* to the incoming
    /// span context instead of being its child, and incoming baggage is
    /// dropped (anyone could have written it). The request id is still reused
    /// when valid, since [`RequestId::parse`](crate::request_id::RequestId::parse)
    /// only accepts safe ids.
    #[must_use]
    pub fn public_endpoint(mut self) -> Self {
        self.public = true;
        self
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("propagator", &self.propagator)
            .field("filter", &self.filter.is_some())
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService::new(inner, self.clone())
    }
}
