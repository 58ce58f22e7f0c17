//! The `traceparent` header: strict parsing and encoding per W3C Trace Context
//! Level 2 (spec section #traceparent-header).
//!
//! Written by hand because `opentelemetry_sdk`'s parser splits the whole
//! header into a `Vec` before checking its length, accepts fields of the wrong
//! length in future versions, and drops the Level 2 random flag.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::trim_ows;
use crate::DropReason;

/// `00-` + 32 + `-` + 16 + `-` + 2: the exact length of a version `00` value,
/// and the minimum length of any version (#versioning-of-traceparent).
pub(super) const LEN: usize = 55;

/// Longer values are rejected before any parsing. A future version may append
/// fields, and the spec asks to "only disallow prohibitively large headers"
/// (#versioning-of-traceparent); 512 bytes leaves room for many appended fields.
const MAX_LEN: usize = 512;

/// The flags this implementation knows: `sampled` (#sampled-flag) and
/// `random-trace-id` (#random-trace-id-flag). Other bits are "reserved for future use.
/// Vendors MUST set those to zero" (#other-flags), and the processing model
/// (#a-traceparent-is-received) says to ignore unknown flags on input, so they are masked on both
/// extract and inject.
const KNOWN_FLAGS: u8 = 0x03;

/// Parses a `traceparent` value into a remote [`SpanContext`] with an empty
/// trace state, or `None` when the value is invalid and the trace must restart.
///
/// Leading and trailing spaces and tabs (HTTP optional whitespace) are ignored.
/// Higher versions are parsed by the rules of #versioning-of-traceparent; unknown flag bits are
/// cleared.
///
/// ```
/// use baton_propagators::trace_context::parse_traceparent;
///
/// let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
/// assert!(sc.is_sampled());
/// assert_eq!(sc.trace_flags().to_u8(), 0x03, "the Level 2 random flag is kept");
/// assert!(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// ```
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    parse(value).ok()
}

/// [`parse_traceparent`] with the reason for a rejection.
pub(super) fn parse(value: &str) -> Result<SpanContext, DropReason> {
    // Bounded work: the length is checked before anything else is looked at.
    if value.len() > MAX_LEN {
        return Err(DropReason::TooLong);
    }
    let value = trim_ows(value).as_bytes();
    let fixed: &[u8; LEN] = value
        .get(..LEN)
        .and_then(|v| v.try_into().ok())
        .ok_or(DropReason::Malformed)?;
    let version = hex::<1>(&fixed[0..2]).ok_or(DropReason::Malformed)?[0];
    let well_delimited = fixed[2] == b'-' && fixed[35] == b'-' && fixed[52] == b'-';
    let valid_length = match version {
        // #version: version ff is invalid.
        0xff => false,
        // #version-format: version 00 has exactly four fields.
        0x00 => value.len() == LEN,
        // #versioning-of-traceparent: for a higher version the flags must be "either at the end of
        // the string or followed by a dash"; what follows is not parsed.
        _ => value.get(LEN).is_none_or(|&b| b == b'-'),
    };
    if !well_delimited || !valid_length {
        return Err(DropReason::Malformed);
    }
    let trace_id = TraceId::from_bytes(hex(&fixed[3..35]).ok_or(DropReason::Malformed)?);
    let span_id = SpanId::from_bytes(hex(&fixed[36..52]).ok_or(DropReason::Malformed)?);
    let flags = hex::<1>(&fixed[53..55]).ok_or(DropReason::Malformed)?[0];
    // #trace-id, #parent-id: all-zero ids are invalid.
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return Err(DropReason::Malformed);
    }
    Ok(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & KNOWN_FLAGS),
        true,
        TraceState::NONE,
    ))
}

/// Encodes a valid span context as a version `00` value: the only version this
/// implementation knows, which #versioning-of-traceparent requires for outgoing headers.
pub(super) fn encode(sc: &SpanContext) -> [u8; LEN] {
    let mut out = [b'-'; LEN];
    out[0] = b'0';
    out[1] = b'0';
    encode_hex(&sc.trace_id().to_bytes(), &mut out[3..35]);
    encode_hex(&sc.span_id().to_bytes(), &mut out[36..52]);
    encode_hex(&[sc.trace_flags().to_u8() & KNOWN_FLAGS], &mut out[53..55]);
    out
}

/// Decodes `2 * N` lowercase hex digits (`HEXDIGLC`, #traceparent-header-field-values);
/// uppercase is invalid. Branch-free per digit: a table lookup, with invalid
/// digits marked by high bits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut out = [0; N];
    let mut invalid = 0;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        if let &[hi, lo] = pair {
            let (hi, lo) = (HEX_VALUE[usize::from(hi)], HEX_VALUE[usize::from(lo)]);
            invalid |= hi | lo;
            *byte = (hi << 4) | lo;
        }
    }
    (digits.len() == 2 * N && invalid & 0xf0 == 0).then_some(out)
}

/// The value of each byte as a `HEXDIGLC`, or `0xff`.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(byte >> 4)];
            *lo = DIGITS[usize::from(byte & 0x0f)];
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.
mod tests {
    use super::*;

    #[test]
    fn encode_is_the_inverse_of_parse() {
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
        let sc = parse(value).unwrap();
        assert_eq!(&encode(&sc)[..], value.as_bytes());
    }

    #[test]
    fn overlong_values_are_rejected_before_parsing() {
        let value = format!(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01{}",
            " ".repeat(MAX_LEN)
        );
        assert_eq!(parse(&value), Err(DropReason::TooLong));
    }
}
