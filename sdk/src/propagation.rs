//! Extraction and injection as every layer does them: through the
//! `HeaderMap` fast path, logging what the propagator left out.

use baton_propagators::Dropped;
#[cfg(feature = "_middleware")]
use baton_propagators::Propagator;
#[cfg(feature = "_middleware")]
use opentelemetry::Context;
#[cfg(any(feature = "_http-client", feature = "tonic"))]
use opentelemetry::baggage::BaggageExt as _;
#[cfg(any(feature = "http-server", feature = "tonic"))]
use opentelemetry::trace::{SpanContext, TraceContextExt as _};

/// The context `headers` carry, on top of `cx`.
#[cfg(any(feature = "http-server", feature = "tonic"))]
pub(crate) fn extract(
    propagator: &dyn Propagator,
    cx: &Context,
    headers: &http::HeaderMap,
) -> Context {
    let mut dropped = Vec::new();
    let cx = propagator.extract_from_header_map(cx, headers, &mut dropped);
    log_dropped("extract", &dropped);
    cx
}

/// Writes `cx` into `headers`, its baggage only `with_baggage`, and the
/// request id unless the headers carry one.
#[cfg(any(feature = "_http-client", feature = "tonic"))]
pub(crate) fn inject(
    propagator: &dyn Propagator,
    cx: &Context,
    headers: &mut http::HeaderMap,
    with_baggage: bool,
) {
    let mut dropped = Vec::new();
    if with_baggage || cx.baggage().is_empty() {
        propagator.inject_into_header_map(cx, headers, &mut dropped);
    } else {
        // The propagators' baggage part injects nothing for empty baggage.
        let cx = cx.with_cleared_baggage();
        propagator.inject_into_header_map(&cx, headers, &mut dropped);
    }
    log_dropped("inject", &dropped);
    crate::request_id::RequestId::inject(cx, headers);
}

/// The valid remote span context an extraction produced, if any.
#[cfg(any(feature = "http-server", feature = "tonic"))]
pub(crate) fn remote_parent(extracted: &Context) -> Option<SpanContext> {
    let span = extracted.span();
    let remote = span.span_context();
    (remote.is_valid() && remote.is_remote()).then(|| remote.clone())
}

/// Entries a propagator left out are the peer's problem, normal on the
/// internet: a debug line, never a failure.
pub(crate) fn log_dropped(operation: &'static str, dropped: &[Dropped]) {
    for entry in dropped {
        tracing::debug!(operation, "propagation entry dropped: {entry}");
    }
}
