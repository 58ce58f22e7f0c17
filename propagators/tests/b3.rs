//! B3 propagator tests, written from the openzipkin/b3-propagation README
//! ("§" cites its sections) and the OpenTelemetry propagators spec, "B3 Requirements".

mod common;
use baton_propagators::{
    B3Encoding, B3Propagator, DebugTrace, DropReason, Dropped, HeaderCarrier, HeaderCarrierMut,
    Propagator,
};
use common::headers;
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use proptest::prelude::*;

/// What an extraction found: `(trace id, span id, sampled, debug)`.
type Found = Option<(String, String, bool, bool)>;

/// Header `(name, value)` pairs.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

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

fn extract(map: &HeaderMap) -> (Found, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let cx =
        B3Propagator::new().extract_reporting(&Context::new(), &HeaderCarrier(map), &mut dropped);
    (found(&cx), dropped)
}

fn ctx(trace: &str, span: &str, sampled: bool, debug: bool) -> Found {
    Some((trace.to_owned(), span.to_owned(), sampled, debug))
}

const T128: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const T64: &str = "64fe8b2a57d3eff7";
const T64_PADDED: &str = "000000000000000064fe8b2a57d3eff7";
const SPAN: &str = "e457b5a2e4d86bd1";
const PARENT: &str = "05e3ac9a4f6e3b90";

#[test]
fn single_header_table() {
    let long = format!("{T128}-{SPAN}-1-{PARENT}0");
    let rows: Vec<(String, Found, &str)> = vec![
        (
            format!("{T128}-{SPAN}-1-{PARENT}"),
            ctx(T128, SPAN, true, false),
            "§Single Header: b3={TraceId}-{SpanId}-{SamplingState}-{ParentSpanId} (the README's example swaps span and parent ids relative to its multi-header example; positions are what count)",
        ),
        (
            format!("{T128}-{SPAN}-1"),
            ctx(T128, SPAN, true, false),
            "§Single Header: the last two fields are optional",
        ),
        (
            format!("{T128}-{SPAN}"),
            ctx(T128, SPAN, false, false),
            "§Sampling State: Defer is absence of the sampling field; OpenTelemetry has no defer, so not sampled",
        ),
        (
            format!("{T128}-{SPAN}-0"),
            ctx(T128, SPAN, false, false),
            "§Sampling State: Deny is 0",
        ),
        (
            format!("{T128}-{SPAN}-d"),
            ctx(T128, SPAN, true, true),
            "§Sampling State: Debug is d; OTel spec: MUST set sampled when debug",
        ),
        (
            format!("{T64}-{SPAN}-1"),
            ctx(T64_PADDED, SPAN, true, false),
            "§TraceId: 32 or 16 lower-hex characters; 64-bit ids are left-padded",
        ),
        (
            "0".to_owned(),
            None,
            "§Single Header: a deny may omit identifiers; no ids means no span context",
        ),
        (
            "1".to_owned(),
            None,
            "§Sampling State: sampling state sent on its own carries no ids",
        ),
        (
            "d".to_owned(),
            None,
            "§Sampling State: a lone debug state carries no ids",
        ),
        (
            format!("{}-{SPAN}-1", T128.to_uppercase()),
            None,
            "§TraceId: lower-hex only",
        ),
        (
            format!("{T128}-{}-1", SPAN.to_uppercase()),
            None,
            "§SpanId: lower-hex only",
        ),
        (
            format!("{}-{SPAN}-1", &T128[..20]),
            None,
            "§TraceId: 32 or 16 characters, nothing in between",
        ),
        (
            format!("{T128}-{}-1", &SPAN[..15]),
            None,
            "§SpanId: exactly 16 characters",
        ),
        (
            format!("{T128}-{SPAN}-2"),
            None,
            "§Sampling State: only 1, 0 and d are defined",
        ),
        (
            format!("{T128}-{SPAN}-true"),
            None,
            "§Single Header: true/false leniency is only for X-B3-Sampled",
        ),
        (
            format!("{T128}-{SPAN}-1-{}", &PARENT[..8]),
            None,
            "§ParentSpanId: 16 lower-hex characters when present",
        ),
        (
            format!("{T128}-{SPAN}-1-0000000000000000"),
            None,
            "§Identifiers: an all-zero id is not an id",
        ),
        (
            format!("{T128}-{SPAN}-{PARENT}"),
            None,
            "§Sampling State: the third position is the sampling state, not a parent id",
        ),
        (
            format!("{T128}-{SPAN}-1-{PARENT}-1"),
            None,
            "§Single Header: at most four fields",
        ),
        (
            format!("{T128}-{SPAN}-"),
            None,
            "§Single Header: an empty field is malformed",
        ),
        (
            format!("{}-{SPAN}-1", "0".repeat(32)),
            None,
            "§TraceId: all-zero trace id is invalid",
        ),
        (
            format!("{T128}-0000000000000000-1"),
            None,
            "§SpanId: all-zero span id is invalid",
        ),
        (
            format!("+{}-{SPAN}-1", &T128[1..]),
            None,
            "§TraceId: hex digits only (a sign is not one)",
        ),
        (
            format!("{T128} -{SPAN}-1"),
            None,
            "§TraceId: no whitespace inside the value",
        ),
        (
            long,
            None,
            "longer than any valid b3 value: rejected before splitting",
        ),
        (
            T128.to_owned(),
            None,
            "§SpanId: required unless only the sampling state is sent",
        ),
    ];
    for (value, expected, why) in rows {
        let (got, dropped) = extract(&headers(&[("b3", &value)]));
        assert_eq!(got, expected, "{value:?}: {why}");
        let lone_state = matches!(value.as_str(), "0" | "1" | "d");
        assert_eq!(
            dropped.is_empty(),
            got.is_some() || lone_state,
            "{value:?}: drops {dropped:?}"
        );
    }
}

#[test]
fn multi_header_table() {
    let rows: Vec<(Pairs<'_>, Found, &str)> = vec![
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "1"),
            ],
            ctx(T128, SPAN, true, false),
            "§Multiple Headers: accept is X-B3-Sampled: 1",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-ParentSpanId", PARENT),
                ("X-B3-Sampled", "0"),
            ],
            ctx(T128, SPAN, false, false),
            "§ParentSpanId: may be present on a child span; deny is 0",
        ),
        (
            vec![("X-B3-TraceId", T128), ("X-B3-SpanId", SPAN)],
            ctx(T128, SPAN, false, false),
            "§Sampling State: absent means defer",
        ),
        (
            vec![
                ("X-B3-TraceId", T64),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "1"),
            ],
            ctx(T64_PADDED, SPAN, true, false),
            "§TraceId: 16 lower-hex characters, left-padded",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Flags", "1"),
            ],
            ctx(T128, SPAN, true, true),
            "§Debug Flag: X-B3-Flags: 1, implies accept",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "0"),
                ("X-B3-Flags", "1"),
            ],
            ctx(T128, SPAN, true, true),
            "§Debug Flag: debug implies an accept decision",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Flags", "0"),
            ],
            ctx(T128, SPAN, false, false),
            "§Debug Flag: only 1 means debug; 0 is tolerated",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "true"),
            ],
            ctx(T128, SPAN, true, false),
            "§Sampling State: a lenient implementation may accept true",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "false"),
            ],
            ctx(T128, SPAN, false, false),
            "§Sampling State: ... and false",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "yes"),
            ],
            None,
            "§Sampling State: any other value is malformed",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "d"),
            ],
            None,
            "§Sampling State: d is single-header only",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Flags", "2"),
            ],
            None,
            "§Debug Flag: no other flags exist",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-ParentSpanId", "xyz"),
            ],
            None,
            "§ParentSpanId: 16 lower-hex characters",
        ),
        (
            vec![("X-B3-TraceId", T128), ("X-B3-Sampled", "1")],
            None,
            "§SpanId: the header is required",
        ),
        (
            vec![("X-B3-SpanId", SPAN), ("X-B3-Sampled", "1")],
            None,
            "§TraceId: the header is required",
        ),
        (
            vec![("X-B3-Sampled", "0")],
            None,
            "§Why send trace IDs with a reject: a lone X-B3-Sampled carries no ids",
        ),
        (
            vec![("X-B3-TraceId", &T128[..31]), ("X-B3-SpanId", SPAN)],
            None,
            "§TraceId: 32 or 16 characters",
        ),
        (
            vec![
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", SPAN),
                ("X-B3-TraceId", T64),
            ],
            ctx(T128, SPAN, false, false),
            "§Multiple Headers: the first value wins",
        ),
        (
            vec![
                ("x-b3-traceid", T128),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
            ctx(T128, SPAN, true, false),
            "§gRPC Encoding: names down-cased",
        ),
    ];
    for (pairs, expected, why) in rows {
        let (got, _) = extract(&headers(&pairs));
        assert_eq!(got, expected, "{pairs:?}: {why}");
    }
}

#[test]
fn single_header_takes_precedence() {
    let other = "1111111111111111";
    let multi = [
        ("X-B3-TraceId", T128),
        ("X-B3-SpanId", other),
        ("X-B3-Sampled", "1"),
    ];
    let single = format!("{T128}-{SPAN}-0");

    let (got, _) = extract(&headers(&[&multi[..], &[("b3", single.as_str())]].concat()));
    assert_eq!(
        got,
        ctx(T128, SPAN, false, false),
        "§Http Encodings: single takes precedence"
    );

    let (got, dropped) = extract(&headers(&[&multi[..], &[("b3", "garbage")]].concat()));
    assert_eq!(
        got,
        ctx(T128, other, true, false),
        "a malformed b3 is absent: multi is read"
    );
    assert_eq!(dropped, [Dropped::new("b3", "", DropReason::Malformed)]);

    let (got, dropped) = extract(&headers(&[&multi[..], &[("b3", "0")]].concat()));
    assert_eq!(
        got,
        ctx(T128, other, true, false),
        "a sampling-only b3 has no ids: multi is read"
    );
    assert!(dropped.is_empty());
}

#[test]
fn drops_name_the_bad_header() {
    let cases = [
        (
            vec![("b3", "x".repeat(69))],
            Dropped::new("b3", "", DropReason::TooLong),
        ),
        (
            vec![
                ("x-b3-traceid", "x".to_owned()),
                ("x-b3-spanid", SPAN.to_owned()),
            ],
            Dropped::new("x-b3-traceid", "", DropReason::Malformed),
        ),
        (
            vec![
                ("x-b3-traceid", T128.to_owned()),
                ("x-b3-spanid", SPAN.to_owned()),
                ("x-b3-flags", "x".to_owned()),
            ],
            Dropped::new("x-b3-flags", "", DropReason::Malformed),
        ),
    ];
    for (pairs, drop) in cases {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, dropped) = extract(&headers(&pairs));
        assert_eq!((got, dropped), (None, vec![drop]));
    }
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

fn inject(encoding: B3Encoding, cx: &Context) -> HeaderMap {
    let mut map = HeaderMap::new();
    B3Propagator::with_encoding(encoding).inject_context(cx, &mut HeaderCarrierMut(&mut map));
    map
}

fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_owned()))
        .collect();
    v.sort();
    v
}

fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn injection_table() {
    let t = "0af7651916cd43dd8448eb211c80319c";
    let s = "b7ad6b7169203331";
    let trace = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c;
    let span = 0xb7ad_6b71_6920_3331;
    let rows: Vec<(B3Encoding, Context, Pairs<'_>, &str)> = vec![
        (
            B3Encoding::Single,
            span_cx(trace, span, true, false),
            vec![("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1")],
            "OTel: single header by default; §Single Header",
        ),
        (
            B3Encoding::Single,
            span_cx(trace, span, false, false),
            vec![("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0")],
            "§Why propagate a reject sampling decision",
        ),
        (
            B3Encoding::Single,
            span_cx(trace, span, true, true),
            vec![("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-d")],
            "OTel: MUST propagate a received debug flag",
        ),
        (
            B3Encoding::Single,
            span_cx(trace, span, false, true),
            vec![("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0")],
            "debug without sampled cannot be sent: debug implies accept",
        ),
        (
            B3Encoding::Multi,
            span_cx(trace, span, true, false),
            vec![
                ("x-b3-sampled", "1"),
                ("x-b3-spanid", s),
                ("x-b3-traceid", t),
            ],
            "§Multiple Headers, never X-B3-ParentSpanId (OTel)",
        ),
        (
            B3Encoding::Multi,
            span_cx(trace, span, true, true),
            vec![("x-b3-flags", "1"), ("x-b3-spanid", s), ("x-b3-traceid", t)],
            "§Debug Flag: don't also send X-B3-Sampled",
        ),
        (
            B3Encoding::Multi,
            span_cx(0x1, 0x2, false, false),
            vec![
                ("x-b3-sampled", "0"),
                ("x-b3-spanid", "0000000000000002"),
                ("x-b3-traceid", "00000000000000000000000000000001"),
            ],
            "§TraceId: always 32 lower-hex on the way out",
        ),
        (
            B3Encoding::SingleAndMulti,
            span_cx(trace, span, true, false),
            vec![
                ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
                ("x-b3-sampled", "1"),
                ("x-b3-spanid", s),
                ("x-b3-traceid", t),
            ],
            "both encodings",
        ),
        (
            B3Encoding::SingleAndMulti,
            Context::new(),
            vec![],
            "nothing for an invalid span context (no invented deny)",
        ),
        (
            B3Encoding::SingleAndMulti,
            span_cx(0, span, true, false),
            vec![],
            "nothing for an all-zero trace id",
        ),
    ];
    for (encoding, cx, expected, why) in rows {
        assert_eq!(
            pairs(&inject(encoding, &cx)),
            owned(&expected),
            "{encoding:?}: {why}"
        );
    }
}

#[test]
fn debug_mark_does_not_leak_to_another_trace() {
    let cx = span_cx(1, 2, true, true);
    let other = SpanContext::new(
        TraceId::from(3),
        SpanId::from(4),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = cx.with_remote_span_context(other);
    assert!(!DebugTrace::is_set(&cx));
}

#[test]
fn fields_follow_the_inject_encoding() {
    let fields = |e| {
        B3Propagator::with_encoding(e)
            .fields()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(B3Encoding::Single), ["b3"]);
    assert_eq!(
        fields(B3Encoding::Multi),
        ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"]
    );
    assert_eq!(fields(B3Encoding::SingleAndMulti).len(), 5);
    assert_eq!(
        B3Propagator::default().encoding(),
        B3Encoding::Single,
        "OTel: MUST default to single"
    );
}

fn encoding() -> impl Strategy<Value = B3Encoding> {
    prop_oneof![
        Just(B3Encoding::Single),
        Just(B3Encoding::Multi),
        Just(B3Encoding::SingleAndMulti)
    ]
}

/// Header values that are near-valid B3 more often than random bytes are.
fn b3ish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fdA-F-]{0,70}",
        "[0-9a-f]{16,32}-[0-9a-f]{16}(-[01d](-[0-9a-f]{16})?)?",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn multi_hop_round_trip(
        trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled: bool, debug: bool,
        encodings in proptest::collection::vec(encoding(), 1..5),
    ) {
        let mut cx = span_cx(trace, span, sampled, debug);
        let want = found(&cx).map(|(t, s, sampled, debug)| (t, s, sampled, debug && sampled));
        for e in encodings {
            let map = inject(e, &cx);
            cx = B3Propagator::new().extract(&HeaderCarrier(&map));
            prop_assert_eq!(found(&cx), want.clone());
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_output_reparses(
        single in proptest::option::of(b3ish()),
        multi in proptest::collection::vec((prop_oneof![
            Just("x-b3-traceid"), Just("x-b3-spanid"), Just("x-b3-parentspanid"),
            Just("x-b3-sampled"), Just("x-b3-flags")], b3ish()), 0..6),
        raw in proptest::collection::vec(any::<u8>(), 0..80),
        e in encoding(),
    ) {
        let mut map = HeaderMap::new();
        for (k, v) in multi {
            if let Ok(v) = http::HeaderValue::from_str(&v) { map.append(k, v); }
        }
        if let Some(Ok(v)) = single.map(|s| http::HeaderValue::from_str(&s)) { map.append("b3", v); }
        if let Ok(v) = http::HeaderValue::from_bytes(&raw) { map.append("b3", v); }
        let cx = B3Propagator::new().extract(&HeaderCarrier(&map));
        let out = inject(e, &cx);
        let again = B3Propagator::new().extract(&HeaderCarrier(&out));
        prop_assert_eq!(found(&again), found(&cx));
        prop_assert_eq!(out.is_empty(), found(&cx).is_none());
    }
}
