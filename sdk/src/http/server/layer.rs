use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::Extensions;

use opentelemetry::metrics::Meter;
use opentelemetry_semantic_conventions::metric::{
    HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
};
use tower_layer::Layer;

use super::HttpServerService;
use crate::global::Snapshot;
use crate::http::telemetry::{Instruments, Names};
use crate::instrumentation::{Kind, Options, RequestView, options, server_options};

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
    route: Option<RouteFn>,
}

/// Finds a request's route template.
type RouteFn = Arc<dyn Fn(&RequestView<'_>) -> Option<Route> + Send + Sync>;

impl HttpServerLayer {
    /// A layer recording to the [global](crate::global) tracer and meter
    /// providers and extracting with the global propagator, as they are at
    /// each request.
    pub fn new() -> Self {
        HttpServerLayer {
            options: Options::new(),
            route: None,
        }
    }

    options!(Server);
    server_options!();

    /// Takes each request's route template from `route`, for servers whose
    /// router the layer cannot see (plain hyper or tower). A request for
    /// which it returns `None` falls back to a [`Route`] in its extensions,
    /// then (with the `axum` feature) to axum's `MatchedPath`. Return
    /// templates (`/users/{id}`), never raw paths: the route is in the span
    /// name and the metrics.
    ///
    /// ```
    /// use baton::http::server::{HttpServerLayer, Route};
    ///
    /// let layer = HttpServerLayer::new().with_route(|request| {
    ///     request.path().starts_with("/users/").then(|| Route::new("/users/{id}"))
    /// });
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn with_route(
        mut self,
        route: impl Fn(&RequestView<'_>) -> Option<Route> + Send + Sync + 'static,
    ) -> Self {
        self.route = Some(Arc::new(route));
        self
    }

    /// The route template of a request: from `with_route`, a [`Route`]
    /// extension, or axum's `MatchedPath`, in that order.
    pub(super) fn route<'a>(
        &self,
        view: &RequestView<'_>,
        extensions: &'a Extensions,
    ) -> Option<Cow<'a, str>> {
        if let Some(Route(template)) = self.route.as_ref().and_then(|route| route(view)) {
            return Some(template);
        }
        if let Some(Route(template)) = extensions.get::<Route>() {
            return Some(Cow::Borrowed(template));
        }
        #[cfg(feature = "axum")]
        if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
            return Some(Cow::Borrowed(matched.as_str()));
        }
        None
    }
}

/// A request's route template (`/users/{id}`), for servers without axum's
/// router: insert it into the request's extensions before the request
/// reaches [`HttpServerLayer`] (from a routing layer outside it), or return
/// it from [`with_route`](HttpServerLayer::with_route). With the `axum`
/// feature, axum's `MatchedPath` is used when there is neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(Cow<'static, str>);

impl Route {
    /// The route `template`: a pattern such as `/users/{id}`, never a raw
    /// path (it names spans and metric series).
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        Route(template.into())
    }

    /// The template.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
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
            .field("options", &self.options)
            .field("route", &self.route.is_some())
            .finish()
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService::new(inner, self.clone())
    }
}
