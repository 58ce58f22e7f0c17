//! Arbitrary `traceparent` lines next to a valid `tracestate`: extraction
//! never panics, both extraction paths agree, and whatever is injected is
//! valid and re-extracts to the same context.

#![no_main]

use baton_propagators::trace_context::parse_traceparent;
use baton_propagators::{HeaderCarrier, HeaderCarrierMut, Propagator, TraceContextPropagator};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.append(
        "tracestate",
        HeaderValue::from_static("rojo=00f067aa0ba902b7"),
    );
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("traceparent", value);
        }
    }

    let propagator = TraceContextPropagator::new();
    let cx =
        propagator.extract_reporting(&Context::new(), &HeaderCarrier(&headers), &mut Vec::new());
    let fast = propagator.extract_from_headers(&Context::new(), &headers);
    assert_eq!(fast.span().span_context(), cx.span().span_context());

    let mut out = HeaderMap::new();
    let mut dropped = Vec::new();
    propagator.inject_reporting(&cx, &mut HeaderCarrierMut(&mut out), &mut dropped);
    assert!(dropped.is_empty(), "{dropped:?}");
    if let Some(value) = out.get("traceparent") {
        assert!(value.to_str().ok().and_then(parse_traceparent).is_some());
    }
    let again = propagator.extract_reporting(&Context::new(), &HeaderCarrier(&out), &mut dropped);
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(again.span().span_context(), cx.span().span_context());
});
