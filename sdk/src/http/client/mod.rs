//! A reqwest middleware for HTTP clients: a CLIENT span per request, trace
//! context (and, where the baggage policy allows, baggage) injected into the outgoing
//! headers, and RED metrics.
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
//!   status code) and for a transport error, whose `error.type` is one of
//!   `timeout`, `connect`, `redirect`, `request`, `body`, `decode`, `builder`
//!   (reqwest's classification, checked in that order), or `_OTHER`;
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
//! ```
//! use baton::http::client::HttpClientMiddleware;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(HttpClientMiddleware::new())
//!     .build();
//! # drop(client);
//! ```

mod url;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Extensions;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, NETWORK_PROTOCOL_VERSION, URL_FULL,
};
use opentelemetry_semantic_conventions::metric::{
    HTTP_CLIENT_ACTIVE_REQUESTS, HTTP_CLIENT_REQUEST_DURATION,
};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

use crate::global::Snapshot;
use crate::http::semconv;
use crate::http::telemetry::{Attributes, InFlight, Instruments, Names};
use crate::instrumentation::{Address, Kind, Options, RequestView, client_options, options};
use crate::propagation::inject;

const NAMES: Names = Names {
    duration: HTTP_CLIENT_REQUEST_DURATION,
    duration_description: "Duration of HTTP client requests.",
    active: HTTP_CLIENT_ACTIVE_REQUESTS,
    active_description: "Number of active HTTP client requests.",
};

/// The HTTP client middleware kind.
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

/// Traces, measures and propagates the context of every request a
/// `reqwest_middleware` client sends. Takes the [options every Baton
/// middleware takes](crate::instrumentation). See the [module docs](self).
#[derive(Clone)]
pub struct HttpClientMiddleware {
    options: Options<Client>,
}

impl HttpClientMiddleware {
    /// A middleware recording to the [global](crate::global) tracer and
    /// meter providers and injecting with the global propagator, as they
    /// are at each request; baggage goes to internal destinations only
    /// ([`BaggagePolicy::internal`](crate::instrumentation::BaggagePolicy::internal)).
    pub fn new() -> Self {
        HttpClientMiddleware {
            options: Options::new(),
        }
    }

    options!(Client);
    client_options!();

    async fn send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let options = &self.options;
        let with_baggage = req
            .url()
            .host_str()
            .is_some_and(|host| options.baggage.allows(host));
        if !options.records(&RequestView::from_reqwest(&req)) {
            let cx = crate::current();
            options.with(|resolved| {
                inject(resolved.propagator, &cx, req.headers_mut(), with_baggage);
            });
            return next.run(req, extensions).await;
        }
        let (cx, in_flight, mut metric) = options.with(|resolved| {
            let parent = crate::current();
            let url = req.url();
            // Room for what the response adds (status, version, error type).
            let mut attributes = Vec::with_capacity(8);
            let method = semconv::push_method(req.method(), &mut attributes);
            let server = match &options.server {
                Some(server) => Some(server.clone()),
                None => url.host_str().map(|host| Address {
                    host: Value::from(Arc::<str>::from(host)).into(),
                    name: None,
                    port: url.port_or_known_default().map(i64::from),
                }),
            };
            let mut endpoint = Attributes::<3>::new();
            endpoint.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
            endpoint.extend(server.iter().flat_map(Address::attributes));
            // The span has the method already (with its original, if normalised).
            attributes.extend(endpoint.as_slice().iter().skip(1).cloned());
            attributes.push(KeyValue::new(URL_FULL, url::full(url)));
            let name = semconv::span_name(method, &semconv::Route::None);
            let name = options.span_name(name, &RequestView::from_reqwest(&req));
            let builder = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attributes);
            let cx = resolved.tracer.start(builder, &parent);
            inject(resolved.propagator, &cx, req.headers_mut(), with_baggage);

            let mut metric = Attributes::<6>::new();
            metric.extend(endpoint.as_slice().iter().cloned());
            let in_flight = InFlight::start(resolved.instruments, endpoint, None, &cx);
            (cx, in_flight, metric)
        });
        let result = crate::run(cx.clone(), next.run(req, extensions)).await;

        let span = cx.span();
        let error = match &result {
            Ok(response) => {
                let status = response.status();
                let code = KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
                span.set_attribute(code.clone());
                metric.push(code);
                if let Some(version) = semconv::protocol_version(response.version()) {
                    let version = KeyValue::new(NETWORK_PROTOCOL_VERSION, version);
                    span.set_attribute(version.clone());
                    metric.push(version);
                }
                semconv::status_error_type(status, 400).map(Value::String)
            }
            Err(error) => Some(Value::from(transport_error_type(error))),
        };
        if let Some(error) = error {
            let error = KeyValue::new(ERROR_TYPE, error);
            span.set_attribute(error.clone());
            // The status code or error type says it all: no description.
            span.set_status(Status::error(""));
            metric.push(error);
        }
        in_flight.finish(None, || metric.as_slice());
        span.end();
        result
    }
}

/// A low-cardinality name for a request that got no response.
fn transport_error_type(error: &reqwest_middleware::Error) -> &'static str {
    let reqwest_middleware::Error::Reqwest(error) = error else {
        return "_OTHER";
    };
    match error {
        e if e.is_timeout() => "timeout",
        e if e.is_connect() => "connect",
        e if e.is_redirect() => "redirect",
        e if e.is_request() => "request",
        e if e.is_body() => "body",
        e if e.is_decode() => "decode",
        e if e.is_builder() => "builder",
        _ => "_OTHER",
    }
}

impl Default for HttpClientMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpClientMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientMiddleware")
            .field("options", &self.options)
            .finish()
    }
}

// `Middleware` is an `async_trait`; this is its expansion, written out so as
// not to depend on `async-trait` for one impl.
impl Middleware for HttpClientMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.send(req, extensions, next))
    }
}
