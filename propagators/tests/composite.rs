//! Composite propagator tests (OpenTelemetry propagators spec, "Composite
//! Propagator": extract and inject run every propagator in order).

mod common;
use baton_propagators::{
    B3Encoding, B3Propagator, CompositePropagator, DebugTrace, DropReason, Dropped, HeaderCarrier,
    HeaderCarrierMut, JaegerPropagator, Propagator,
};
use common::headers;
use http::HeaderMap;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use proptest::prelude::*;

type Found = Option<(String, String, bool, bool)>;

fn found(cx: &Context) -> Found {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
            DebugTrace::is_set(cx),
        )
    })
}

fn b3_then_jaeger() -> CompositePropagator {
    CompositePropagator::default()
        .push(B3Propagator::new())
        .push(JaegerPropagator::new())
}

fn extract(p: &CompositePropagator, map: &HeaderMap) -> (Found, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let cx = p.extract_reporting(&Context::new(), &HeaderCarrier(map), &mut dropped);
    (found(&cx), dropped)
}

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const B3_SPAN: &str = "00f067aa0ba902b7";
const JAEGER_SPAN: &str = "a3ce929d0e0e4736";

fn both_headers(b3_flag: &str, jaeger_flags: &str) -> HeaderMap {
    headers(&[
        ("b3", &format!("{T}-{B3_SPAN}-{b3_flag}")),
        (
            "uber-trace-id",
            &format!("{T}:{JAEGER_SPAN}:0:{jaeger_flags}"),
        ),
    ])
}

#[test]
fn the_last_valid_span_context_wins() {
    // Each propagator extracts into the context the previous one produced and
    // replaces its span, as TextMapCompositePropagator does: so the order of
    // the list is the order of precedence, last first.
    let (got, _) = extract(&b3_then_jaeger(), &both_headers("1", "01"));
    assert_eq!(got.map(|f| f.1), Some(JAEGER_SPAN.to_owned()));

    let jaeger_then_b3 = CompositePropagator::new(vec![
        Box::new(JaegerPropagator::new()),
        Box::new(B3Propagator::new()),
    ]);
    let (got, _) = extract(&jaeger_then_b3, &both_headers("1", "01"));
    assert_eq!(got.map(|f| f.1), Some(B3_SPAN.to_owned()));
}

#[test]
fn the_debug_mark_follows_the_winner() {
    let (got, _) = extract(&b3_then_jaeger(), &both_headers("d", "01"));
    assert_eq!(
        got.map(|f| f.3),
        Some(false),
        "Jaeger's non-debug context replaces B3's debug one"
    );
    let (got, _) = extract(&b3_then_jaeger(), &both_headers("1", "03"));
    assert_eq!(got.map(|f| f.3), Some(true));
}

#[test]
fn a_malformed_later_header_leaves_the_earlier_context_and_every_drop_is_reported() {
    let map = headers(&[
        ("b3", &format!("{T}-{B3_SPAN}-1")),
        ("uber-trace-id", "garbage"),
        ("uberctx-", "x"),
    ]);
    let (got, dropped) = extract(&b3_then_jaeger(), &map);
    assert_eq!(got.map(|f| f.1), Some(B3_SPAN.to_owned()));
    assert_eq!(
        dropped,
        [
            Dropped::new("uber-trace-id", "", DropReason::Malformed),
            Dropped::new("uberctx-", "", DropReason::Malformed),
        ]
    );

    let map = headers(&[("b3", "bad"), ("uber-trace-id", "bad")]);
    let (got, dropped) = extract(&b3_then_jaeger(), &map);
    assert_eq!(got, None);
    assert_eq!(
        dropped.len(),
        2,
        "drops are reported in propagator order: {dropped:?}"
    );
    assert_eq!(dropped[0].header, "b3");
}

#[test]
fn inject_runs_every_propagator() {
    let sc = SpanContext::new(
        TraceId::from(1),
        SpanId::from(2),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new()
        .with_remote_span_context(sc)
        .with_baggage([KeyValue::new("k", "v")]);
    let mut map = HeaderMap::new();
    b3_then_jaeger().inject_context(&cx, &mut HeaderCarrierMut(&mut map));
    let mut names: Vec<_> = map.keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["b3", "uber-trace-id", "uberctx-k"]);
}

#[test]
fn fields_are_the_deduplicated_union_in_order() {
    let p = CompositePropagator::default()
        .push(B3Propagator::with_encoding(B3Encoding::Single))
        .push(B3Propagator::with_encoding(B3Encoding::SingleAndMulti))
        .push(JaegerPropagator::new())
        .push(JaegerPropagator::new());
    assert_eq!(
        p.fields().collect::<Vec<_>>(),
        [
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-sampled",
            "x-b3-flags",
            "uber-trace-id"
        ]
    );
}

#[test]
fn the_default_is_empty_and_does_nothing() {
    let p = CompositePropagator::default();
    let (got, dropped) = extract(&p, &both_headers("1", "01"));
    assert_eq!((got, dropped), (None, vec![]));
    assert_eq!(p.fields().count(), 0);
    let cx = b3_then_jaeger().extract(&HeaderCarrier(&both_headers("1", "01")));
    let mut map = HeaderMap::new();
    p.inject_context(&cx, &mut HeaderCarrierMut(&mut map));
    assert!(map.is_empty());
}

#[test]
fn composites_nest() {
    let inner = b3_then_jaeger();
    let outer = CompositePropagator::default().push(inner);
    let (got, _) = extract(&outer, &both_headers("1", "01"));
    assert_eq!(got.map(|f| f.1), Some(JAEGER_SPAN.to_owned()));
    assert_eq!(outer.fields().count(), 2);
}

fn any_header() -> impl Strategy<Value = (&'static str, String)> {
    (
        prop_oneof![
            Just("b3"),
            Just("x-b3-traceid"),
            Just("x-b3-spanid"),
            Just("x-b3-sampled"),
            Just("x-b3-flags"),
            Just("uber-trace-id"),
            Just("uberctx-k"),
        ],
        prop_oneof!["[0-9a-fd:%3A-]{0,70}", any::<String>()],
    )
}

proptest! {
    #[test]
    fn multi_hop_round_trip(
        trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled: bool, debug: bool,
        value in any::<String>(),
    ) {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), flags, true, TraceState::default());
        let mut cx = Context::new().with_remote_span_context(sc).with_baggage([KeyValue::new("k", value)]);
        if debug {
            cx = DebugTrace::mark(&cx);
        }
        let want = (found(&cx), cx.baggage().get("k").cloned());
        let p = b3_then_jaeger();
        for _ in 0..3 {
            let mut map = HeaderMap::new();
            p.inject_context(&cx, &mut HeaderCarrierMut(&mut map));
            cx = p.extract(&HeaderCarrier(&map));
            prop_assert_eq!((found(&cx), cx.baggage().get("k").cloned()), want.clone());
        }
    }

    #[test]
    fn arbitrary_headers_never_panic_and_output_reparses(
        pairs in proptest::collection::vec(any_header(), 0..8),
    ) {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                map.append(k, v);
            }
        }
        let p = b3_then_jaeger();
        let cx = p.extract(&HeaderCarrier(&map));
        let mut out = HeaderMap::new();
        p.inject_context(&cx, &mut HeaderCarrierMut(&mut out));
        let again = p.extract(&HeaderCarrier(&out));
        prop_assert_eq!(found(&again), found(&cx));
    }
}

fn w3c() -> CompositePropagator {
    CompositePropagator::default()
        .push(baton_propagators::TraceContextPropagator::new())
        .push(baton_propagators::BaggagePropagator::new())
}

/// Everything a context extracted by `w3c()` carries that tests compare.
type Extracted = (
    Option<(String, String, bool, String)>,
    Vec<(String, String)>,
);

fn extracted(cx: &Context) -> Extracted {
    let span = cx.span();
    let sc = span.span_context();
    let trace = sc.is_valid().then(|| {
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
            sc.trace_state().header(),
        )
    });
    let mut baggage: Vec<(String, String)> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect();
    baggage.sort();
    (trace, baggage)
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u128>(), any::<u64>(), 0..4_u8)
            .prop_map(|(t, s, f)| format!("00-{t:032x}-{s:016x}-{f:02x}")),
        "[a-z]{1,6}=[a-z0-9]{0,6}(,[a-z@]{1,6}=[a-z0-9%;]{0,6}){0,3}",
        "[ -~]{0,60}",
    ]
}

proptest! {
    /// The `HeaderMap` fast paths the middleware uses agree with the
    /// `Extractor`/`Injector` paths on any input.
    #[test]
    fn header_map_paths_agree_with_carriers(
        lines in proptest::collection::vec(
            (prop_oneof![Just("traceparent"), Just("tracestate"), Just("baggage")], header_value()),
            0..5,
        ),
    ) {
        let lines: Vec<(&str, &str)> = lines.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let map = headers(&lines);
        let propagator = w3c();
        let (mut slow_dropped, mut fast_dropped) = (Vec::new(), Vec::new());
        let slow = propagator.extract_reporting(&Context::new(), &HeaderCarrier(&map), &mut slow_dropped);
        let fast = propagator.extract_from_header_map(&Context::new(), &map, &mut fast_dropped);
        prop_assert_eq!(extracted(&fast), extracted(&slow));
        prop_assert_eq!(fast_dropped, slow_dropped);

        let (mut slow_out, mut fast_out) = (HeaderMap::new(), HeaderMap::new());
        propagator.inject_reporting(&slow, &mut HeaderCarrierMut(&mut slow_out), &mut Vec::new());
        propagator.inject_into_header_map(&slow, &mut fast_out, &mut Vec::new());
        prop_assert_eq!(fast_out, slow_out);
    }
}
