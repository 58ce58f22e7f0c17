//! The `key=value,key=value` lists of `OTEL_RESOURCE_ATTRIBUTES` and
//! `OTEL_EXPORTER_OTLP_*HEADERS`: the W3C Baggage format without properties,
//! keys and values percent-encoded.

use std::fmt;

/// Why one entry of a list could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryError {
    MissingEquals,
    EmptyKey,
    BadEscape,
    NotUtf8,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingEquals => "no '='",
            Self::EmptyKey => "empty key",
            Self::BadEscape => "malformed percent-encoding",
            Self::NotUtf8 => "percent-encoding is not utf-8",
        })
    }
}

/// One parsed entry: its 1-based position among the non-empty entries and
/// the decoded key and value.
pub(crate) type Entry = (usize, Result<(String, String), EntryError>);

/// The entries of `list`, in order. Empty entries (`a=1,,b=2`, a trailing
/// comma) are skipped rather than reported: they carry nothing to lose.
/// Keys and values are trimmed, then percent-decoded; the value is split at
/// the first `=` so that base64 padding in credentials survives unencoded.
pub(crate) fn entries(list: &str) -> impl Iterator<Item = Entry> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
        .map(|(i, entry)| (i + 1, entry_of(entry)))
}

fn entry_of(entry: &str) -> Result<(String, String), EntryError> {
    let (key, value) = entry.split_once('=').ok_or(EntryError::MissingEquals)?;
    let key = decode(key.trim())?;
    if key.is_empty() {
        return Err(EntryError::EmptyKey);
    }
    Ok((key, decode(value.trim())?))
}

/// RFC 3986 percent-decoding (`+` stays `+`). Unlike the baggage propagator,
/// bad input is an error rather than replaced: a configuration value is
/// typed by a person, and silently altering it would hide the mistake.
fn decode(s: &str) -> Result<String, EntryError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let Some(&[hi, lo]) = bytes.get(i + 1..i + 3) else {
                return Err(EntryError::BadEscape);
            };
            let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
                return Err(EntryError::BadEscape);
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| EntryError::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Whether `s` is an RFC 9110 token, the grammar of header names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `list` with every value replaced by `***`, for messages about header
/// variables. An entry whose key is not a valid header name is replaced
/// whole, because then the "key" may itself be a pasted credential.
pub(crate) fn redact(list: &str) -> String {
    list.split(',')
        .map(|entry| match entry.split_once('=') {
            Some((key, _)) if is_token(key.trim()) => format!("{}=***", key.trim()),
            _ if entry.trim().is_empty() => String::new(),
            _ => "***".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let rows = [
            ("plain", Ok("plain")),
            ("a%20b", Ok("a b")),
            ("%2C%3d", Ok(",=")),
            ("a+b", Ok("a+b")),
            ("%E2%9C%93", Ok("\u{2713}")),
            ("100%", Err(EntryError::BadEscape)),
            ("%4", Err(EntryError::BadEscape)),
            ("%zz", Err(EntryError::BadEscape)),
            ("%FF", Err(EntryError::NotUtf8)),
        ];
        for (input, want) in rows {
            assert_eq!(decode(input).as_deref(), want.as_deref(), "{input}");
        }
    }

    #[test]
    fn redact_table() {
        let rows = [
            ("api-key=secret", "api-key=***"),
            ("a=1, b = 2", "a=***,b=***"),
            ("Authorization: Bearer x=", "***"),
            ("token", "***"),
            ("a=1,", "a=***,"),
        ];
        for (input, want) in rows {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
