//! A reqwest middleware for HTTP clients: a CLIENT span per request, trace
//! context (and, to allowed hosts, baggage) injected into the outgoing
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
//! - the span's context injected with the [configured
//!   propagator](crate::propagation::get): trace context goes to every host;
//!   baggage only to the hosts given to
//!   [`with_baggage_hosts`](HttpClientMiddleware::with_baggage_hosts) (none
//!   by default), since it may carry data that must not leave the system;
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
//!     .with(HttpClientMiddleware::new().with_baggage_hosts(["billing.internal"]))
//!     .build();
//! # drop(client);
//! ```

mod url;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_propagators::Propagator;
use http::Extensions;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{
    SpanBuilder, SpanKind, Status, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS, SERVER_PORT, URL_FULL,
};
use opentelemetry_semantic_conventions::metric::{
    HTTP_CLIENT_ACTIVE_REQUESTS, HTTP_CLIENT_REQUEST_DURATION,
};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

use crate::http::semconv;
use crate::http::telemetry::{self, Attributes, InFlight, Instruments, Names};
use crate::metrics::LayerTracer;

const NAMES: Names = Names {
    duration: HTTP_CLIENT_REQUEST_DURATION,
    duration_description: "Duration of HTTP client requests.",
    active: HTTP_CLIENT_ACTIVE_REQUESTS,
    active_description: "Number of active HTTP client requests.",
};

/// Traces, measures and propagates the context of every request a
/// `reqwest_middleware` client sends. See the [module docs](self).
pub struct HttpClientMiddleware {
    tracer: LayerTracer,
    instruments: Instruments,
    propagator: Arc<dyn Propagator>,
    baggage_hosts: Vec<String>,
}

impl HttpClientMiddleware {
    /// A middleware recording to the global tracer and meter providers (as
    /// they are now), injecting with the [configured
    /// propagator](crate::propagation::get), sending baggage nowhere.
    pub fn new() -> Self {
        HttpClientMiddleware {
            tracer: telemetry::global_tracer(),
            instruments: Instruments::global(&NAMES),
            propagator: crate::propagation::get(),
            baggage_hosts: Vec::new(),
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

    /// Sends baggage to these hosts too (compared without case; ports are
    /// not considered). Other hosts get trace context only.
    #[must_use]
    pub fn with_baggage_hosts<I>(mut self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.baggage_hosts
            .extend(hosts.into_iter().map(|h| h.as_ref().to_ascii_lowercase()));
        self
    }

    fn sends_baggage(&self, url: &reqwest::Url) -> bool {
        url.host_str().is_some_and(|host| {
            self.baggage_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
        })
    }

    async fn send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let parent = crate::current();
        let url = req.url();
        // Room for what the response adds (status, version, error type).
        let mut attributes = Vec::with_capacity(8);
        let method = semconv::push_method(req.method(), &mut attributes);
        let address: Option<Arc<str>> = url.host_str().map(Into::into);
        let port = url.port_or_known_default().map(i64::from);
        let mut endpoint = Attributes::<3>::new();
        endpoint.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
        if let Some(address) = &address {
            endpoint.push(KeyValue::new(
                SERVER_ADDRESS,
                Value::from(Arc::clone(address)),
            ));
        }
        if let Some(port) = port {
            endpoint.push(KeyValue::new(SERVER_PORT, port));
        }
        // The span has the method already (with its original, if normalised).
        attributes.extend(endpoint.as_slice().iter().skip(1).cloned());
        attributes.push(KeyValue::new(URL_FULL, url::full(url)));
        let builder = SpanBuilder::from_name(semconv::span_name(method, &semconv::Route::None))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        let cx = self.tracer.start(builder, &parent);
        self.inject(&cx, &mut req);

        let mut metric = Attributes::<6>::new();
        for kv in endpoint.as_slice() {
            metric.push(kv.clone());
        }
        let in_flight = InFlight::start(&self.instruments, endpoint, None);
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

    /// Injects `cx` into `req`'s headers, without baggage unless the host may have it.
    fn inject(&self, cx: &Context, req: &mut Request) {
        let with_baggage = cx.baggage().is_empty() || self.sends_baggage(req.url());
        let headers = req.headers_mut();
        let mut dropped = Vec::new();
        if with_baggage {
            self.propagator
                .inject_into_header_map(cx, headers, &mut dropped);
        } else {
            // The propagator's baggage part injects nothing for empty baggage.
            let cx = cx.with_cleared_baggage();
            self.propagator
                .inject_into_header_map(&cx, headers, &mut dropped);
        }
        telemetry::log_dropped("outgoing request", &dropped);
        crate::request_id::RequestId::inject(cx, req.headers_mut());
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
            .field("propagator", &self.propagator)
            .field("baggage_hosts", &self.baggage_hosts)
            .finish_non_exhaustive()
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
