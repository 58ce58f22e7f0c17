//! HTTP clients: a CLIENT span per request, trace context (and, where the
//! baggage policy allows, baggage) injected into the outgoing headers, and RED metrics.
//! [`HttpClientLayer`] is a tower layer for any tower HTTP client (hyper-util's
//! among them); [`HttpClientMiddleware`] is the same for reqwest, through
//! reqwest-middleware. Both take the [options every Baton middleware
//! takes](crate::instrumentation).
//!
//! Per request, following the HTTP semantic conventions 1.42.0:
//!
//! - a CLIENT span named `{method}` (`HTTP` for a method outside the
//!   conventions' list, recorded as `_OTHER`), child of the current context.
//!   Attributes: `http.request.method` (`http.request.method_original`),
//!   `server.address`, `server.port`, `url.full` (user name, password and the
//!   conventions' signature query parameters replaced by `REDACTED`),
//!   `http.response.status_code`, `network.protocol.version`, `error.type`;
//! - span status error, with `error.type`, for a 4xx or 5xx response (the
//!   status code) and for a request that got no response: for reqwest one of
//!   `timeout`, `connect`, `redirect`, `request`, `body`, `decode`, `builder`
//!   (reqwest's classification, checked in that order), or `_OTHER`; for a
//!   tower client the error's type name;
//! - the span's context injected with the [global](crate::global)
//!   propagator (or the middleware's own): trace context goes to every
//!   host; baggage only where the
//!   [`BaggagePolicy`](crate::instrumentation::BaggagePolicy) allows
//!   (internal destinations by default), since it may carry data that must
//!   not leave the system;
//! - the current context's request id sent as `x-request-id` (unless the
//!   request has one), so the next hop reuses it;
//! - `http.client.request.duration` (seconds,
//!   [`DURATION_BOUNDARIES`](crate::metrics::DURATION_BOUNDARIES)) with
//!   `http.request.method`, `server.address`, `server.port`,
//!   `http.response.status_code`, `network.protocol.version` and
//!   `error.type`, and `http.client.active_requests` with the first three.
//!
//! The span ends and the duration is recorded when the response headers
//! arrive: reading the body is not included.
//!
//! # Redirects
//!
//! reqwest follows redirects (10 by default) below any middleware, and on a
//! hop to another host it removes credentials but keeps every other header,
//! `baggage` among them; a middleware cannot change the redirect policy of a
//! client it did not build. So [`HttpClientMiddleware`] builds the client
//! ([`HttpClientMiddleware::client`], from a `reqwest::ClientBuilder`), with a
//! redirect policy of its own ([`Redirects`]; a builder with another policy
//! is refused, not overridden): before a hop to a host the
//! baggage policy does not allow, reqwest stops and the middleware sends that
//! hop, and the rest of the chain, without the baggage (trace context still
//! goes on every hop). A request whose body is a stream cannot be sent
//! again: for one that is redirected (307, 308) there, the caller gets the
//! redirect response.
//!
//! [`HttpClientLayer`] decides on each request that passes through it: a
//! redirect layer (such as tower-http's `FollowRedirectLayer`) goes outside
//! it, so that every hop is a request of its own, with its own span and its
//! own baggage decision. Inside it, the redirect layer would send the hops
//! itself, with the first request's headers, baggage included.

#[cfg(feature = "http-client")]
mod layer;
#[cfg(feature = "reqwest")]
mod middleware;
mod outgoing;
#[cfg(feature = "reqwest")]
mod redirect;
mod url;

#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub use layer::{HttpClientLayer, HttpClientService, ResponseFuture};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use middleware::{ClientBuildError, HttpClientMiddleware};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use redirect::{Redirects, TooManyRedirects};

use opentelemetry::metrics::Meter;
use opentelemetry_semantic_conventions::metric::{
    HTTP_CLIENT_ACTIVE_REQUESTS, HTTP_CLIENT_REQUEST_DURATION,
};

use crate::global::Snapshot;
use crate::http::telemetry::{Instruments, Names};
use crate::instrumentation::Kind;

const NAMES: Names = Names {
    duration: HTTP_CLIENT_REQUEST_DURATION,
    duration_description: "Duration of HTTP client requests.",
    active: HTTP_CLIENT_ACTIVE_REQUESTS,
    active_description: "Number of active HTTP client requests.",
};

/// The HTTP client middleware kind, shared by the tower layer and the
/// reqwest middleware.
pub(crate) struct Client;

impl Kind for Client {
    type Instruments = Instruments;

    fn build(meter: &Meter) -> Instruments {
        Instruments::from_meter(meter, &NAMES)
    }

    fn slot(snapshot: &Snapshot) -> &std::sync::OnceLock<Instruments> {
        &snapshot.http_client
    }
}
