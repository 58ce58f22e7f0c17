//! Cross-language conformance: Baton's propagators against the official
//! Python, Node and Go OpenTelemetry SDKs, over real HTTP on loopback.
//!
//! The peers (`integration-tests/peers/`) are installed by `scripts/setup-peers`;
//! a missing runtime fails the test with a message saying so.

mod support;

use std::collections::BTreeMap;

use http::HeaderMap;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::{Context, baggage::Baggage};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use baton_propagators::{HeaderCarrier, HeaderCarrierMut};
use support::peer::{Peer, PeerKind};

/// Collects every failed expectation of a test so one run shows them all
/// (the first failure would otherwise hide the rest), then fails.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    #[allow(
        clippy::needless_pass_by_value,
        reason = "call sites pass temporaries; taking values keeps them readable"
    )]
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    fn that(&mut self, what: &str, ok: bool) {
        if !ok {
            self.0.push(what.to_owned());
        }
    }

    #[track_caller]
    fn finish(self, context: &str) {
        assert!(
            self.0.is_empty(),
            "{} failed check(s):\n  - {}\ncontext: {context}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

/// What a Baton service uses by default: `OTEL_PROPAGATORS`' default list.
fn baton_propagator() -> impl TextMapPropagator {
    baton_propagators::env::parse(baton_propagators::env::DEFAULT).0
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
    upstream.insert(
        "tracestate",
        TRACESTATE.parse().expect("valid header value"),
    );
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

/// A header as text; an empty value counts as absent (an empty tracestate
/// carries nothing, and some implementations still send the line).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// A baggage header's list members, sorted: the API's `Baggage` is a hash
/// map, so member order differs between instances and carries no meaning;
/// each member is still compared byte for byte.
fn members(header: Option<&str>) -> Vec<String> {
    let mut m: Vec<String> = header
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    m.sort();
    m
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
/// properties: it keeps them in the value. Node and Go read W3C baggage as
/// written and report properties separately.
fn expected_at_peer(kind: PeerKind, value: &str, prop: &str) -> String {
    match kind {
        PeerKind::Python if prop.is_empty() => value.replace('+', " "),
        PeerKind::Python => format!("{value};{prop}"),
        PeerKind::Node | PeerKind::Go => value.to_owned(),
    }
}

async fn baton_to_peer(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let out = baton_origin(&propagator, full_baggage());
    let sent = inject(&propagator, &out.cx);
    let seen = peer.call(&sent).await;
    let mut c = Checks::default();

    c.eq(
        "trace id",
        seen.trace_id.as_str(),
        out.trace_id.to_string().as_str(),
    );
    c.eq(
        "parent span id = Baton's span",
        seen.parent_span_id.as_deref(),
        Some(out.span_id.to_string().as_str()),
    );
    c.that(
        "peer made its own span",
        seen.span_id != out.span_id.to_string(),
    );
    c.eq(
        "incoming flags (sampled + random)",
        seen.trace_flags,
        Some(0x03),
    );
    c.eq("tracestate", seen.tracestate.as_str(), TRACESTATE);

    for &(key, value, prop) in BAGGAGE {
        let got = seen.baggage.get(key).map(|v| match kind {
            // Whitespace around `;` is optional in W3C baggage; compare without it.
            PeerKind::Python => v.replace("; ", ";"),
            PeerKind::Node | PeerKind::Go => v.clone(),
        });
        let want = expected_at_peer(kind, value, prop);
        c.eq(
            &format!("baggage {key:?} (sent {value:?}, property {prop:?})"),
            got.as_deref(),
            Some(want.as_str()),
        );
    }
    if matches!(kind, PeerKind::Node | PeerKind::Go) {
        // @opentelemetry/core 2.12 and Go's otel 1.47 keep baggage
        // properties as entry metadata.
        c.eq(
            "baggage metadata of \"prop\"",
            seen.baggage_metadata.get("prop").map(|m| m.trim()),
            Some("p=1"),
        );
    }
    c.eq(
        "number of baggage entries",
        seen.baggage.len(),
        BAGGAGE.len(),
    );
    c.finish(&format!(
        "sent {sent:?}; {} peer reported {}",
        kind.name(),
        seen.raw
    ));
}

async fn peer_to_baton(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let mut c = Checks::default();

    // A trace the peer starts itself: its own flags, untouched by anything we sent.
    let root = peer.call(&HeaderMap::new()).await;
    let root_tp = root
        .injected("traceparent")
        .expect("peer injected traceparent");
    if kind == PeerKind::Python {
        // Python 1.45 marks the trace ids it generates as random.
        c.eq("Python root flags", flags_of(root_tp), 0x03);
    }
    let cx = propagator.extract(&HeaderCarrier(&root.injected));
    let sc = cx.span().span_context().clone();
    c.eq(
        "root: trace id",
        sc.trace_id().to_string(),
        root.trace_id.clone(),
    );
    c.eq(
        "root: span id = peer's span",
        sc.span_id().to_string(),
        root.span_id.clone(),
    );
    c.eq(
        "root: flags kept",
        sc.trace_flags().to_u8(),
        flags_of(root_tp),
    );
    let again = inject(&propagator, &cx);
    c.eq(
        "root: traceparent round-trips",
        header(&again, "traceparent"),
        Some(root_tp),
    );

    // A trace continued from Baton, with tracestate and baggage.
    let out = baton_origin(&propagator, full_baggage());
    let seen = peer.call(&inject(&propagator, &out.cx)).await;
    let cx = propagator.extract(&HeaderCarrier(&seen.injected));
    let sc = cx.span().span_context().clone();
    c.that(
        "extracted context is valid and remote",
        sc.is_valid() && sc.is_remote(),
    );
    c.eq("trace id", sc.trace_id().to_string(), seen.trace_id.clone());
    c.eq(
        "span id = peer's server span",
        sc.span_id().to_string(),
        seen.span_id.clone(),
    );
    let peer_tp = seen
        .injected("traceparent")
        .expect("peer injected traceparent");
    c.eq(
        "peer injects its span's flags",
        flags_of(peer_tp),
        seen.span_trace_flags,
    );
    c.eq("flags kept", sc.trace_flags().to_u8(), flags_of(peer_tp));

    // Black-box check of what Baton holds: re-inject and compare headers.
    let again = inject(&propagator, &cx);
    c.eq(
        "traceparent round-trips",
        header(&again, "traceparent"),
        Some(peer_tp),
    );
    c.eq(
        "tracestate round-trips",
        header(&again, "tracestate"),
        seen.injected("tracestate"),
    );
    // Also checked by baton_to_*; without it the round trip above is vacuous.
    c.eq(
        "peer forwarded the tracestate",
        seen.injected("tracestate"),
        Some(TRACESTATE),
    );

    let expected: BTreeMap<String, String> = seen
        .baggage
        .iter()
        .map(|(k, v)| {
            let v = match kind {
                // Python encodes with quote_plus (space as `+`), which W3C
                // decoders, Baton included, read as a literal `+`.
                PeerKind::Python => v.replace(' ', "+"),
                PeerKind::Node | PeerKind::Go => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    c.eq("baggage values", baggage_values(&cx), expected);
    c.eq(
        "every baggage entry made the round trip",
        cx.baggage().len(),
        BAGGAGE.len(),
    );
    if matches!(kind, PeerKind::Node | PeerKind::Go) {
        let meta = cx
            .baggage()
            .get_with_metadata("prop")
            .map(|(_, m)| m.as_str().trim());
        c.eq("baggage property from the peer", meta, Some("p=1"));
    }
    c.finish(&format!(
        "{} peer root {}; continued {}",
        kind.name(),
        root.raw,
        seen.raw
    ));
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

#[tokio::test]
async fn baton_to_go() {
    baton_to_peer(PeerKind::Go).await;
}

#[tokio::test]
async fn go_to_baton() {
    peer_to_baton(PeerKind::Go).await;
}

/// Baton → Python → Baton → Node → Baton → Go → Baton, each hop fed the
/// headers the previous one injected; Baton sends each peer's flags on.
#[tokio::test]
async fn multi_hop_across_python_node_and_go() {
    let propagator = baton_propagator();
    let peers = [
        Peer::start(PeerKind::Python),
        Peer::start(PeerKind::Node),
        Peer::start(PeerKind::Go),
    ];
    let expected_baggage = portable_expected();
    let mut c = Checks::default();
    let mut trail = Vec::new();

    // Hop 0: Baton originates.
    let origin = baton_origin(&propagator, portable_baggage());
    let trace_id = origin.trace_id.to_string();
    let h0 = inject(&propagator, &origin.cx);
    let (mut headers, mut parent, mut flags) = (h0.clone(), origin.span_id.to_string(), 0x03);

    for peer in &peers {
        let name = peer.kind().name();
        let seen = peer.call(&headers).await;
        c.eq(&format!("{name}: trace id"), &seen.trace_id, &trace_id);
        c.eq(
            &format!("{name}: parent = Baton's span"),
            seen.parent_span_id.as_deref(),
            Some(parent.as_str()),
        );
        c.eq(
            &format!("{name}: incoming flags"),
            seen.trace_flags,
            Some(flags),
        );
        c.eq(
            &format!("{name}: tracestate"),
            seen.tracestate.as_str(),
            TRACESTATE,
        );
        c.eq(
            &format!("{name}: baggage"),
            &seen.baggage,
            &expected_baggage,
        );

        // Baton receives from the peer and calls the next one.
        let cx = propagator.extract(&HeaderCarrier(&seen.injected));
        let sc = cx.span().span_context().clone();
        c.eq(
            &format!("baton after {name}: trace id"),
            sc.trace_id().to_string(),
            trace_id.clone(),
        );
        c.eq(
            &format!("baton after {name}: parent = {name}'s span"),
            sc.span_id().to_string(),
            seen.span_id.clone(),
        );
        c.that(
            &format!("baton after {name}: still sampled"),
            sc.is_sampled(),
        );
        c.eq(
            &format!("baton after {name}: baggage"),
            &baggage_values(&cx),
            &expected_baggage,
        );
        flags = flags_of(
            seen.injected("traceparent")
                .unwrap_or_else(|| panic!("{name} injected no traceparent")),
        );
        let hop = baton_hop(&propagator, &seen.injected, flags);
        headers = inject(&propagator, &hop.cx);
        // Baton's own encoding is stable across hops, whatever the peer
        // re-encoded.
        c.eq(
            &format!("baton after {name}: baggage members vs hop 0"),
            members(header(&headers, "baggage")),
            members(header(&h0, "baggage")),
        );
        c.eq(
            &format!("baton after {name}: tracestate"),
            header(&headers, "tracestate"),
            Some(TRACESTATE),
        );
        parent = hop.span_id.to_string();
        trail.push(format!("{name} {}; baton {headers:?}", seen.raw));
    }

    c.finish(&format!("hop0 {h0:?}; {}", trail.join("; ")));
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
        ("31-digit trace id", format!("00-{}-{s}-01", &t[..31])),
        ("15-digit span id", format!("00-{t}-{}-01", &s[..15])),
        ("non-hex flags", format!("00-{t}-{s}-0g")),
        (
            "version 00 with extra field",
            format!("00-{t}-{s}-01-extra"),
        ),
        ("missing flags", format!("00-{t}-{s}")),
        (
            "over-long, version 00",
            format!("00-{t}-{s}-01-{}", "a".repeat(600)),
        ),
    ]
}

async fn malformed(kind: PeerKind) {
    let propagator = baton_propagator();
    let peer = Peer::start(kind);
    let bad_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut c = Checks::default();
    let mut context = Vec::new();

    for (what, traceparent) in malformed_traceparents() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            traceparent.parse().expect("printable ASCII header value"),
        );
        headers.insert(
            "tracestate",
            "rojo=00f067aa0ba902b7".parse().expect("valid"),
        );
        let seen = peer.call(&headers).await;
        c.eq(
            &format!("{what}: peer has no parent"),
            seen.parent_span_id.as_deref(),
            None,
        );
        c.that(
            &format!("{what}: peer started a fresh trace, got {}", seen.trace_id),
            seen.trace_id != bad_trace && seen.trace_id.len() == 32,
        );

        let cx = propagator.extract(&HeaderCarrier(&headers));
        let sc = cx.span().span_context().clone();
        c.that(
            &format!(
                "{what}: Baton starts a fresh trace, but extracted {sc:?} from {traceparent:?}"
            ),
            !sc.is_valid(),
        );
        context.push(seen.raw);
    }

    // Over-long companions of a valid traceparent: nobody panics, limits hold.
    let traceparent = format!("00-{bad_trace}-00f067aa0ba902b7-01");
    let long_baggage = (0..200)
        .map(|i| format!("key{i}={}", "v".repeat(40)))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        long_baggage.len() > 8192,
        "baggage over the W3C 8192-byte limit"
    );
    let long_tracestate = (0..40)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", traceparent.parse().expect("valid"));
    headers.insert("baggage", long_baggage.parse().expect("valid"));
    headers.insert("tracestate", long_tracestate.parse().expect("valid"));
    let seen = peer.call(&headers).await;
    c.eq(
        "over-long: peer honours the valid traceparent",
        seen.trace_id.as_str(),
        bad_trace,
    );
    let peer_bag = seen.injected("baggage").map_or(0, str::len);
    c.that(
        &format!("over-long: peer injects {peer_bag} > 8192 bytes of baggage"),
        peer_bag <= 8192,
    );

    let cx = propagator.extract(&HeaderCarrier(&headers));
    c.eq(
        "over-long: Baton honours the valid traceparent",
        cx.span().span_context().trace_id().to_string().as_str(),
        bad_trace,
    );
    let again = inject(&propagator, &cx);
    let bag = header(&again, "baggage").map_or(0, str::len);
    c.that(
        &format!("over-long: Baton injects {bag} > 8192 bytes of baggage"),
        bag <= 8192,
    );
    let members = header(&again, "tracestate").map_or(0, |ts| ts.split(',').count());
    c.that(
        &format!("over-long: Baton injects {members} > 32 tracestate members"),
        members <= 32,
    );
    context.push(seen.raw);

    c.finish(&format!("{} peer reports: {context:?}", kind.name()));
}

#[tokio::test]
async fn malformed_input_python() {
    malformed(PeerKind::Python).await;
}

#[tokio::test]
async fn malformed_input_node() {
    malformed(PeerKind::Node).await;
}

#[tokio::test]
async fn malformed_input_go() {
    malformed(PeerKind::Go).await;
}

/// Members only the current tracestate key grammar accepts: 15 characters
/// after the `@` (the older `tenant@system` grammar allows 14) and two `@`s.
const CURRENT_GRAMMAR_MEMBERS: &str = "t@vvvvvvvvvvvvvvv=2,a@b@c=3";

/// Python → Baton → Python with tracestate keys only the current grammar
/// accepts, beside the old-grammar members of [`TRACESTATE`].
///
/// - Python (SDK 1.45): its `TraceState` applies the older grammar, so its
///   propagator cannot carry these keys; the peer's own code writes them
///   into the outbound `tracestate` in front of what the SDK injected
///   (`x-peer-raw-tracestate`, see `peers/python/peer.py`).
/// - Baton's propagator extracts the whole header and, on its next outbound
///   hop from a span of its own, injects it byte for byte.
/// - Python again, receiving that hop: the header arrives unchanged, and its
///   SDK discards the whole tracestate because of the two keys (Node's
///   drops just them, Go's also the whole header).
#[tokio::test]
async fn python_sends_current_grammar_keys_baton_forwards_them() {
    let propagator = baton_propagator();
    let peer = Peer::start(PeerKind::Python);
    let mut c = Checks::default();
    let with_new_keys = format!("{CURRENT_GRAMMAR_MEMBERS},{TRACESTATE}");

    // Hop 1: Baton → Python; Python's outbound carries the hand-written keys.
    let origin = baton_origin(&propagator, Baggage::new());
    let mut to_python = inject(&propagator, &origin.cx);
    to_python.insert(
        "x-peer-raw-tracestate",
        CURRENT_GRAMMAR_MEMBERS.parse().expect("valid header value"),
    );
    let sent = peer.call(&to_python).await;
    c.eq(
        "Python's SDK read the old-grammar tracestate",
        sent.tracestate.as_str(),
        TRACESTATE,
    );
    c.eq(
        "Python sends the current-grammar keys beside the SDK's members",
        sent.injected("tracestate"),
        Some(with_new_keys.as_str()),
    );

    // Hop 2: Baton receives Python's headers and calls out from its own span.
    let flags = flags_of(
        sent.injected("traceparent")
            .expect("Python injected traceparent"),
    );
    let hop = baton_hop(&propagator, &sent.injected, flags);
    let from_baton = inject(&propagator, &hop.cx);
    c.eq(
        "Baton forwards the tracestate byte-identically",
        header(&from_baton, "tracestate"),
        Some(with_new_keys.as_str()),
    );

    // Hop 3: what arrives at Python, and what its SDK makes of it.
    let back = peer.call(&from_baton).await;
    c.eq(
        "Python received Baton's tracestate unchanged",
        back.raw["received"]["tracestate"].as_str(),
        Some(with_new_keys.as_str()),
    );
    c.eq("Python continues the trace", &back.trace_id, &sent.trace_id);
    c.eq(
        "Python's SDK discards a tracestate with current-grammar keys",
        back.tracestate.as_str(),
        "",
    );
    c.eq(
        "so Python's SDK would not have forwarded them",
        back.injected("tracestate").filter(|v| !v.is_empty()),
        None,
    );
    c.finish(&format!(
        "Python sent {}; Baton sent {from_baton:?}; Python then reported {}",
        sent.raw, back.raw
    ));
}
