//! W3C Trace Context Level 2 (the W3C specification of that name):
//! the `traceparent` and `tracestate` headers.
//!
//! Replaces `opentelemetry_sdk::propagation::TraceContextPropagator`, which
//! fails a third of the official test suite (the `traceparent` and
//! `tracestate` submodules say what it gets wrong).
//!
//! # Members OpenTelemetry cannot hold
//!
//! `opentelemetry::trace::TraceState` rejects some valid keys and has no
//! unchecked constructor, so an extracted span context may lack members of
//! the received header. Extraction then also stores the validated header in a
//! private context value, tagged with the trace id and the `TraceState` it
//! produced. Injection sends that header instead of re-encoding the
//! `TraceState` as long as the injected span context has the same trace id and
//! an unchanged `TraceState`, which is the case for the extracted context and
//! for any child span the SDK creates from it (children copy their parent's
//! trace state). Once the application changes the trace state, what goes out
//! is the changed `TraceState`, without the members it could not hold.

mod traceparent;
mod tracestate;

use std::borrow::Cow;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceId, TraceState};

pub use traceparent::parse_traceparent;

use crate::carrier::{HeaderCarrier, combined, never_index};
use crate::report::{log_dropped, text_map_propagator};
use crate::{DropReason, Dropped, Propagator};
use tracestate::Members;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
// Looking up a `HeaderName` skips parsing and validating a `&str` key.
const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

static FIELDS: LazyLock<[String; 2]> =
    LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

/// Propagates span contexts in the W3C `traceparent` and `tracestate` headers,
/// exactly as Trace Context Level 2 specifies.
///
/// Invalid input is treated as absent and reported through [`Propagator`]; what
/// is injected is always valid: `traceparent` version `00` with the sampled and
/// random flags, and `tracestate` only when it has members.
///
/// ```
/// use baton_propagators::{HeaderCarrier, HeaderCarrierMut, TraceContextPropagator};
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry::Context;
///
/// let mut incoming = http::HeaderMap::new();
/// incoming.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03".parse().unwrap());
/// incoming.append("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
/// incoming.append("tracestate", "tenant@fourteen-chars=x".parse().unwrap());
///
/// let propagator = TraceContextPropagator::new();
/// let cx = propagator.extract_with_context(&Context::new(), &HeaderCarrier(&incoming));
/// assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03);
///
/// let mut outgoing = http::HeaderMap::new();
/// propagator.inject_context(&cx, &mut HeaderCarrierMut(&mut outgoing));
/// assert_eq!(outgoing["traceparent"], incoming["traceparent"]);
/// assert_eq!(outgoing["tracestate"], "congo=t61rcWkgMzE,tenant@fourteen-chars=x");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// A new propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extracts from an `http::HeaderMap` without going through [`Extractor`]:
    /// the same parsing as [`Propagator::extract_reporting`] with a
    /// [`HeaderCarrier`], but `traceparent` is read without allocating, and
    /// `tracestate` allocates only when present. Drops are logged at debug level.
    pub fn extract_from_headers(&self, cx: &Context, headers: &HeaderMap) -> Context {
        let mut dropped = Vec::new();
        let cx = self.extract_from_header_map(cx, headers, &mut dropped);
        log_dropped("extract", &dropped);
        cx
    }

    /// Injects into an `http::HeaderMap` without going through [`Injector`],
    /// which needs a `String` and a parsed header name per header. Unlike an
    /// `Injector`, this also removes a stale `tracestate` when there is none to
    /// send, so that it cannot end up paired with the new `traceparent`. Drops
    /// are logged at debug level.
    pub fn inject_into_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        let mut dropped = Vec::new();
        self.inject_into_header_map(cx, headers, &mut dropped);
        log_dropped("inject", &dropped);
    }
}

impl Propagator for TraceContextPropagator {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        let lines = extractor.get_all(TRACEPARENT);
        let traceparent = single(lines.iter().flatten().copied());
        extract(cx, traceparent, || combined(extractor, TRACESTATE), dropped)
    }

    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        dropped: &mut Vec<Dropped>,
    ) {
        if let Some((traceparent, tracestate)) = outgoing(cx, dropped) {
            injector.set(
                TRACEPARENT,
                String::from_utf8_lossy(&traceparent).into_owned(),
            );
            // "Vendors MUST accept empty tracestate headers but SHOULD avoid
            // sending them" (#tracestate-header-field-values).
            if !tracestate.is_empty() {
                injector.set(TRACESTATE, tracestate);
            }
        }
    }

    fn extract_from_header_map(
        &self,
        cx: &Context,
        headers: &HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        // The same lines `HeaderCarrier::get_all` returns, without the `Vec`.
        let lines = headers
            .get_all(TRACEPARENT_NAME)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let carrier = HeaderCarrier(headers);
        let tracestate = || {
            // A single line is borrowed without the `Vec` of `get_all`.
            let mut lines = headers.get_all(TRACESTATE_NAME).iter();
            match (lines.next().map(HeaderValue::to_str), lines.next()) {
                (None, _) => None,
                (Some(Ok(line)), None) => Some(Cow::Borrowed(line)),
                _ => combined(&carrier, TRACESTATE),
            }
        };
        extract(cx, single(lines), tracestate, dropped)
    }

    fn inject_into_header_map(
        &self,
        cx: &Context,
        headers: &mut HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) {
        if let Some((traceparent, tracestate)) = outgoing(cx, dropped) {
            if let Ok(mut value) = HeaderValue::from_bytes(&traceparent) {
                never_index(&mut value);
                headers.insert(TRACEPARENT_NAME, value);
            }
            match HeaderValue::try_from(tracestate) {
                Ok(value) if !value.is_empty() => {
                    headers.insert(TRACESTATE_NAME, value);
                }
                _ => {
                    headers.remove(TRACESTATE_NAME);
                }
            }
        }
    }

    fn field_names(&self) -> &[String] {
        &*FIELDS
    }
}

text_map_propagator!(TraceContextPropagator);

/// The only `traceparent` line, if any. Two lines make the header invalid: the
/// test suite expects a new trace (`test_traceparent_duplicated`).
fn single<'a>(mut lines: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, DropReason> {
    match (lines.next(), lines.next()) {
        (line, None) => Ok(line),
        _ => Err(DropReason::Duplicate),
    }
}

/// `s` without leading and trailing optional whitespace: spaces and horizontal
/// tabs (RFC 9110, section 5.6.3). Byte-wise, for the same reason as
/// [`split_once`].
fn trim_ows(s: &str) -> &str {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are char boundaries.
    s.get(start..end).unwrap_or_default()
}

/// `s.split_once(sep)` for an ASCII separator, without the `char` pattern
/// machinery, which dominated validating short members.
fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The tracestate header extracted alongside a span context whose `TraceState`
/// could not hold all of it (see the module documentation).
#[derive(Debug)]
struct ReceivedTraceState {
    trace_id: TraceId,
    otel: TraceState,
    header: String,
}

/// Extraction shared by both APIs. `tracestate` is only called once the
/// `traceparent` is valid: "If the vendor failed to parse traceparent, it MUST
/// NOT attempt to parse tracestate" (#tracestate-header).
fn extract<'a>(
    cx: &Context,
    traceparent: Result<Option<&str>, DropReason>,
    tracestate: impl FnOnce() -> Option<Cow<'a, str>>,
    dropped: &mut Vec<Dropped>,
) -> Context {
    let sc = match traceparent.and_then(|line| line.map(traceparent::parse).transpose()) {
        Ok(Some(sc)) => sc,
        Ok(None) => return cx.clone(),
        Err(reason) => {
            dropped.push(Dropped::new(TRACEPARENT, "", reason));
            return cx.clone();
        }
    };
    let stale = cx.get::<ReceivedTraceState>().is_some();
    let (state, full_header) = match tracestate().as_deref().map(Members::parse) {
        None => (TraceState::NONE, None),
        Some(Err(d)) => {
            dropped.push(d);
            (TraceState::NONE, None)
        }
        Some(Ok(members)) => {
            let (state, complete) = members.to_otel();
            (state, (!complete || stale).then(|| members.header()))
        }
    };
    let sc = SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), true, state);
    // A value left by an earlier extraction into `cx` must be replaced even
    // when this one needs none, or its header could go out with this context.
    match full_header.or_else(|| stale.then(String::new)) {
        None => cx.with_remote_span_context(sc),
        Some(header) => {
            let received = ReceivedTraceState {
                trace_id: sc.trace_id(),
                otel: sc.trace_state().clone(),
                header,
            };
            cx.with_value(received).with_remote_span_context(sc)
        }
    }
}

/// The `traceparent` and `tracestate` values to send for the span context of
/// `cx`, or `None` when it is invalid. An empty `tracestate` means none.
fn outgoing(cx: &Context, dropped: &mut Vec<Dropped>) -> Option<([u8; traceparent::LEN], String)> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let tracestate = match cx.get::<ReceivedTraceState>() {
        Some(received)
            if received.trace_id == sc.trace_id() && received.otel == *sc.trace_state() =>
        {
            received.header.clone()
        }
        // The usual case, without filling the member list's kilobyte.
        _ if sc.trace_state().into_iter().next().is_none() => String::new(),
        _ => Members::from_otel(sc.trace_state(), dropped).header(),
    };
    Some((traceparent::encode(sc), tracestate))
}
