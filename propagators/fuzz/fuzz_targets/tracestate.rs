//! Arbitrary `tracestate` lines next to a valid `traceparent`: extraction
//! never panics, both extraction paths agree, the header is forwarded exactly
//! when the current #list, #key and #value grammar accepts it, and whatever is
//! injected is valid and re-extracts to the same context and the same header.

#![no_main]

use baton_propagators::{HeaderCarrier, HeaderCarrierMut, Propagator, TraceContextPropagator};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut combined: Vec<&str> = Vec::new();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    headers.append("traceparent", HeaderValue::from_static(traceparent));
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            // A line that is not visible ASCII is not text the carriers can
            // read: it counts as absent, so the oracle skips it too.
            if value.to_str().is_ok()
                && let Ok(line) = std::str::from_utf8(line)
            {
                combined.push(line);
            }
            headers.append("tracestate", value);
        }
    }

    let propagator = TraceContextPropagator::new();
    let cx =
        propagator.extract_reporting(&Context::new(), &HeaderCarrier(&headers), &mut Vec::new());
    let fast = propagator.extract_from_headers(&Context::new(), &headers);
    assert_eq!(fast.span().span_context(), cx.span().span_context());

    let mut out = HeaderMap::new();
    let mut dropped = Vec::new();
    propagator.inject_reporting(&cx, &mut HeaderCarrierMut(&mut out), &mut dropped);
    assert!(dropped.is_empty(), "{dropped:?}");
    {
        let sent = out.get("tracestate").map(HeaderValue::as_bytes);
        assert_eq!(
            sent,
            oracle(&combined.join(",")).as_deref().map(str::as_bytes)
        );
    }
    assert_eq!(
        out.get("traceparent").map(HeaderValue::as_bytes),
        Some(traceparent.as_bytes())
    );

    let again = propagator.extract_reporting(&Context::new(), &HeaderCarrier(&out), &mut dropped);
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(again.span().span_context(), cx.span().span_context());
    let mut out_again = HeaderMap::new();
    propagator.inject_reporting(&again, &mut HeaderCarrierMut(&mut out_again), &mut dropped);
    assert_eq!(out_again, out);
});

/// The current grammar as the ABNF reads: `key = ( lcalpha / DIGIT ) 0*255
/// ( keychar )` with `@` a keychar (#key), `value = 0*255(chr) nblk-chr`
/// (#value), at most 32 members, empty ones skipped, repeated keys kept
/// (#list). The canonical header, or none.
fn oracle(header: &str) -> Option<String> {
    if header.len() > 32 * 1024 {
        return None;
    }
    let keychar = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-' | '*' | '/' | '@');
    let nblk = |c: char| matches!(c, '\x21'..='\x2b' | '\x2d'..='\x3c' | '\x3e'..='\x7e');
    let mut kept = Vec::new();
    for member in header.split(',').map(|m| m.trim_matches([' ', '\t'])) {
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        let key_ok = key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && key.len() <= 256
            && key.chars().all(keychar);
        let value_ok = value.len() <= 256
            && value.ends_with(nblk)
            && value.chars().all(|c| c == ' ' || nblk(c));
        if !key_ok || !value_ok {
            return None;
        }
        kept.push(member);
    }
    (kept.len() <= 32 && !kept.is_empty()).then(|| kept.join(","))
}
