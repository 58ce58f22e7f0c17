//! Jaeger propagation (Jaeger client libraries, "Propagation Format"): the
//! `uber-trace-id` header and `uberctx-{key}` baggage headers.
//!
//! Written here rather than taken from `opentelemetry-jaeger-propagator`
//! (0.32, built for opentelemetry 0.32) because that propagator parses the
//! flags as *decimal* (`0a` is rejected, `10` means 0x0a), checks no id for
//! zero, decodes `%3A` only when the value has no `:` at all, keeps debug in
//! `TraceFlags` bit 0x04, and puts `uberctx-*` headers into the `TraceState`
//! (prefix included) instead of `Baggage`, where one key that is not a valid
//! `tracestate` key makes the whole trace context be dropped; it never
//! injects baggage.

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use crate::b3::{DebugTrace, with_remote};
use crate::percent;
use crate::report::{DropReason, Dropped, Propagator, text_map_propagator};

const HEADER: &str = "uber-trace-id";
const BAGGAGE_PREFIX: &str = "uberctx-";

/// `{trace-id}:{span-id}:{parent-span-id}:{flags}` at its longest, with the
/// three separators URL-encoded as `%3A`: anything longer is rejected unread.
const MAX_LEN: usize = 32 + 16 + 16 + 2 + 3 * "%3A".len();

/// opentelemetry's `Baggage` limit on all pairs together (W3C Baggage,
/// "Limits"); a longer single value can never be stored, so it is not decoded.
const MAX_BAGGAGE_BYTES: usize = 8192;
/// opentelemetry's `Baggage` limit on the number of pairs.
const MAX_BAGGAGE_ENTRIES: usize = 64;

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

// Baggage headers are named after their keys, so they cannot be listed here
// (OpenTelemetry JS and Go leave them out of `fields` too).
static FIELDS: LazyLock<[String; 1]> = LazyLock::new(|| [HEADER.to_owned()]);

/// The Jaeger propagator: `uber-trace-id` for the span context and
/// `uberctx-{key}` headers for [`Baggage`].
///
/// Ids of up to 32 (trace) and 16 (span) hex digits in either case are
/// accepted and left-padded; zero ids are invalid; the deprecated parent span
/// id is validated and ignored, and sent as `0`; a value URL-encoded the way
/// Jaeger clients send it (`%3A` separators) is accepted. Flags are hex:
/// `0x01` sampled, `0x02` debug, which "implies sampled" and becomes sampled
/// plus a [`DebugTrace`] mark (shared with B3, so a debug trace stays debug
/// whichever format carries it out). Baggage keys are lowercased, since HTTP
/// does not preserve their case; a key with uppercase letters is therefore not
/// injected (it could not come back unchanged) but reported. Values are
/// URL-decoded as Jaeger's Go and Java clients encode them (`+` is a space)
/// and re-encoded so that every Jaeger client decodes them the same.
///
/// ```
/// use baton_propagators::{HeaderCarrier, HeaderCarrierMut, JaegerPropagator};
/// use opentelemetry::baggage::BaggageExt;
/// use opentelemetry::propagation::TextMapPropagator;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("uber-trace-id", "4d2%3A17c29%3A0%3A1".parse().unwrap());
/// headers.insert("uberctx-user", "jo%20e".parse().unwrap());
/// let cx = JaegerPropagator::new().extract(&HeaderCarrier(&headers));
/// assert_eq!(cx.baggage().get("user").map(|v| v.as_str()), Some("jo e"));
///
/// let mut out = http::HeaderMap::new();
/// JaegerPropagator::new().inject_context(&cx, &mut HeaderCarrierMut(&mut out));
/// assert_eq!(out["uber-trace-id"], "000000000000000000000000000004d2:0000000000017c29:0:01");
/// assert_eq!(out["uberctx-user"], "jo%20e");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JaegerPropagator(());

impl JaegerPropagator {
    /// A Jaeger propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// 1 to `max` hex digits of either case: Jaeger ids are "variable length".
fn hex(s: &str, max: usize) -> Option<&str> {
    // `from_hex` alone would also accept a leading `+`.
    (1..=max)
        .contains(&s.len())
        .then_some(s)
        .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse(value: &str) -> Result<(SpanContext, bool), DropReason> {
    if value.len() > MAX_LEN {
        return Err(DropReason::TooLong);
    }
    let value = percent::decode(value);
    let mut parts = value.split(':');
    let trace = parts
        .next()
        .and_then(|s| hex(s, 32))
        .and_then(|s| TraceId::from_hex(s).ok())
        .filter(|id| *id != TraceId::INVALID);
    let span = parts
        .next()
        .and_then(|s| hex(s, 16))
        .and_then(|s| SpanId::from_hex(s).ok())
        .filter(|id| *id != SpanId::INVALID);
    // Deprecated and ignored, but still has to be an id ("0 value is valid").
    let parent_ok = parts.next().and_then(|s| hex(s, 16)).is_some();
    let flags = parts
        .next()
        .and_then(|s| hex(s, 2))
        .and_then(|s| u8::from_str_radix(s, 16).ok());
    match (trace, span, parent_ok, flags, parts.next()) {
        (Some(trace), Some(span), true, Some(flags), None) => {
            let debug = flags & FLAG_DEBUG != 0;
            let sampled = debug || flags & FLAG_SAMPLED != 0;
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
            Ok((sc, debug))
        }
        _ => Err(DropReason::Malformed),
    }
}

/// A baggage key that survives as a header name: lowercase RFC 9110 `tchar`s.
/// These are also valid W3C baggage keys.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Decodes a baggage value the way Jaeger's Go and Java clients encode it
/// (`url.QueryEscape`, `URLEncoder`: form encoding, where `+` is a space).
fn decode_value(raw: &str) -> String {
    if raw.contains('+') {
        percent::decode(&raw.replace('+', "%20")).into_owned()
    } else {
        percent::decode(raw).into_owned()
    }
}

/// The baggage codec's encoding, plus `+` as `%2B`: a literal `+` would be a
/// space to form decoders and a plus to others, while `%2B` is a plus to all.
fn encode_value(value: &str) -> String {
    let mut encoded = String::with_capacity(percent::encoded_len(value));
    percent::encode_into(value, &mut encoded);
    if encoded.contains('+') {
        encoded = encoded.replace('+', "%2B");
    }
    encoded
}

/// `cx`'s baggage plus every valid `uberctx-*` entry, or `None` if there is none.
fn extract_baggage(
    cx: &Context,
    extractor: &dyn Extractor,
    dropped: &mut Vec<Dropped>,
) -> Option<Baggage> {
    let mut baggage: Option<Baggage> = None;
    for header in extractor.keys() {
        let Some(key) = header
            .get(..BAGGAGE_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(BAGGAGE_PREFIX))
            .and_then(|_| header.get(BAGGAGE_PREFIX.len()..))
        else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if !is_key(&key) {
            dropped.push(Dropped::new(BAGGAGE_PREFIX, "", DropReason::Malformed));
            continue;
        }
        let Some(raw) = extractor.get(header) else {
            continue;
        };
        if raw.len() > MAX_BAGGAGE_BYTES {
            dropped.push(Dropped::new(BAGGAGE_PREFIX, key, DropReason::TooLong));
            continue;
        }
        // Built lazily so that a request without Jaeger baggage costs nothing.
        // `Baggage` is not `Clone`, and `with_baggage` replaces rather than merges.
        let baggage = baggage.get_or_insert_with(|| {
            cx.baggage()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        if baggage.len() >= MAX_BAGGAGE_ENTRIES && baggage.get(&key).is_none() {
            dropped.push(Dropped::new(BAGGAGE_PREFIX, key, DropReason::TooMany));
            continue;
        }
        let value = decode_value(raw);
        // `insert` refuses silently when the total size limit would be exceeded.
        baggage.insert(key.clone(), value.clone());
        if baggage.get(&key).is_none_or(|v| v.as_str() != value) {
            dropped.push(Dropped::new(BAGGAGE_PREFIX, key, DropReason::TooLong));
        }
    }
    baggage
}

impl Propagator for JaegerPropagator {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        let mut cx = match extractor.get(HEADER).map(parse) {
            Some(Ok((sc, debug))) => with_remote(cx, sc, debug),
            Some(Err(reason)) => {
                dropped.push(Dropped::new(HEADER, "", reason));
                cx.clone()
            }
            None => cx.clone(),
        };
        if let Some(baggage) = extract_baggage(&cx, extractor, dropped) {
            cx = cx.with_baggage(baggage);
        }
        cx
    }

    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        dropped: &mut Vec<Dropped>,
    ) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = match (DebugTrace::is_set(cx), sc.is_sampled()) {
                (true, _) => FLAG_SAMPLED | FLAG_DEBUG,
                (false, true) => FLAG_SAMPLED,
                (false, false) => 0,
            };
            // Parent span id "0": deprecated, and OpenTelemetry does not know it.
            // Flags as "two hex digits".
            let value = format!("{}:{}:0:{flags:02x}", sc.trace_id(), sc.span_id());
            injector.set(HEADER, value);
        }
        for (key, (value, _metadata)) in cx.baggage() {
            if !is_key(key.as_str()) {
                dropped.push(Dropped::new(BAGGAGE_PREFIX, "", DropReason::Malformed));
                continue;
            }
            injector.set(
                &format!("{BAGGAGE_PREFIX}{key}"),
                encode_value(value.as_str()),
            );
        }
    }

    fn field_names(&self) -> &[String] {
        FIELDS.as_slice()
    }
}

text_map_propagator!(JaegerPropagator);
