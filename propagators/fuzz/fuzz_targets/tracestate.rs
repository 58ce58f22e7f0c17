//! Arbitrary `tracestate` lines next to a valid `traceparent`: extraction
//! never panics, both extraction paths agree, and whatever is injected is
//! valid and re-extracts to the same context and the same header.

#![no_main]

use baton_propagators::{HeaderCarrier, HeaderCarrierMut, Propagator, TraceContextPropagator};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    headers.append("traceparent", HeaderValue::from_static(traceparent));
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("tracestate", value);
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
    assert_eq!(
        out.get("traceparent").map(HeaderValue::as_bytes),
        Some(traceparent.as_bytes())
    );

    let again = propagator.extract_reporting(&Context::new(), &HeaderCarrier(&out), &mut dropped);
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(again.span().span_context(), cx.span().span_context());
    let mut out_again = HeaderMap::new();
    propagator.inject_reporting(&again, &mut HeaderCarrierMut(&mut out_again), &mut dropped);
    assert_eq!(out_again, out);
});
