//! One request's span and metrics, from extraction to response.

use std::sync::Arc;

use http::header::{HOST, USER_AGENT};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_PATH, URL_QUERY, URL_SCHEME,
    USER_AGENT_ORIGINAL,
};

use super::HttpServerLayer;
use crate::http::semconv::{self, Route};
use crate::http::telemetry::{Attributes, InFlight};
use crate::instrumentation::{HostPort, RequestView, split_host};
use crate::metrics::SetKey;
use crate::propagation::{extract, remote_parent};
use crate::request_id::{self, RequestId};
use crate::trace::Incoming;

/// A request being recorded. Dropping it ends the span; a finished request
/// has set the response attributes and recorded its duration first.
pub(crate) struct Recording {
    /// The context holding the SERVER span.
    cx: Context,
    request_id: Option<HeaderValue>,
    method: &'static str,
    scheme: &'static str,
    version: Option<&'static str>,
    route: Route,
    in_flight: InFlight<2>,
}

impl Recording {
    /// Starts recording the request of `parts`; returns the context to
    /// handle it in (span, request id, remote parent and, unless public,
    /// the caller's context and baggage).
    pub(crate) fn start(
        layer: &HttpServerLayer,
        parts: &Parts,
        view: &RequestView<'_>,
    ) -> (Context, Self) {
        let options = &layer.options;
        options.with(|resolved| {
            let current = crate::current();
            let incoming = extract(resolved.propagator, &current, &parts.headers);

            // Room for all, with what `finish` adds (status, error type): a
            // span's attributes should not be reallocated as it ends.
            let mut attributes = Vec::with_capacity(12);
            let method = semconv::push_method(&parts.method, &mut attributes);
            // Route templates come from the application: interned, not copied
            // for every request.
            let route = match layer.route(view, &parts.extensions) {
                None => Route::None,
                Some(template) => match crate::intern::intern(&template) {
                    Some(route) => Route::Interned(route),
                    None => Route::Owned(Arc::from(&*template)),
                },
            };
            if let Some(route) = route.value() {
                attributes.push(KeyValue::new(HTTP_ROUTE, route));
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
            match &options.server {
                Some(server) => attributes.extend(server.attributes()),
                None => {
                    if let Some((host, port)) = server_address(parts) {
                        attributes.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
                        if let Some(port) = port {
                            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
                        }
                    }
                }
            }
            if let Some(agent) = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
                attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, agent.to_owned()));
            }
            let version = semconv::protocol_version(parts.version);
            if let Some(version) = version {
                attributes.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, version));
            }

            let name = options.span_name(semconv::span_name(method, &route), view);
            let builder = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attributes);
            let remote = remote_parent(&incoming);
            let cx = if options.public {
                let builder = match &remote {
                    Some(remote) => builder.with_links(vec![Link::with_context(remote.clone())]),
                    None => builder,
                };
                // A new root, in the server's own context: nothing the caller sent.
                resolved.tracer.start_in(builder, &Context::new(), &current)
            } else {
                resolved.tracer.start(builder, &incoming)
            };

            let id = RequestId::from_headers(&parts.headers);
            let request_id = Some(id.header_value());
            let cx = cx.with_value(Incoming {
                remote,
                request_id: id,
            });

            let mut active = Attributes::new();
            active.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
            active.push(KeyValue::new(URL_SCHEME, scheme));
            let key = SetKey {
                names: [SetKey::name(Some(method)), SetKey::name(Some(scheme)), 0, 0],
                bits: 0,
            };
            let recording = Recording {
                cx: cx.clone(),
                request_id,
                method,
                scheme,
                version,
                route,
                in_flight: InFlight::start(resolved.instruments, active, Some(key), &cx),
            };
            (cx, recording)
        })
    }

    /// The context a request left out of the telemetry is handled in: the
    /// caller's, unless the endpoint is public.
    pub(crate) fn unrecorded(layer: &HttpServerLayer, parts: &Parts) -> Context {
        let current = crate::current();
        if layer.options.public {
            return current;
        }
        layer
            .options
            .with(|resolved| extract(resolved.propagator, &current, &parts.headers))
    }

    /// Finishes with `response`, echoing the request id in it.
    pub(crate) fn response<B>(mut self, response: &mut Response<B>) {
        if let Some(id) = self.request_id.take() {
            response
                .headers_mut()
                .insert(request_id::HEADER_NAME.clone(), id);
        }
        self.finish(Some(response.status()), None);
    }

    /// Finishes with the inner service's error, of type `E`.
    pub(crate) fn error<E>(self) {
        // Type names are few and fixed: a low-cardinality `error.type`.
        self.finish(None, Some(std::any::type_name::<E>()));
    }

    /// Sets the outcome on the span and records the duration: with the
    /// response's `status`, or the inner service's `error_type`.
    fn finish(&self, status: Option<StatusCode>, error_type: Option<&'static str>) {
        let span = self.cx.span();
        let code = status.map(|s| KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s.as_u16())));
        let error = match (status, error_type) {
            (_, Some(error)) => Some(Value::from(error)),
            (Some(status), None) => semconv::status_error_type(status, 500).map(Value::String),
            (None, None) => None,
        }
        .map(|error| KeyValue::new(ERROR_TYPE, error));
        // In one go: each call locks the span.
        span.set_attributes(code.iter().chain(&error).cloned());
        if error.is_some() {
            // The status code or type says it all: no description.
            span.set_status(Status::error(""));
        }
        // `InFlight` records in the request's context.
        self.record(status, error_type, code, error);
    }

    /// Records the duration with the outcome's attributes.
    fn record(
        &self,
        status: Option<StatusCode>,
        error_type: Option<&'static str>,
        code: Option<KeyValue>,
        error: Option<KeyValue>,
    ) {
        self.in_flight.finish(self.key(status, error_type), || {
            let mut metric = Attributes::<6>::new();
            metric.push(KeyValue::new(HTTP_REQUEST_METHOD, self.method));
            metric.push(KeyValue::new(URL_SCHEME, self.scheme));
            if let Some(route) = self.route.value() {
                metric.push(KeyValue::new(HTTP_ROUTE, route));
            }
            if let Some(version) = self.version {
                metric.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, version));
            }
            metric.extend(code);
            metric.extend(error);
            metric
        });
    }

    /// The key of the duration's attribute set; `None` for a route that
    /// could not be interned. The error type is the status's, or the
    /// inner error's type name.
    fn key(&self, status: Option<StatusCode>, error_type: Option<&'static str>) -> Option<SetKey> {
        let route = match self.route {
            Route::None => None,
            Route::Interned(route) => Some(route),
            Route::Owned(_) => return None,
        };
        let status = status.map_or(0, |s| u64::from(s.as_u16()));
        Some(SetKey {
            names: [
                SetKey::name(Some(self.method)),
                SetKey::name(Some(self.scheme)),
                SetKey::name(route),
                SetKey::name(error_type),
            ],
            bits: status | SetKey::short(self.version)? << 16,
        })
    }
}

/// Where the client sent the request, as host and port: the URI's
/// authority (HTTP/2 `:authority`, absolute-form requests), else the `Host`
/// header. A malformed one is ignored.
fn server_address(parts: &Parts) -> HostPort<'_> {
    if let Some(authority) = parts.uri.authority() {
        return Some((authority.host(), authority.port_u16()));
    }
    split_host(parts.headers.get(HOST)?.to_str().ok()?)
}
