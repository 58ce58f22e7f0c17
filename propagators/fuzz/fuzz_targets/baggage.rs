//! Arbitrary `baggage` header lines: extract never panics, what is injected is
//! a valid header that re-extracts to the same baggage and re-injects to the
//! same bytes.

#![no_main]

use baton_propagators::{BaggagePropagator, HeaderCarrier, HeaderCarrierMut, Propagator};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;

fn entries(cx: &Context) -> Vec<(String, String, String)> {
    let mut entries: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
        .collect();
    entries.sort();
    entries
}

fn hop(headers: &HeaderMap) -> (Context, HeaderMap) {
    let mut dropped = Vec::new();
    let cx =
        BaggagePropagator.extract_reporting(&Context::new(), &HeaderCarrier(headers), &mut dropped);
    let mut out = HeaderMap::new();
    BaggagePropagator.inject_reporting(&cx, &mut HeaderCarrierMut(&mut out), &mut dropped);
    (cx, out)
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("baggage", value);
        }
    }
    let (cx, out) = hop(&headers);
    let Some(sent) = out.get("baggage") else {
        assert!(
            cx.baggage().is_empty(),
            "baggage extracted but nothing sent on"
        );
        return;
    };
    assert!(!sent.is_empty());
    assert!(
        sent.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)),
        "{sent:?}"
    );
    let (again, out_again) = hop(&out);
    assert_eq!(entries(&again), entries(&cx));
    assert_eq!(out_again.get("baggage"), Some(sent));
});
