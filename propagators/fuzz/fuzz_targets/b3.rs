//! Arbitrary `b3` and `X-B3-*` header values: extraction must not panic, and
//! whatever is injected from the result must extract to the same context.
#![no_main]

use baton_propagators::{B3Encoding, B3Propagator, DebugTrace, HeaderCarrier, HeaderCarrierMut};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;

const HEADERS: [&str; 6] = [
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fn state(cx: &Context) -> (opentelemetry::trace::SpanContext, bool) {
    (cx.span().span_context().clone(), DebugTrace::is_set(cx))
}

fuzz_target!(|data: &[u8]| {
    // One header value per line, in the order of HEADERS.
    let mut map = HeaderMap::new();
    for (name, line) in HEADERS.iter().zip(data.split(|b| *b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            map.append(*name, value);
        }
    }
    let cx = B3Propagator::new().extract(&HeaderCarrier(&map));
    for encoding in [
        B3Encoding::Single,
        B3Encoding::Multi,
        B3Encoding::SingleAndMulti,
    ] {
        let mut out = HeaderMap::new();
        B3Propagator::with_encoding(encoding).inject_context(&cx, &mut HeaderCarrierMut(&mut out));
        let again = B3Propagator::new().extract(&HeaderCarrier(&out));
        assert_eq!(state(&again), state(&cx));
    }
});
