//! The `baggage` header grammar (W3C Baggage §3.3.1), shared by extract and by
//! inject's check of application-set metadata so that both accept exactly the
//! same language.
//!
//! Properties are kept in one canonical form, which is also what this crate
//! stores in OpenTelemetry's `BaggageMetadata`: `;`-separated, no `OWS`, each
//! property `key` or `key=value` with the value percent-decoded and re-encoded
//! by [`percent::encode_into`] (upper-case hex, `%` always encoded, nothing
//! else encoded that need not be). Re-parsing the canonical form yields it
//! again, which is what keeps a header byte-identical across hops.

use std::borrow::Cow;
use std::ops::Range;

use crate::percent;

/// Strips `OWS = *( SP / HTAB )` (RFC 7230 §3.2.3) from both ends; unlike
/// `str::trim` it leaves CR, LF and Unicode spaces in place, to be rejected.
pub(super) fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `token` (RFC 7230 §3.2.6), the syntax of keys and property keys.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `value = *baggage-octet`. A raw `%` is a baggage-octet: it is decoded
/// leniently here, and re-encoded (never emitted raw) on the way out.
fn is_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'%' || percent::is_safe_octet(b))
}

/// A valid `list-member`, decoded.
#[derive(Debug)]
pub(super) struct Member<'a> {
    pub(super) key: &'a str,
    pub(super) value: Cow<'a, str>,
    /// Where its canonical properties sit in the buffer given to [`parse_member`].
    pub(super) properties: Range<usize>,
    /// Its length as this crate serializes it, so limits are checked against
    /// what will actually be sent on.
    pub(super) len: usize,
}

/// A `list-member` that does not match the grammar.
#[derive(Debug)]
pub(super) struct Malformed<'a> {
    /// The member's key if the key itself is a valid token, otherwise empty.
    pub(super) key: &'a str,
}

/// Parses one comma-separated element of a `baggage-string`, appending its
/// canonical properties to `properties` (and nothing if it is malformed).
pub(super) fn parse_member<'a>(
    raw: &'a str,
    properties: &mut String,
) -> Result<Member<'a>, Malformed<'a>> {
    let (key_value, props) = match raw.split_once(';') {
        Some((kv, props)) => (kv, Some(props)),
        None => (raw, None),
    };
    // A key is a token, so the first `=` ends it; a value may contain more
    // (§3.3.1.3: parsers MUST NOT assume `=` only separates key and value).
    let Some((key, value)) = key_value.split_once('=') else {
        return Err(Malformed { key: "" });
    };
    let key = trim_ows(key);
    if !is_token(key) {
        return Err(Malformed { key: "" });
    }
    let value = trim_ows(value);
    if !is_value(value) {
        return Err(Malformed { key });
    }
    let value = percent::decode(value);
    // Its length as re-encoded. Not the raw length even when nothing was
    // decoded: a `%` not followed by two hex digits is kept literal, and
    // goes out as `%25`.
    let value_len = percent::encoded_len(&value);
    let start = properties.len();
    let mut len = key.len() + 1 + value_len;
    if let Some(props) = props {
        if !write_properties(props, properties) {
            return Err(Malformed { key });
        }
        len += 1 + properties.len() - start;
    }
    Ok(Member {
        key,
        value,
        properties: start..properties.len(),
        len,
    })
}

/// Appends the canonical form of a `;`-separated property list (without its
/// leading `;`) to `out`. Returns `false`, with `out` unchanged, if any
/// property does not match `property = key OWS "=" OWS value / key OWS`.
pub(super) fn write_properties(props: &str, out: &mut String) -> bool {
    let start = out.len();
    for (i, property) in props.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let valid = match property.split_once('=') {
            Some((key, value)) => {
                let (key, value) = (trim_ows(key), trim_ows(value));
                let valid = is_token(key) && is_value(value);
                if valid {
                    out.push_str(key);
                    out.push('=');
                    percent::encode_into(&percent::decode(value), out);
                }
                valid
            }
            None => {
                let key = trim_ows(property);
                let valid = is_token(key);
                if valid {
                    out.push_str(key);
                }
                valid
            }
        };
        if !valid {
            out.truncate(start);
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(props: &str) -> Option<String> {
        let mut out = String::from("x");
        write_properties(props, &mut out).then(|| out.split_off(1))
    }

    #[test]
    fn properties_table() {
        // (input, canonical form, why) — W3C Baggage §3.3.1 and §3.3.1.4
        let rows = [
            ("p", Some("p"), "property =/ key OWS"),
            ("p=v", Some("p=v"), "property = key OWS \"=\" OWS value"),
            (
                " p = v ;\tq ",
                Some("p=v;q"),
                "§3.3.1.4: OWS is not part of key or value",
            ),
            ("p=a=b", Some("p=a=b"), "= is a baggage-octet"),
            (
                "p=%41%zz%",
                Some("p=A%25zz%25"),
                "decoded once, re-encoded canonically",
            ),
            (
                "p%2Cadmin%3Dtrue",
                Some("p%2Cadmin%3Dtrue"),
                "% is a tchar: a key, never decoded",
            ),
            ("", None, "an empty property is not a property"),
            ("p;;q", None, "an empty property is not a property"),
            ("p q", None, "space is not a tchar"),
            ("p=a b", None, "space is not a baggage-octet"),
            ("=v", None, "a property key is a non-empty token"),
            ("p=\"v\"", None, "DQUOTE is not a baggage-octet"),
            ("p=v\r\n", None, "CR and LF are not OWS"),
        ];
        for (input, expected, why) in rows {
            assert_eq!(canonical(input).as_deref(), expected, "{input:?}: {why}");
        }
    }

    #[test]
    fn malformed_member_keeps_its_key_only_when_valid() {
        let mut buf = String::new();
        let mut key = |raw| parse_member(raw, &mut buf).map(|_| ()).map_err(|e| e.key);
        assert_eq!(key("k=a b"), Err("k"));
        assert_eq!(key("k k=v"), Err(""));
        assert_eq!(key("k=v;;"), Err("k"));
        assert!(
            buf.is_empty(),
            "nothing is left behind by malformed members"
        );
    }

    #[test]
    fn member_length_is_the_canonical_length() {
        let mut buf = String::new();
        let Ok(m) = parse_member(" k = %41%ff ; p = 1 ", &mut buf) else {
            panic!("valid member refused");
        };
        assert_eq!((m.key, &*m.value), ("k", "A\u{FFFD}"));
        assert_eq!(&buf[m.properties.clone()], "p=1");
        assert_eq!(m.len, "k=A%EF%BF%BD;p=1".len());
        // A `%` that starts no escape stays literal, and goes out encoded.
        let Ok(m) = parse_member("k=%zz", &mut buf) else {
            panic!("valid member refused");
        };
        assert_eq!((&*m.value, m.len), ("%zz", "k=%25zz".len()));
    }
}
