//! Cross-language conformance: Baton's propagators against the official
//! Python and Node OpenTelemetry SDKs, over real HTTP on loopback.
//!
//! The peers (`integration-tests/peers/`) are installed by `scripts/setup-peers`;
//! a missing runtime fails the test with a message saying so.

mod support;

use std::collections::BTreeMap;

use http::HeaderMap;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::{Context, baggage::Baggage};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use baton_propagators::{HeaderCarrier, HeaderCarrierMut};
use support::peer::{Peer, PeerKind, PeerView};

// switch to baton_propagators once merged
fn baton_propagator() -> impl TextMapPropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// A key whose vendor part has the 14 characters Trace Context allows.
const TRACESTATE: &str = "tenant@abcdefghijklmn=v,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// Baggage Baton sends: (key, value, property).
const BAGGAGE: &[(&str, &str, &str)] = &[
    ("sp", "hello world", ""),
    ("pct", "100%", ""),
    // Literal text that looks like an escape: must not be decoded by the peer.
    ("lit", "a%20b", ""),
    ("cm", "a,b", ""),
    ("uni", "café ✓", ""),
    ("eq", "k=v", ""),
    ("plus", "1+1", ""),
    ("prop", "pv", "p=1"),
];

/// Values on which every SDK here agrees byte for byte (no space, no `+`,
/// no property): used where a value crosses several SDKs.
const PORTABLE_BAGGAGE: &[(&str, &str)] = &[
    ("pct", "100%"),
    ("lit", "a%20b"),
    ("cm", "a,b"),
    ("uni", "café✓"),
    ("eq", "k=v"),
    ("tok", "abc-123_x.y~z"),
];

struct Outgoing {
    cx: Context,
    trace_id: TraceId,
    span_id: SpanId,
}

/// Baton as a service in the middle of a trace: it received `upstream`
/// headers and calls out from its own span (fresh span id, same trace,
/// flags `03`, the received tracestate).
///
/// The tracestate is obtained through the propagator because
/// `opentelemetry::trace::TraceState` itself rejects a 14-char vendor part;
/// deriving from the extracted context keeps whatever the propagator stored.
fn baton_hop(propagator: &impl TextMapPropagator, upstream: &HeaderMap, flags: u8) -> Outgoing {
    let cx_in = propagator.extract(&HeaderCarrier(upstream));
    let parent = cx_in.span().span_context().clone();
    assert!(
        parent.is_valid(),
        "Baton could not extract the incoming context from {upstream:?}"
    );
    let span_id = RandomIdGenerator::default().new_span_id();
    let sc = SpanContext::new(
        parent.trace_id(),
        span_id,
        TraceFlags::new(flags),
        false,
        parent.trace_state().clone(),
    );
    Outgoing {
        cx: cx_in.with_remote_span_context(sc),
        trace_id: parent.trace_id(),
        span_id,
    }
}

/// The first Baton hop: a context with flags `03`, [`TRACESTATE`] and `baggage`.
fn baton_origin(propagator: &impl TextMapPropagator, baggage: Baggage) -> Outgoing {
    let ids = RandomIdGenerator::default();
    let mut upstream = HeaderMap::new();
    upstream.insert(
        "traceparent",
        format!("00-{}-{}-03", ids.new_trace_id(), ids.new_span_id())
            .parse()
            .expect("traceparent is a valid header value"),
    );
    upstream.insert("tracestate", TRACESTATE.parse().expect("valid header value"));
    let out = baton_hop(propagator, &upstream, 0x03);
    Outgoing {
        cx: out.cx.with_baggage(baggage),
        ..out
    }
}

fn full_baggage() -> Baggage {
    let mut bag = Baggage::new();
    for &(k, v, prop) in BAGGAGE {
        bag.insert_with_metadata(k, v, prop);
    }
    assert_eq!(bag.len(), BAGGAGE.len(), "every baggage entry was accepted");
    bag
}

fn portable_baggage() -> Baggage {
    let mut bag = Baggage::new();
    for &(k, v) in PORTABLE_BAGGAGE {
        bag.insert(k, v);
    }
    bag
}

fn inject(propagator: &impl TextMapPropagator, cx: &Context) -> HeaderMap {
    let mut headers = HeaderMap::new();
    propagator.inject_context(cx, &mut HeaderCarrierMut(&mut headers));
    headers
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn baggage_values(cx: &Context) -> BTreeMap<String, String> {
    cx.baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect()
}

fn portable_expected() -> BTreeMap<String, String> {
    PORTABLE_BAGGAGE
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The traceparent flags field of a header, as a byte.
fn flags_of(traceparent: &str) -> u8 {
    let field = traceparent.rsplit('-').next().unwrap_or_default();
    u8::from_str_radix(field, 16).unwrap_or_else(|_| panic!("bad flags in {traceparent:?}"))
}

/// The value the peer's SDK reports for one baggage entry Baton sent.
///
/// Python decodes with `unquote_plus` (a `+` reads as a space) and has no
/// properties: it keeps them in the value. Node reads W3C baggage as written
/// and reports properties separately.
fn expected_at_peer(kind: PeerKind, value: &str, prop: &str) -> String {
    match kind {
        PeerKind::Python if prop.is_empty() => value.replace('+', " "),
        PeerKind::Python => format!("{value};{prop}"),
        PeerKind::Node => value.to_owned(),
    }
}

async fn baton_to_peer(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let out = baton_origin(&propagator, full_baggage());
    let sent = inject(&propagator, &out.cx);
    let seen = peer.call(&sent).await;
    let ctx = format!("sent {sent:?}; {} peer reported {}", kind.name(), seen.raw);

    assert_eq!(seen.trace_id, out.trace_id.to_string(), "trace id; {ctx}");
    assert_eq!(
        seen.parent_span_id.as_deref(),
        Some(out.span_id.to_string().as_str()),
        "parent span id; {ctx}"
    );
    assert_ne!(seen.span_id, out.span_id.to_string(), "peer made its own span; {ctx}");
    assert_eq!(seen.trace_flags, Some(0x03), "incoming flags (sampled + random); {ctx}");
    assert_eq!(seen.tracestate, TRACESTATE, "tracestate; {ctx}");

    for &(key, value, prop) in BAGGAGE {
        let got = seen.baggage.get(key).map(|v| match kind {
            // Whitespace around `;` is optional in W3C baggage; compare without it.
            PeerKind::Python => v.replace("; ", ";"),
            PeerKind::Node => v.clone(),
        });
        assert_eq!(
            got,
            Some(expected_at_peer(kind, value, prop)),
            "baggage {key:?} ({value:?}, property {prop:?}); {ctx}"
        );
    }
    if kind == PeerKind::Node {
        // @opentelemetry/core 2.12 keeps baggage properties as entry metadata.
        assert_eq!(
            seen.baggage_metadata.get("prop").map(|m| m.trim()),
            Some("p=1"),
            "Node baggage metadata; {ctx}"
        );
    }
    assert_eq!(seen.baggage.len(), BAGGAGE.len(), "no extra baggage; {ctx}");
}

async fn peer_to_baton(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let out = baton_origin(&propagator, full_baggage());
    let seen = peer.call(&inject(&propagator, &out.cx)).await;
    let ctx = format!("{} peer reported {}", kind.name(), seen.raw);

    let cx = propagator.extract(&HeaderCarrier(&seen.injected));
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid(), "Baton extracted a valid context; {ctx}");
    assert!(sc.is_remote(), "extracted context is remote; {ctx}");
    assert_eq!(sc.trace_id().to_string(), seen.trace_id, "trace id; {ctx}");
    assert_eq!(sc.span_id().to_string(), seen.span_id, "parent = peer's server span; {ctx}");

    let peer_traceparent = seen.injected("traceparent").expect("peer injected traceparent");
    let peer_flags = flags_of(peer_traceparent);
    assert_eq!(peer_flags, seen.span_trace_flags, "peer injects its span's flags; {ctx}");
    if kind == PeerKind::Python {
        // Python 1.45 marks its trace ids random and keeps the bit on children.
        assert_eq!(peer_flags, 0x03, "Python sends flags 03; {ctx}");
    }
    assert_eq!(
        sc.trace_flags().to_u8(),
        peer_flags,
        "Baton keeps every flag bit the peer sent; {ctx}"
    );

    // Black-box check of what Baton holds: re-inject and compare headers.
    let again = inject(&propagator, &cx);
    assert_eq!(
        header(&again, "traceparent"),
        Some(peer_traceparent),
        "traceparent round-trips through Baton; {ctx}"
    );
    assert_eq!(
        header(&again, "tracestate"),
        seen.injected("tracestate"),
        "tracestate round-trips through Baton; {ctx}"
    );

    let got = baggage_values(&cx);
    let expected: BTreeMap<String, String> = seen
        .baggage
        .iter()
        .map(|(k, v)| {
            let v = match kind {
                // Python encodes with quote_plus (space as `+`), which W3C
                // decoders, Baton included, read as a literal `+`.
                PeerKind::Python => v.replace(' ', "+"),
                PeerKind::Node => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    assert_eq!(got, expected, "baggage values; {ctx}");
    if kind == PeerKind::Node {
        let (_, meta) = cx
            .baggage()
            .get_with_metadata("prop")
            .expect("prop survived");
        assert_eq!(meta.as_str().trim(), "p=1", "baggage property from Node; {ctx}");
    }
}

#[tokio::test]
async fn baton_to_python() {
    baton_to_peer(PeerKind::Python).await;
}

#[tokio::test]
async fn baton_to_node() {
    baton_to_peer(PeerKind::Node).await;
}

#[tokio::test]
async fn python_to_baton() {
    peer_to_baton(PeerKind::Python).await;
}

#[tokio::test]
async fn node_to_baton() {
    peer_to_baton(PeerKind::Node).await;
}

/// Baton → Python → Baton → Node → Baton, each hop fed the headers the
/// previous one injected.
#[tokio::test]
async fn multi_hop_baton_python_baton_node_baton() {
    let propagator = baton_propagator();
    let (python, node) = (Peer::start(PeerKind::Python), Peer::start(PeerKind::Node));
    let expected_baggage = portable_expected();

    // Hop 0: Baton originates.
    let hop0 = baton_origin(&propagator, portable_baggage());
    let trace_id = hop0.trace_id.to_string();
    let h0 = inject(&propagator, &hop0.cx);

    // Hop 1: Python.
    let py = python.call(&h0).await;
    let ctx = format!("hop0 headers {h0:?}; python {}", py.raw);
    assert_eq!(py.trace_id, trace_id, "trace id at Python; {ctx}");
    assert_eq!(py.parent_span_id, Some(hop0.span_id.to_string()), "{ctx}");
    assert_eq!(py.trace_flags, Some(0x03), "flags at Python; {ctx}");
    assert_eq!(py.tracestate, TRACESTATE, "tracestate at Python; {ctx}");
    assert_eq!(py.baggage, expected_baggage, "baggage at Python; {ctx}");

    // Hop 2: Baton receives from Python and calls Node.
    let cx2 = propagator.extract(&HeaderCarrier(&py.injected));
    assert_eq!(cx2.span().span_context().span_id().to_string(), py.span_id, "{ctx}");
    assert_eq!(baggage_values(&cx2), expected_baggage, "baggage at Baton after Python; {ctx}");
    let py_flags = flags_of(py.injected("traceparent").expect("python injected traceparent"));
    let hop2 = baton_hop(&propagator, &py.injected, py_flags);
    assert_eq!(hop2.trace_id.to_string(), trace_id, "trace id at Baton hop 2; {ctx}");
    let h2 = inject(&propagator, &hop2.cx);
    // Baton's own encoding is stable across hops, even after Python re-encoded it.
    assert_eq!(
        header(&h2, "baggage"),
        header(&h0, "baggage"),
        "Baton's baggage header is identical at hops 0 and 2; {ctx}"
    );
    assert_eq!(header(&h2, "tracestate"), Some(TRACESTATE), "{ctx}");

    // Hop 3: Node.
    let nd = node.call(&h2).await;
    let ctx = format!("{ctx}; hop2 headers {h2:?}; node {}", nd.raw);
    assert_eq!(nd.trace_id, trace_id, "trace id at Node; {ctx}");
    assert_eq!(nd.parent_span_id, Some(hop2.span_id.to_string()), "{ctx}");
    assert_eq!(nd.trace_flags, Some(py_flags), "flags Python sent reach Node; {ctx}");
    assert_eq!(nd.tracestate, TRACESTATE, "tracestate at Node; {ctx}");
    assert_eq!(nd.baggage, expected_baggage, "baggage at Node; {ctx}");

    // Hop 4: Baton receives from Node.
    let cx4 = propagator.extract(&HeaderCarrier(&nd.injected));
    let sc4 = cx4.span().span_context().clone();
    assert_eq!(sc4.trace_id().to_string(), trace_id, "trace id at Baton hop 4; {ctx}");
    assert_eq!(sc4.span_id().to_string(), nd.span_id, "{ctx}");
    assert!(sc4.is_sampled(), "sampled survives every hop; {ctx}");
    assert_eq!(baggage_values(&cx4), expected_baggage, "baggage at Baton after Node; {ctx}");
    let h4 = inject(&propagator, &cx4);
    assert_eq!(header(&h4, "tracestate"), Some(TRACESTATE), "{ctx}");
    assert_eq!(
        header(&h4, "baggage"),
        header(&h0, "baggage"),
        "Baton's baggage header is identical at hops 0 and 4; {ctx}"
    );
}

/// Traceparent values every implementation must reject.
fn malformed_traceparents() -> Vec<(&'static str, String)> {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    vec![
        ("garbage", "not-a-traceparent".to_owned()),
        ("version ff", format!("ff-{t}-{s}-01")),
        ("zero trace id", format!("00-{}-{s}-01", "0".repeat(32))),
        ("zero span id", format!("00-{t}-{}-01", "0".repeat(16))),
        ("uppercase hex", format!("00-{}-{s}-01", t.to_uppercase())),
        ("short trace id", format!("00-{}-{s}-01", &t[..31])),
        ("non-hex flags", format!("00-{t}-{s}-0g")),
        ("version 00 with extra field", format!("00-{t}-{s}-01-extra")),
        ("missing flags", format!("00-{t}-{s}")),
        ("over-long, version 00", format!("00-{t}-{s}-01-{}", "a".repeat(600))),
    ]
}

async fn malformed(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let bad_trace = "4bf92f3577b34da6a3ce929d0e0e4736";

    for (what, traceparent) in malformed_traceparents() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            traceparent.parse().expect("printable ASCII header value"),
        );
        headers.insert("tracestate", "rojo=00f067aa0ba902b7".parse().expect("valid"));
        let seen = peer.call(&headers).await;
        let ctx = format!("{what}: {traceparent:?}; {} peer reported {}", kind.name(), seen.raw);
        assert_eq!(seen.parent_span_id, None, "peer started a fresh trace; {ctx}");
        assert_ne!(seen.trace_id, bad_trace, "peer did not reuse the trace id; {ctx}");
        assert_eq!(seen.trace_id.len(), 32, "peer has a real trace id; {ctx}");

        let cx = propagator.extract(&HeaderCarrier(&headers));
        assert!(
            !cx.span().span_context().is_valid(),
            "Baton starts a fresh trace; {ctx}; Baton extracted {:?}",
            cx.span().span_context()
        );
    }

    // Over-long companions of a valid traceparent: nobody panics, limits hold.
    let traceparent = format!("00-{bad_trace}-00f067aa0ba902b7-01");
    let long_baggage = (0..200)
        .map(|i| format!("key{i}={}", "v".repeat(40)))
        .collect::<Vec<_>>()
        .join(",");
    assert!(long_baggage.len() > 8192, "baggage over the W3C 8192-byte limit");
    let long_tracestate = (0..40)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", traceparent.parse().expect("valid"));
    headers.insert("baggage", long_baggage.parse().expect("valid"));
    headers.insert("tracestate", long_tracestate.parse().expect("valid"));
    let seen = peer.call(&headers).await;
    let ctx = format!("over-long baggage/tracestate; {} peer reported {}", kind.name(), seen.raw);
    assert_eq!(seen.trace_id, bad_trace, "valid traceparent still honoured; {ctx}");
    if let Some(b) = seen.injected("baggage") {
        assert!(b.len() <= 8192, "peer injects at most 8192 bytes; {ctx}");
    }

    let cx = propagator.extract(&HeaderCarrier(&headers));
    assert_eq!(
        cx.span().span_context().trace_id().to_string(),
        bad_trace,
        "Baton honours the valid traceparent; {ctx}"
    );
    let again = inject(&propagator, &cx);
    if let Some(b) = header(&again, "baggage") {
        assert!(b.len() <= 8192, "Baton injects at most 8192 bytes of baggage: {b}");
    }
    if let Some(ts) = header(&again, "tracestate") {
        assert!(
            ts.split(',').count() <= 32,
            "Baton injects at most 32 tracestate members: {ts}"
        );
    }
}

#[tokio::test]
async fn malformed_input_python() {
    malformed(PeerKind::Python).await;
}

#[tokio::test]
async fn malformed_input_node() {
    malformed(PeerKind::Node).await;
}
