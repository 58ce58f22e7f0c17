//! Percent-encoding for W3C Baggage values and properties (also used for
//! Jaeger `uberctx-*`), through the `percent-encoding` crate with the
//! baggage rules as its set: everything outside `baggage-octet` is encoded,
//! `%` itself always (so values survive any number of hops), `+` is a
//! literal plus, and invalid UTF-8 after decoding becomes U+FFFD (W3C
//! Baggage, "value").

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The ASCII bytes that are not `baggage-octet`s, and `%`; the encoder
/// escapes every non-ASCII byte too.
const ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`, less `%`,
/// which we always encode so that decoding is the exact inverse of encoding:
/// the grammar's check, the complement of [`ENCODED`] (a test keeps them
/// equal).
pub(crate) fn is_safe_octet(b: u8) -> bool {
    SAFE[usize::from(b)]
}

// A table, because the grammar checks every byte of every value received.
static SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] =
            matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E) && b != 0x25;
        b += 1;
    }
    table
};

/// Appends `value` to `out`, percent-encoding every byte outside the safe set.
pub(crate) fn encode_into(value: &str, out: &mut String) {
    out.extend(utf8_percent_encode(value, ENCODED));
}

/// The encoded length of `value`, without encoding it.
pub(crate) fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|b| if is_safe_octet(b) { 1 } else { 3 })
        .sum()
}

/// Decodes `%HH` sequences; a `%` not followed by two hex digits stays literal.
/// Borrows when there is nothing to decode.
pub(crate) fn decode(value: &str) -> Cow<'_, str> {
    percent_decode_str(value).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(v: &str) -> String {
        let mut s = String::new();
        encode_into(v, &mut s);
        s
    }

    #[test]
    fn table() {
        // (decoded, encoded, why)
        let rows = [
            ("abc", "abc", "baggage-octets pass through"),
            ("a b", "a%20b", "space is not a baggage-octet"),
            (
                "100%",
                "100%25",
                "% is always encoded so a round trip is exact",
            ),
            ("a+b", "a+b", "+ is a literal plus, not a space"),
            ("x,y;z\\\"", "x%2Cy%3Bz%5C%22", "delimiters are encoded"),
            ("a=b", "a=b", "= is a baggage-octet: values may contain it"),
            ("é", "%C3%A9", "UTF-8 bytes are encoded one by one"),
            ("\r\n\0", "%0D%0A%00", "control bytes never reach the wire"),
        ];
        for (plain, wire, why) in rows {
            assert_eq!(encode(plain), wire, "{why}");
            assert_eq!(encoded_len(plain), wire.len(), "{why}");
            assert_eq!(decode(wire), plain, "{why}");
        }
    }

    #[test]
    fn decoding_is_lenient() {
        assert_eq!(decode("100%"), "100%", "lone % stays literal");
        assert_eq!(decode("%zz%4"), "%zz%4", "non-hex stays literal");
        assert_eq!(decode("%ff"), "\u{FFFD}", "invalid UTF-8 becomes U+FFFD");
        assert_eq!(decode("%252541"), "%2541", "decoding happens once");
    }

    #[test]
    fn the_encoder_escapes_exactly_what_the_grammar_forbids() {
        for b in 0..=127u8 {
            let one = char::from(b).to_string();
            assert_eq!(encode(&one) == one, is_safe_octet(b), "byte {b:#04x}");
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(s in any::<String>()) {
            let wire = encode(&s);
            prop_assert!(wire.bytes().all(|b| is_safe_octet(b) || b == b'%'));
            prop_assert_eq!(decode(&wire), s);
        }
    }
}
