//! Percent-encoding for W3C Baggage values and properties (also used for Jaeger `uberctx-*`).
//!
//! Written here rather than taken from `percent-encoding` because the baggage
//! rules are specific: the allowed set is `baggage-octet`, `%` itself is always
//! encoded so values survive any number of hops, `+` is a literal plus, and
//! invalid UTF-8 after decoding becomes U+FFFD (W3C Baggage, "value").

use std::borrow::Cow;

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`, less `%`,
/// which we always encode so that decoding is the exact inverse of encoding.
pub(crate) fn is_safe_octet(b: u8) -> bool {
    SAFE[usize::from(b)]
}

// A table, because this runs once per byte of every value encoded or checked.
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
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Safe bytes are copied in runs, not one `push` each: most values are
    // mostly safe, and this is the hot loop of every inject. A non-empty run
    // is ASCII, so on `char` boundaries; an empty one may fall inside a
    // multi-byte character, where `get` gives `None`: nothing to copy.
    let mut run = 0;
    for (i, &b) in value.as_bytes().iter().enumerate() {
        if !is_safe_octet(b) {
            out.push_str(value.get(run..i).unwrap_or_default());
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
            run = i + 1;
        }
    }
    out.push_str(value.get(run..).unwrap_or_default());
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
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| Some((hex_val(h[0])? << 4) | hex_val(h[1])?));
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Valid UTF-8 (the usual case) is taken as is rather than copied again.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
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

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(s in any::<String>()) {
            let wire = encode(&s);
            prop_assert!(wire.bytes().all(|b| is_safe_octet(b) || b == b'%'));
            prop_assert_eq!(decode(&wire), s);
        }
    }
}
