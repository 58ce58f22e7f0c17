//! One request's span and metrics, from extraction to response.

use std::sync::Arc;

use http::header::{HOST, USER_AGENT};
use http::request::Parts;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Response};
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_PATH, URL_QUERY, URL_SCHEME,
    USER_AGENT_ORIGINAL,
};

use super::HttpServerLayer;
use crate::http::semconv;
use crate::http::telemetry::{self, Attributes, InFlight};
use crate::request_id::{self, RequestId};

static REQUEST_ID: HeaderName = HeaderName::from_static(request_id::HEADER);

/// A request being recorded. Dropping it ends the span; a finished request
/// has set the response attributes and recorded its duration first.
pub(crate) struct Recording {
    /// The context holding the SERVER span.
    cx: Context,
    request_id: Option<HeaderValue>,
    method: &'static str,
    scheme: &'static str,
    version: Option<&'static str>,
    route: Option<Arc<str>>,
    in_flight: InFlight<2>,
}

impl Recording {
    /// Starts recording the request of `parts`; returns the context to
    /// handle it in (span, request id and, unless public, the caller's
    /// context and baggage).
    pub(crate) fn start(layer: &HttpServerLayer, parts: &Parts) -> (Context, Self) {
        let current = crate::current();
        let mut dropped = Vec::new();
        let incoming =
            layer
                .propagator
                .extract_from_header_map(&current, &parts.headers, &mut dropped);
        telemetry::log_dropped("incoming request", &dropped);

        let mut attributes = Vec::with_capacity(10);
        let method = semconv::push_method(&parts.method, &mut attributes);
        let route: Option<Arc<str>> = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(|matched| matched.as_str().into());
        if let Some(route) = &route {
            attributes.push(KeyValue::new(HTTP_ROUTE, Value::from(Arc::clone(route))));
        }
        attributes.push(KeyValue::new(URL_PATH, parts.uri.path().to_owned()));
        if let Some(query) = parts.uri.query() {
            let query = semconv::redact_query(query).into_owned();
            attributes.push(KeyValue::new(URL_QUERY, query));
        }
        let scheme = match parts.uri.scheme_str() {
            Some("https") => "https",
            _ => "http",
        };
        attributes.push(KeyValue::new(URL_SCHEME, scheme));
        if let Some(authority) = authority(parts) {
            attributes.push(KeyValue::new(SERVER_ADDRESS, authority.host().to_owned()));
            if let Some(port) = authority.port_u16() {
                attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
            }
        }
        if let Some(agent) = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, agent.to_owned()));
        }
        let version = semconv::protocol_version(parts.version);
        if let Some(version) = version {
            attributes.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, version));
        }

        let builder = layer
            .tracer
            .span_builder(semconv::span_name(method, route.as_deref()))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let cx = if layer.public {
            let remote = incoming.span().span_context().clone();
            let builder = if remote.is_valid() {
                builder.with_links(vec![Link::with_context(remote)])
            } else {
                builder
            };
            // A new root, in the server's own context: nothing the caller sent.
            let span = builder.start_with_context(&*layer.tracer, &Context::new());
            current.with_span(span)
        } else {
            let span = builder.start_with_context(&*layer.tracer, &incoming);
            incoming.with_span(span)
        };

        let id = RequestId::from_headers(&parts.headers);
        // Both kinds of id are valid header values; `ok()` only avoids a panic path.
        let request_id = HeaderValue::from_str(id.as_str()).ok();
        let cx = id.set_in(&cx);

        let mut active = Attributes::new();
        active.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
        active.push(KeyValue::new(URL_SCHEME, scheme));
        let recording = Recording {
            cx: cx.clone(),
            request_id,
            method,
            scheme,
            version,
            route,
            in_flight: InFlight::start(&layer.instruments, active),
        };
        (cx, recording)
    }

    /// Finishes with `response`, echoing the request id in it.
    pub(crate) fn response<B>(mut self, response: &mut Response<B>) {
        if let Some(id) = self.request_id.take() {
            response.headers_mut().insert(REQUEST_ID.clone(), id);
        }
        let status = response.status();
        let code = KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
        let error = semconv::status_error_type(status, 500);
        self.finish(Some(code), error.map(Value::String));
    }

    /// Finishes with the inner service's error, of type `E`.
    pub(crate) fn error<E>(self) {
        // Type names are few and fixed: a low-cardinality `error.type`.
        self.finish(None, Some(Value::from(std::any::type_name::<E>())));
    }

    fn finish(&self, status_code: Option<KeyValue>, error_type: Option<Value>) {
        let span = self.cx.span();
        let mut metric = Attributes::<6>::new();
        metric.push(KeyValue::new(HTTP_REQUEST_METHOD, self.method));
        metric.push(KeyValue::new(URL_SCHEME, self.scheme));
        if let Some(route) = &self.route {
            metric.push(KeyValue::new(HTTP_ROUTE, Value::from(Arc::clone(route))));
        }
        if let Some(version) = self.version {
            metric.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, version));
        }
        if let Some(code) = status_code {
            span.set_attribute(code.clone());
            metric.push(code);
        }
        if let Some(error_type) = error_type {
            let error = KeyValue::new(ERROR_TYPE, error_type);
            span.set_attribute(error.clone());
            // The status code or type says it all: no description.
            span.set_status(Status::error(""));
            metric.push(error);
        }
        self.in_flight.finish(metric.as_slice());
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// Where the client sent the request: the URI's authority (HTTP/2
/// `:authority`, absolute-form requests), else the `Host` header. A malformed
/// one is ignored.
fn authority(parts: &Parts) -> Option<Authority> {
    parts.uri.authority().cloned().or_else(|| {
        let host = parts.headers.get(HOST)?;
        Authority::try_from(host.as_bytes()).ok()
    })
}
