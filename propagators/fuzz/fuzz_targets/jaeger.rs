//! Arbitrary `uber-trace-id` and `uberctx-*` headers: extraction must not
//! panic, and whatever is injected from the result must extract to the same
//! context and baggage.
#![no_main]

use baton_propagators::{DebugTrace, HeaderCarrier, HeaderCarrierMut, JaegerPropagator};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;

type State = (
    opentelemetry::trace::SpanContext,
    bool,
    Vec<(String, String)>,
);

fn state(cx: &Context) -> State {
    let mut baggage: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect();
    baggage.sort();
    (
        cx.span().span_context().clone(),
        DebugTrace::is_set(cx),
        baggage,
    )
}

fuzz_target!(|data: &[u8]| {
    // First line: the uber-trace-id value; then `key=value` lines for uberctx-key.
    let mut lines = data.split(|b| *b == b'\n');
    let mut map = HeaderMap::new();
    if let Some(Ok(value)) = lines.next().map(HeaderValue::from_bytes) {
        map.append("uber-trace-id", value);
    }
    for line in lines {
        let mut kv = line.splitn(2, |b| *b == b'=');
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        let name = [b"uberctx-".as_slice(), k].concat();
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&name), HeaderValue::from_bytes(v)) {
            map.append(name, value);
        }
    }
    let cx = JaegerPropagator::new().extract(&HeaderCarrier(&map));
    let mut out = HeaderMap::new();
    JaegerPropagator::new().inject_context(&cx, &mut HeaderCarrierMut(&mut out));
    let again = JaegerPropagator::new().extract(&HeaderCarrier(&out));
    assert_eq!(state(&again), state(&cx));
});
