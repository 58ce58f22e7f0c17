//! Jaeger propagator tests, written from the Jaeger client-libraries
//! documentation, "Propagation Format" ("§" cites its subsections).

mod common;
use baton_propagators::{
    DebugTrace, DropReason, Dropped, HeaderCarrier, HeaderCarrierMut, JaegerPropagator, Propagator,
};
use common::headers;
use http::HeaderMap;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use proptest::prelude::*;

/// `(trace id, span id, sampled, debug)` of an extracted span context.
type Found = Option<(String, String, bool, bool)>;

/// Header or baggage `(name, value)` pairs.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// Expected injected headers.
type Headers = Vec<(&'static str, String)>;

/// The spec text a table row is checked against.
type Why = &'static str;

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

fn baggage(cx: &Context) -> Vec<(String, String)> {
    let mut v: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn extract_from(
    cx: &Context,
    extractor: &dyn opentelemetry::propagation::Extractor,
) -> (Context, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let cx = JaegerPropagator::new().extract_reporting(cx, extractor, &mut dropped);
    (cx, dropped)
}

fn ctx(trace: &str, span: &str, sampled: bool, debug: bool) -> Found {
    Some((trace.to_owned(), span.to_owned(), sampled, debug))
}

const T128: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[test]
fn trace_id_header_table() {
    let padded_t = "000000000000000000000000000004d2";
    let padded_s = "0000000000017c29";
    let rows: Vec<(String, Found, &str)> = vec![
        (
            format!("{T128}:{SPAN}:0:1"),
            ctx(T128, SPAN, true, false),
            "§Trace/Span Identity: {trace-id}:{span-id}:{parent-span-id}:{flags}",
        ),
        (
            format!("{T128}:{SPAN}:0:01"),
            ctx(T128, SPAN, true, false),
            "§flags: one byte bitmap, as two hex digits",
        ),
        (
            format!("{T128}:{SPAN}:0:00"),
            ctx(T128, SPAN, false, false),
            "§flags: bit 1 clear means not sampled",
        ),
        (
            format!("{T128}:{SPAN}:0:03"),
            ctx(T128, SPAN, true, true),
            "§flags: bit 2 is debug",
        ),
        (
            format!("{T128}:{SPAN}:0:2"),
            ctx(T128, SPAN, true, true),
            "§flags: debug flag implies sampled flag",
        ),
        (
            format!("{T128}:{SPAN}:0:0a"),
            ctx(T128, SPAN, true, true),
            "§flags: hex digits (0x0a has the debug bit); other bits are unused",
        ),
        (
            format!("{T128}:{SPAN}:0:04"),
            ctx(T128, SPAN, false, false),
            "§flags: other bits are unused",
        ),
        (
            format!("{T128}:{SPAN}:0:100"),
            None,
            "§flags: one byte, at most two hex digits",
        ),
        (format!("{T128}:{SPAN}:0:"), None, "§flags: required"),
        (format!("{T128}:{SPAN}:0:g"), None, "§flags: hex"),
        (
            "4d2:17c29:0:1".to_owned(),
            ctx(padded_t, padded_s, true, false),
            "§trace-id: variable length, 0-padded on the left (span ids too, as clients send them)",
        ),
        (
            format!("{}:{}:0:1", T128.to_uppercase(), SPAN.to_uppercase()),
            ctx(T128, SPAN, true, false),
            "§trace-id: base16, either case",
        ),
        (
            format!("{T128}:{SPAN}:a3ce929d0e0e4736:1"),
            ctx(T128, SPAN, true, false),
            "§parent-span-id: deprecated, ignored on the receiving side",
        ),
        (
            format!("{T128}:{SPAN}::1"),
            None,
            "§parent-span-id: still a 64-bit base16 value",
        ),
        (
            format!("{T128}:{SPAN}:x:1"),
            None,
            "§parent-span-id: base16",
        ),
        (
            format!("0:{SPAN}:0:1"),
            None,
            "§trace-id: value of 0 is invalid",
        ),
        (
            format!("{}:{SPAN}:0:1", "0".repeat(32)),
            None,
            "§trace-id: zero however written",
        ),
        (
            format!("{T128}:0:0:1"),
            None,
            "§span-id: a zero span id is no span",
        ),
        (
            format!("0{T128}:{SPAN}:0:1"),
            None,
            "§trace-id: at most 128 bits",
        ),
        (
            format!("{T128}:0{SPAN}:0:1"),
            None,
            "§span-id: at most 64 bits",
        ),
        (format!(":{SPAN}:0:1"), None, "§trace-id: required"),
        (format!("{T128}:{SPAN}:0"), None, "§Value: four fields"),
        (
            format!("{T128}:{SPAN}:0:1:1"),
            None,
            "§Value: four fields, no more",
        ),
        (
            format!("{T128}%3A{SPAN}%3A0%3A1"),
            ctx(T128, SPAN, true, false),
            "URL-encoded value as Jaeger's HTTP propagators send it",
        ),
        (
            format!("{T128}%3a{SPAN}%3a0%3a1"),
            ctx(T128, SPAN, true, false),
            "URL-encoding is case-insensitive",
        ),
        (
            format!("+{}:{SPAN}:0:1", &T128[1..]),
            None,
            "§trace-id: base16 digits only, no sign",
        ),
        (
            format!("{T128}:{SPAN}:0:1 "),
            None,
            "no whitespace in a field",
        ),
        (
            format!("{T128}:{SPAN}:0:1{}", "%3A".repeat(3)),
            None,
            "longer than any valid value: rejected unread",
        ),
    ];
    for (value, expected, why) in rows {
        let (cx, dropped) = extract_from(
            &Context::new(),
            &HeaderCarrier(&headers(&[("uber-trace-id", &value)])),
        );
        assert_eq!(found(&cx), expected, "{value:?}: {why}");
        assert_eq!(
            dropped.is_empty(),
            expected.is_some(),
            "{value:?}: {dropped:?}"
        );
    }
}

#[test]
fn baggage_extraction_table() {
    let rows: Vec<(Pairs<'_>, Pairs<'_>, &str)> = vec![
        (
            vec![("uberctx-user", "jo%20e")],
            vec![("user", "jo e")],
            "§Baggage: key uberctx-{baggage-key}, value url-encoded",
        ),
        (
            vec![("uberctx-user", "jo+e")],
            vec![("user", "jo e")],
            "§Baggage: Jaeger's Go/Java clients url-encode a space as +",
        ),
        (
            vec![("uberctx-op", "a%2Bb")],
            vec![("op", "a+b")],
            "§Baggage: an encoded plus is a plus",
        ),
        (
            vec![("uberctx-my-baggage-key-1", "v")],
            vec![("my-baggage-key-1", "v")],
            "§Baggage: lowercase-snake-case keys",
        ),
        (
            vec![("uberctx-k", "100%")],
            vec![("k", "100%")],
            "a stray % stays literal",
        ),
        (
            vec![("uberctx-k", "")],
            vec![("k", "")],
            "an empty value is a value",
        ),
        (
            vec![("uberctx-k", "%E2%82%AC")],
            vec![("k", "€")],
            "UTF-8 is decoded",
        ),
        (
            vec![("uberctx-a", "1"), ("uberctx-b", "2"), ("other", "x")],
            vec![("a", "1"), ("b", "2")],
            "only uberctx- headers",
        ),
    ];
    for (pairs, expected, why) in rows {
        let (cx, dropped) = extract_from(&Context::new(), &HeaderCarrier(&headers(&pairs)));
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(baggage(&cx), expected, "{pairs:?}: {why}");
        assert!(dropped.is_empty(), "{why}: {dropped:?}");
        assert_eq!(found(&cx), None, "baggage alone has no span context");
    }
}

/// A carrier that keeps the case of its keys (unlike `http::HeaderMap`, and
/// unlike opentelemetry's `HashMap` extractor, whose `get` lowercases).
struct CasePreserving(Vec<(&'static str, &'static str)>);

impl opentelemetry::propagation::Extractor for CasePreserving {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

#[test]
fn baggage_keys_are_lowercased_and_validated_on_any_carrier() {
    // §Baggage: "HTTP headers don't preserve the case"; other carriers may.
    let carrier = CasePreserving(vec![
        ("Uberctx-User", "x"),
        ("uberctx-", "y"),
        ("uberctx-a b", "z"),
    ]);
    let (cx, dropped) = extract_from(&Context::new(), &carrier);
    assert_eq!(baggage(&cx), [("user".to_owned(), "x".to_owned())]);
    assert_eq!(
        dropped,
        vec![Dropped::new("uberctx-", "", DropReason::Malformed); 2]
    );
}

#[test]
fn baggage_limits_are_reported() {
    let mut map = HeaderMap::new();
    for i in 0..65 {
        map.insert(
            http::HeaderName::from_bytes(format!("uberctx-k{i:02}").as_bytes()).expect("name"),
            "v".parse().expect("value"),
        );
    }
    let (cx, dropped) = extract_from(&Context::new(), &HeaderCarrier(&map));
    assert_eq!(
        cx.baggage().len(),
        64,
        "W3C Baggage limits as enforced by opentelemetry"
    );
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].reason, DropReason::TooMany);

    let big = "x".repeat(8193);
    let (cx, dropped) = extract_from(
        &Context::new(),
        &HeaderCarrier(&headers(&[("uberctx-big", &big)])),
    );
    assert!(cx.baggage().is_empty());
    assert_eq!(
        dropped,
        [Dropped::new("uberctx-", "big", DropReason::TooLong)]
    );

    let half = "x".repeat(5000);
    let (cx, dropped) = extract_from(
        &Context::new(),
        &HeaderCarrier(&headers(&[("uberctx-a", &half), ("uberctx-b", &half)])),
    );
    assert_eq!(
        cx.baggage().len(),
        1,
        "the second would exceed 8192 bytes in all"
    );
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].reason, DropReason::TooLong);
}

#[test]
fn baggage_merges_with_the_context_baggage() {
    let cx =
        Context::new().with_baggage([KeyValue::new("kept", "1"), KeyValue::new("shared", "old")]);
    let (cx, _) = extract_from(&cx, &HeaderCarrier(&headers(&[("uberctx-shared", "new")])));
    assert_eq!(
        baggage(&cx),
        [
            ("kept".to_owned(), "1".to_owned()),
            ("shared".to_owned(), "new".to_owned())
        ]
    );
}

fn span_cx(trace: u128, span: u64, sampled: bool, debug: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(sc);
    if debug { DebugTrace::mark(&cx) } else { cx }
}

fn inject(cx: &Context) -> (Vec<(String, String)>, Vec<Dropped>) {
    let mut map = HeaderMap::new();
    let mut dropped = Vec::new();
    JaegerPropagator::new().inject_reporting(cx, &mut HeaderCarrierMut(&mut map), &mut dropped);
    let mut v: Vec<_> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_owned()))
        .collect();
    v.sort();
    (v, dropped)
}

#[test]
fn injection_table() {
    let trace = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
    let span = 0x00f0_67aa_0ba9_02b7;
    let id = format!("{T128}:{SPAN}:0");
    let rows: Vec<(Context, Headers, Why)> = vec![
        (
            span_cx(trace, span, true, false),
            vec![("uber-trace-id", format!("{id}:01"))],
            "§flags as two hex digits; parent-span-id deprecated, sent as 0",
        ),
        (
            span_cx(trace, span, false, false),
            vec![("uber-trace-id", format!("{id}:00"))],
            "§flags: not sampled",
        ),
        (
            span_cx(trace, span, true, true),
            vec![("uber-trace-id", format!("{id}:03"))],
            "§flags: debug implies sampled",
        ),
        (
            span_cx(trace, span, false, true),
            vec![("uber-trace-id", format!("{id}:00"))],
            "debug cannot go out without sampled",
        ),
        (
            span_cx(0x4d2, 0x17c29, true, false),
            vec![(
                "uber-trace-id",
                "000000000000000000000000000004d2:0000000000017c29:0:01".to_owned(),
            )],
            "full-width lowercase ids",
        ),
        (
            Context::new(),
            vec![],
            "nothing for an invalid span context",
        ),
        (
            Context::new().with_baggage([KeyValue::new("user", "jo e+€,;")]),
            vec![("uberctx-user", "jo%20e%2B%E2%82%AC%2C%3B".to_owned())],
            "§Baggage: url-encoded, + encoded for form decoders; baggage goes out without a span",
        ),
    ];
    for (cx, expected, why) in rows {
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let (got, dropped) = inject(&cx);
        assert_eq!(got, expected, "{why}");
        assert!(dropped.is_empty());
    }
}

#[test]
fn keys_that_cannot_be_header_names_are_not_injected() {
    let mut b = Baggage::new();
    for k in ["ok", "UserId", "a%b"] {
        b.insert(k, "v");
    }
    let (got, dropped) = inject(&Context::new().with_baggage(b));
    assert_eq!(
        got,
        [
            ("uberctx-a%b".to_owned(), "v".to_owned()),
            ("uberctx-ok".to_owned(), "v".to_owned())
        ]
    );
    assert_eq!(
        dropped,
        [Dropped::new("uberctx-", "", DropReason::Malformed)],
        "§Baggage: case is not preserved, so UserId could not round-trip"
    );
}

#[test]
fn fields_are_the_trace_header() {
    assert_eq!(
        JaegerPropagator::new().fields().collect::<Vec<_>>(),
        ["uber-trace-id"]
    );
}

fn jaegerish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F:%3]{0,80}",
        "[0-9a-f]{1,33}(:|%3A)[0-9a-f]{1,17}(:|%3A)[0-9a-f]{0,17}(:|%3A)[0-9a-f]{0,3}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn multi_hop_round_trip(
        trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled: bool, debug: bool,
        entries in proptest::collection::btree_map("[a-z0-9_.-]{1,12}", any::<String>(), 0..8),
    ) {
        let cx = span_cx(trace, span, sampled, debug)
            .with_baggage(entries.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
        let want = (found(&cx), baggage(&cx));
        let mut cx = cx;
        for _ in 0..3 {
            let mut map = HeaderMap::new();
            JaegerPropagator::new().inject_context(&cx, &mut HeaderCarrierMut(&mut map));
            cx = JaegerPropagator::new().extract(&HeaderCarrier(&map));
            prop_assert_eq!((found(&cx), baggage(&cx)), want.clone());
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_output_reparses(
        value in jaegerish(),
        raw in proptest::collection::vec(any::<u8>(), 0..80),
        entries in proptest::collection::vec(("[a-zA-Z0-9!#$%&'*+.^_`|~-]{0,10}", any::<String>()), 0..6),
    ) {
        let mut map = HeaderMap::new();
        for v in [value.as_bytes(), &raw] {
            if let Ok(v) = http::HeaderValue::from_bytes(v) { map.append("uber-trace-id", v); }
        }
        for (k, v) in entries {
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(format!("uberctx-{k}").as_bytes()), http::HeaderValue::from_str(&v)) {
                map.append(k, v);
            }
        }
        let cx = JaegerPropagator::new().extract(&HeaderCarrier(&map));
        let (out, dropped) = inject(&cx);
        prop_assert!(dropped.is_empty(), "everything extracted can be injected");
        let out = headers(&out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
        let again = JaegerPropagator::new().extract(&HeaderCarrier(&out));
        prop_assert_eq!((found(&again), baggage(&again)), (found(&cx), baggage(&cx)));
    }
}
