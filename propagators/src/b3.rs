//! B3 propagation (openzipkin/b3-propagation): the single `b3` header and the
//! multiple `X-B3-*` headers.
//!
//! Written here rather than taken from `opentelemetry-zipkin` because that
//! propagator defaults to multi-header injection (the OpenTelemetry spec says
//! single), keeps B3's debug and deferred states in `TraceFlags` bits 0x04 and
//! 0x02 (0x02 is W3C Level 2's `random` flag, so a deferred B3 trace would leave
//! through `traceparent` claiming random ids), maps `b3: …-d` to debug without
//! sampled, accepts `d`/`true` only depending on the *inject* encoding, ignores a
//! malformed `X-B3-ParentSpanId`, and injects `b3: 0` for a context that has no
//! span at all (a deny the caller never decided).

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use crate::report::{DropReason, Dropped, Propagator, text_map_propagator};

const SINGLE: &str = "b3";
// Lowercase: the spec asks for lowercase keys on case-sensitive transports
// (gRPC metadata), and HTTP header names are case-insensitive anyway.
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";

/// `{TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}` at its longest: anything
/// longer is rejected before it is split.
const SINGLE_MAX_LEN: usize = 32 + 1 + 16 + 1 + 1 + 1 + 16;

static SINGLE_FIELDS: LazyLock<[String; 1]> = LazyLock::new(|| [SINGLE.to_owned()]);
static MULTI_FIELDS: LazyLock<[String; 4]> =
    LazyLock::new(|| [TRACE_ID, SPAN_ID, SAMPLED, FLAGS].map(str::to_owned));
static BOTH_FIELDS: LazyLock<[String; 5]> =
    LazyLock::new(|| [SINGLE, TRACE_ID, SPAN_ID, SAMPLED, FLAGS].map(str::to_owned));

/// Which B3 headers [`B3Propagator`] injects. Extraction always reads both,
/// the single header first (OpenTelemetry spec, "B3 Extract").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Encoding {
    /// The single `b3` header, the OpenTelemetry default ("B3 Inject").
    #[default]
    Single,
    /// The `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled`/`X-B3-Flags` headers.
    Multi,
    /// Both, for peers of either kind.
    SingleAndMulti,
}

/// The B3 propagator.
///
/// Extraction prefers `b3` over `X-B3-*`; a malformed header is treated as
/// absent (and reported). A `b3` carrying only a sampling state (`b3: 0`) has
/// no trace context, and an OpenTelemetry `SpanContext` cannot hold a sampling
/// decision without ids, so it is ignored and the multi headers are read
/// instead, as OpenTelemetry Go and Java do. Deferred sampling (no sampling
/// state) becomes not-sampled, because a remote parent is either sampled or
/// not. Debug (`d`, `X-B3-Flags: 1`) becomes sampled plus a [`DebugTrace`]
/// mark, so it leaves again as debug. `X-B3-ParentSpanId` is validated but
/// never injected (OpenTelemetry spec, "B3 Inject").
///
/// ```
/// use baton_propagators::{B3Encoding, B3Propagator, HeaderCarrier, HeaderCarrierMut};
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
/// let cx = B3Propagator::new().extract(&HeaderCarrier(&headers));
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = http::HeaderMap::new();
/// B3Propagator::with_encoding(B3Encoding::Multi).inject_context(&cx, &mut HeaderCarrierMut(&mut out));
/// assert_eq!(out["x-b3-spanid"], "e457b5a2e4d86bd1");
/// assert_eq!(out["x-b3-sampled"], "1");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// A propagator that injects the single `b3` header.
    pub fn new() -> Self {
        Self::default()
    }

    /// A propagator that injects `encoding`.
    pub fn with_encoding(encoding: B3Encoding) -> Self {
        B3Propagator { encoding }
    }

    /// The encoding this propagator injects.
    pub fn encoding(&self) -> B3Encoding {
        self.encoding
    }
}

/// Marks a trace as "debug" (B3 `d` / `X-B3-Flags: 1`, Jaeger flag `0x02`).
///
/// OpenTelemetry has no debug bit (W3C `trace-flags` 0x02 means `random`), so
/// the B3 and Jaeger propagators keep it as this context value, tied to the
/// trace id it arrived with: it survives child spans of the same trace (the
/// OpenTelemetry spec requires propagating it with subsequent requests) but
/// never leaks onto another trace that a later propagator put in the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugTrace(Option<TraceId>);

impl DebugTrace {
    /// Whether `cx`'s span is sampled and its trace is marked debug.
    pub fn is_set(cx: &Context) -> bool {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_sampled() && cx.get::<DebugTrace>().and_then(|d| d.0) == Some(sc.trace_id())
    }

    /// `cx` with its current trace marked debug (only sampled spans carry it out).
    pub fn mark(cx: &Context) -> Context {
        let trace_id = cx.span().span_context().trace_id();
        cx.with_value(DebugTrace(Some(trace_id)))
    }
}

/// `cx` with the remote span `sc`, marked debug or explicitly not, so that a
/// mark left by an earlier propagator for the same trace does not survive.
pub(crate) fn with_remote(cx: &Context, sc: SpanContext, debug: bool) -> Context {
    let mark = DebugTrace(debug.then_some(sc.trace_id()));
    cx.with_remote_span_context(sc).with_value(mark)
}

/// Sampling states (b3-propagation README, "Sampling State").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampling {
    Defer,
    Deny,
    Accept,
    Debug,
}

impl Sampling {
    /// Single-header encoding: `0`, `1` or `d` ("Single Header" / "Sampling State").
    fn from_single(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Sampling::Deny),
            "1" => Some(Sampling::Accept),
            "d" => Some(Sampling::Debug),
            _ => None,
        }
    }

    /// `X-B3-Sampled`: `0`/`1`, and the legacy `false`/`true` the README
    /// allows a lenient implementation to accept ("Multiple Headers").
    fn from_multi(s: &str) -> Option<Self> {
        match s {
            "0" | "false" => Some(Sampling::Deny),
            "1" | "true" => Some(Sampling::Accept),
            _ => None,
        }
    }
}

/// A remote span context plus its debug mark.
type Remote = (SpanContext, bool);

fn remote(trace_id: TraceId, span_id: SpanId, sampling: Sampling) -> Remote {
    let flags = match sampling {
        Sampling::Accept | Sampling::Debug => TraceFlags::SAMPLED,
        Sampling::Deny | Sampling::Defer => TraceFlags::default(),
    };
    let sc = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    (sc, sampling == Sampling::Debug)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 32 or 16 lower-hex characters, not all zero; a 64-bit id is left-padded.
fn trace_id(s: &str) -> Option<TraceId> {
    // The character check comes first: `from_hex` alone would accept `+` and uppercase.
    if !((s.len() == 32 || s.len() == 16) && is_lower_hex(s)) {
        return None;
    }
    TraceId::from_hex(s)
        .ok()
        .filter(|id| *id != TraceId::INVALID)
}

/// 16 lower-hex characters, not all zero (used for span and parent span ids).
fn span_id(s: &str) -> Option<SpanId> {
    if !(s.len() == 16 && is_lower_hex(s)) {
        return None;
    }
    SpanId::from_hex(s).ok().filter(|id| *id != SpanId::INVALID)
}

/// Parses a `b3` value: `Ok(None)` for a lone sampling state, `Err` if malformed.
fn parse_single(value: &str) -> Result<Option<Remote>, DropReason> {
    if value.len() > SINGLE_MAX_LEN {
        return Err(DropReason::TooLong);
    }
    if Sampling::from_single(value).is_some() {
        return Ok(None);
    }
    let mut parts = value.split('-');
    let trace = parts.next().and_then(trace_id);
    let span = parts.next().and_then(span_id);
    let sampling = match parts.next() {
        None => Some(Sampling::Defer),
        Some(s) => Sampling::from_single(s),
    };
    let parent_ok = parts.next().is_none_or(|p| span_id(p).is_some());
    match (trace, span, sampling, parent_ok, parts.next()) {
        (Some(t), Some(s), Some(sampling), true, None) => Ok(Some(remote(t, s, sampling))),
        _ => Err(DropReason::Malformed),
    }
}

/// Parses the `X-B3-*` headers: `Ok(None)` when neither id header is present,
/// `Err(header)` naming the first malformed one.
fn parse_multi(extractor: &dyn Extractor) -> Result<Option<Remote>, &'static str> {
    let (trace, span) = match (extractor.get(TRACE_ID), extractor.get(SPAN_ID)) {
        (None, None) => return Ok(None),
        (trace, span) => (trace.and_then(trace_id), span.and_then(span_id)),
    };
    let trace = trace.ok_or(TRACE_ID)?;
    let span = span.ok_or(SPAN_ID)?;
    if extractor
        .get(PARENT_SPAN_ID)
        .is_some_and(|p| span_id(p).is_none())
    {
        return Err(PARENT_SPAN_ID);
    }
    let sampled = match extractor.get(SAMPLED) {
        None => Sampling::Defer,
        Some(s) => Sampling::from_multi(s).ok_or(SAMPLED)?,
    };
    // "Debug is encoded as `X-B3-Flags: 1`"; `0` is accepted as "not debug".
    let debug = match extractor.get(FLAGS) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(FLAGS),
    };
    // Debug implies accept, whatever X-B3-Sampled says ("Debug Flag").
    let sampling = if debug { Sampling::Debug } else { sampled };
    Ok(Some(remote(trace, span, sampling)))
}

impl Propagator for B3Propagator {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        if let Some(value) = extractor.get(SINGLE) {
            match parse_single(value) {
                Ok(Some((sc, debug))) => return with_remote(cx, sc, debug),
                Ok(None) => {}
                Err(reason) => dropped.push(Dropped::new(SINGLE, "", reason)),
            }
        }
        match parse_multi(extractor) {
            Ok(Some((sc, debug))) => with_remote(cx, sc, debug),
            Ok(None) => cx.clone(),
            Err(header) => {
                dropped.push(Dropped::new(header, "", DropReason::Malformed));
                cx.clone()
            }
        }
    }

    fn inject_reporting(&self, cx: &Context, injector: &mut dyn Injector, _: &mut Vec<Dropped>) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let debug = DebugTrace::is_set(cx);
        let state = match (debug, sc.is_sampled()) {
            (true, _) => "d",
            (false, true) => "1",
            (false, false) => "0",
        };
        if matches!(
            self.encoding,
            B3Encoding::Single | B3Encoding::SingleAndMulti
        ) {
            let value = format!("{}-{}-{state}", sc.trace_id(), sc.span_id());
            injector.set(SINGLE, value);
        }
        if matches!(
            self.encoding,
            B3Encoding::Multi | B3Encoding::SingleAndMulti
        ) {
            injector.set(TRACE_ID, sc.trace_id().to_string());
            injector.set(SPAN_ID, sc.span_id().to_string());
            // "Debug implies an accept decision, so don't also send X-B3-Sampled."
            if debug {
                injector.set(FLAGS, "1".to_owned());
            } else {
                injector.set(SAMPLED, state.to_owned());
            }
        }
    }

    /// The headers of the configured inject encoding (OpenTelemetry spec, B3 "Fields").
    fn field_names(&self) -> &[String] {
        match self.encoding {
            B3Encoding::Single => SINGLE_FIELDS.as_slice(),
            B3Encoding::Multi => MULTI_FIELDS.as_slice(),
            B3Encoding::SingleAndMulti => BOTH_FIELDS.as_slice(),
        }
    }
}

text_map_propagator!(B3Propagator);
