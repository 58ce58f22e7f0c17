//! The `tracestate` header: validation and canonical encoding per W3C Trace
//! Context Level 2 (spec sections #tracestate-header-field-values, #list, #key,
//! #value).
//!
//! Written by hand because `opentelemetry::trace::TraceState` still applies
//! the older `tenant@system` key grammar (one `@`, at most 13 characters after
//! it), truncates a list of 33 members instead of discarding it, accepts values
//! with control characters, and allocates every member twice while parsing.

use opentelemetry::trace::TraceState;

use crate::{DropReason, Dropped};

use super::{TRACESTATE, split_once, trim_ows};

/// "There can be a maximum of 32 list-members in a list" (#list).
const MAX_MEMBERS: usize = 32;

/// A header longer than this is discarded before it is split. 32 members of a
/// 256-character key and a 256-character value, with commas, take 16,447
/// bytes; twice that leaves room for optional whitespace and the empty members
/// that combining several header lines produces.
const MAX_LEN: usize = 32 * 1024;

/// Up to 32 valid members, borrowed from their source: validating a header
/// allocates nothing.
#[derive(Debug)]
pub(super) struct Members<'a> {
    list: [(&'a str, &'a str); MAX_MEMBERS],
    len: usize,
}

impl<'a> Members<'a> {
    fn new() -> Self {
        Members {
            list: [("", ""); MAX_MEMBERS],
            len: 0,
        }
    }

    /// Validates a (combined) `tracestate` header.
    ///
    /// Any malformed member or more than 32 members discards the whole header.
    /// The spec allows either discarding the header or only the invalid entries
    /// (#a-traceparent-is-received); the official test suite at its default
    /// strictness requires the former (`test_tracestate_member_count_limit`,
    /// `test_tracestate_key_illegal_characters`, ...). Empty and
    /// whitespace-only members are skipped and not counted (#list).
    ///
    /// A repeated key is kept as received: only a participant that adds a key
    /// must not repeat it (#mutating-the-tracestate-field), a receiver is not
    /// responsible for cleaning up what an upstream participant sent, and
    /// forwarding the header unchanged keeps it byte-identical over any number
    /// of hops (`test_tracestate_duplicated_keys` accepts this).
    pub(super) fn parse(header: &'a str) -> Result<Self, Dropped> {
        if header.len() > MAX_LEN {
            return Err(Dropped::new(TRACESTATE, "", DropReason::TooLong));
        }
        let mut members = Members::new();
        for member in header.split(',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            // Without `=` the empty value makes the member malformed.
            let (key, value) = split_once(member, b'=').unwrap_or((member, ""));
            members
                .push(key, value)
                .map_err(|reason| dropped(key, reason))?;
        }
        Ok(members)
    }

    /// The members of an OpenTelemetry trace state that are valid on the wire.
    /// Each invalid or excess member is dropped alone and reported. Repeated
    /// keys are sent as they are, as on extraction: `TraceState::insert`, the
    /// way an application adds a key, already replaces an existing entry.
    pub(super) fn from_otel(state: &'a TraceState, dropped_out: &mut Vec<Dropped>) -> Self {
        let mut members = Members::new();
        for (key, value) in state {
            if let Err(reason) = members.push(key, value) {
                dropped_out.push(dropped(key, reason));
            }
        }
        members
    }

    fn push(&mut self, key: &'a str, value: &'a str) -> Result<(), DropReason> {
        if !is_valid_key(key) || !is_valid_value(value) {
            return Err(DropReason::Malformed);
        }
        let slot = self.list.get_mut(self.len).ok_or(DropReason::TooMany)?;
        *slot = (key, value);
        self.len += 1;
        Ok(())
    }

    fn as_slice(&self) -> &[(&'a str, &'a str)] {
        self.list.get(..self.len).unwrap_or_default()
    }

    /// An OpenTelemetry trace state with every member it accepts, and whether
    /// that is all of them.
    pub(super) fn to_otel(&self) -> (TraceState, bool) {
        match TraceState::from_key_value(self.as_slice().iter().copied()) {
            Ok(state) => (state, true),
            Err(_) => {
                // `TraceState` refuses keys the older grammar did not allow
                // (two `@`s, 14 or more characters after one) and has no
                // unchecked constructor: keep the members it takes; the caller
                // carries the full header.
                let accepted = self
                    .as_slice()
                    .iter()
                    .filter(|&&(k, v)| TraceState::from_key_value([(k, v)]).is_ok());
                let state = TraceState::from_key_value(accepted.copied()).unwrap_or_default();
                (state, false)
            }
        }
    }

    /// The canonical header: members joined by a bare comma, so that it is
    /// byte-identical after any number of hops. Empty when there are no members.
    pub(super) fn header(&self) -> String {
        let len = self
            .as_slice()
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        let mut out = String::with_capacity(len);
        for (i, (key, value)) in self.as_slice().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        out
    }
}

/// A drop report that names the key only when it is valid.
fn dropped(key: &str, reason: DropReason) -> Dropped {
    Dropped::new(TRACESTATE, if is_valid_key(key) { key } else { "" }, reason)
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )` with
/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"` (#key): up to 256
/// characters, `@` anywhere but first and as often as it likes. The older
/// `tenant-id "@" system-id` split (241 and 14 characters) is gone from the
/// grammar, so keys it refused, such as `t@vvvvvvvvvvvvvvv` or `a@b@c`, are
/// valid.
fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    key.len() <= 256
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// `value = 0*255(chr) nblk-chr` with `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`
/// and `chr = %x20 / nblk-chr` (#value).
fn is_valid_value(value: &str) -> bool {
    let nblk = |b: u8| matches!(b, 0x21..=0x2B | 0x2D..=0x3C | 0x3E..=0x7E);
    value.len() <= 256
        && value.bytes().last().is_some_and(nblk)
        && value.bytes().all(|b| b == b' ' || nblk(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.
mod tests {
    use super::*;

    #[test]
    fn otel_cannot_hold_keys_of_the_current_grammar() {
        let members = Members::parse("t@vvvvvvvvvvvvvvv=1,a@b@c=2,foo=3").unwrap();
        let (state, complete) = members.to_otel();
        assert!(!complete);
        assert_eq!(state.header(), "foo=3");
        assert_eq!(members.header(), "t@vvvvvvvvvvvvvvv=1,a@b@c=2,foo=3");
    }

    #[test]
    fn excess_members_from_otel_are_dropped_one_by_one() {
        // `from_key_value` keeps 32 members and repeated keys.
        let state = TraceState::from_key_value([("a", "1"), ("a", "2"), ("b", "x ")]).unwrap();
        let mut dropped = Vec::new();
        assert_eq!(Members::from_otel(&state, &mut dropped).header(), "a=1,a=2");
        assert_eq!(
            dropped,
            [Dropped::new(TRACESTATE, "b", DropReason::Malformed)]
        );
    }
}
