//! One outgoing request's span and metrics, from injection to response:
//! what the tower layer and the reqwest middleware share.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Version};
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, NETWORK_PROTOCOL_VERSION, URL_FULL,
};

use super::Client;
use crate::http::semconv;
use crate::http::telemetry::{Attributes, InFlight};
use crate::instrumentation::{Address, Options, RequestView};
use crate::propagation::inject;

/// Where a request goes, as the client's URL or URI says.
pub(crate) struct Target<'a> {
    pub(crate) method: &'a Method,
    pub(crate) host: Option<&'a str>,
    pub(crate) port: Option<u16>,
}

/// What is decided from the request before it is changed: its span name,
/// `None` when it is not recorded, and whether it may carry baggage.
pub(crate) struct Plan {
    name: Option<Cow<'static, str>>,
    with_baggage: bool,
}

impl Plan {
    pub(crate) fn new(options: &Options<Client>, view: &RequestView<'_>) -> Self {
        let with_baggage = view.host().is_some_and(|host| options.baggage.allows(host));
        let name = options.records(view).then(|| {
            let method = semconv::method_span_name(semconv::method(view.method()));
            options.span_name(Cow::Borrowed(method), view)
        });
        Plan { name, with_baggage }
    }

    /// Whether the policy lets the request carry baggage.
    #[cfg_attr(
        not(feature = "reqwest"),
        expect(dead_code, reason = "the reqwest middleware's")
    )]
    pub(crate) fn with_baggage(&self) -> bool {
        self.with_baggage
    }
}

/// A request being recorded. Dropped unfinished (cancelled), it ends the
/// span and leaves the active count without recording a duration.
pub(crate) struct Outgoing {
    /// The context holding the CLIENT span.
    cx: Context,
    in_flight: InFlight<3>,
    metric: Attributes<6>,
}

impl Outgoing {
    /// Injects the context into `headers` and, unless `plan` says the
    /// request is not recorded, starts its span and metrics; `url_full` is
    /// its `url.full`, secrets redacted.
    pub(crate) fn start(
        options: &Options<Client>,
        plan: Plan,
        target: &Target<'_>,
        url_full: impl FnOnce() -> String,
        headers: &mut HeaderMap,
    ) -> Option<Self> {
        let parent = crate::current();
        let Some(name) = plan.name else {
            options
                .with(|resolved| inject(resolved.propagator, &parent, headers, plan.with_baggage));
            return None;
        };
        Some(options.with(|resolved| {
            // Room for what the response adds (status, version, error type).
            let mut attributes = Vec::with_capacity(8);
            let method = semconv::push_method(target.method, &mut attributes);
            let server = match &options.server {
                Some(server) => Some(server.clone()),
                None => target.host.map(|host| Address {
                    host: Value::from(Arc::<str>::from(host)).into(),
                    name: None,
                    port: target.port.map(i64::from),
                }),
            };
            let mut endpoint = Attributes::<3>::new();
            endpoint.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
            endpoint.extend(server.iter().flat_map(Address::attributes));
            // The span has the method already (with its original, if normalised).
            attributes.extend(endpoint.iter().skip(1).cloned());
            attributes.push(KeyValue::new(URL_FULL, url_full()));
            let builder = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attributes);
            let cx = resolved.tracer.start(builder, &parent);
            inject(resolved.propagator, &cx, headers, plan.with_baggage);

            let metric = endpoint.iter().cloned().collect();
            let in_flight = InFlight::start(resolved.instruments, endpoint, None, &cx);
            Outgoing {
                cx,
                in_flight,
                metric,
            }
        }))
    }

    /// The context to send the request in: the CLIENT span's.
    pub(crate) fn cx(&self) -> &Context {
        &self.cx
    }

    /// Finishes with a response's `status` and `version`.
    pub(crate) fn response(mut self, status: StatusCode, version: Version) {
        let span = self.cx.span();
        let code = KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
        span.set_attribute(code.clone());
        self.metric.push(code);
        if let Some(version) = semconv::protocol_version(version) {
            let version = KeyValue::new(NETWORK_PROTOCOL_VERSION, version);
            span.set_attribute(version.clone());
            self.metric.push(version);
        }
        let error = semconv::status_error_type(status, 400).map(Value::String);
        self.finish(error);
    }

    /// Finishes a request that got no response, for a reason named `error_type`.
    pub(crate) fn error(self, error_type: &'static str) {
        self.finish(Some(Value::from(error_type)));
    }

    fn finish(mut self, error: Option<Value>) {
        let span = self.cx.span();
        if let Some(error) = error {
            let error = KeyValue::new(ERROR_TYPE, error);
            span.set_attribute(error.clone());
            // The status code or error type says it all: no description.
            span.set_status(Status::error(""));
            self.metric.push(error);
        }
        self.in_flight.finish(None, || self.metric.as_slice());
        span.end();
    }
}
