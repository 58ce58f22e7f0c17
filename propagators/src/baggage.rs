//! W3C Baggage propagator (the W3C Baggage specification).
//!
//! Written here because `opentelemetry_sdk` 0.33's `BaggagePropagator` is not
//! stable across hops: it does not re-encode `%` (`k=%252541` decays to `A`
//! after three hops), re-emits decoded properties raw (`;p%2Cadmin%3Dtrue`
//! becomes a new `admin=true` entry at the next hop), reads only the first
//! `baggage` line and drops a whole header above 8192 bytes.

mod grammar;

use std::sync::LazyLock;

use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::{Context, Key, StringValue};

use crate::report::{DropReason, Dropped, Propagator, text_map_propagator};
use crate::{carrier, percent};

const HEADER: &str = "baggage";
const HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);
static FIELDS: LazyLock<[String; 1]> = LazyLock::new(|| [HEADER.to_owned()]);

/// §3.3.2: at least 64 list-members must be propagated. OpenTelemetry's
/// `Baggage` holds at most 64 (it silently refuses more), so this is also our
/// ceiling.
const MAX_MEMBERS: usize = 64;
/// §3.3.2: a baggage-string of at least 8192 bytes must be propagated.
/// `Baggage` refuses entries once key + value + metadata lengths exceed 8192;
/// a member as counted here is always longer than that sum, so `Baggage`
/// never refuses what this limit lets through.
const MAX_BYTES: usize = 8192;
/// Input looked at, at most: room for OWS and redundant escapes (`%41` for
/// `A`) in a header whose canonical form fits [`MAX_BYTES`], while bounding
/// the work a hostile header can cause.
const MAX_INPUT: usize = 4 * MAX_BYTES;

/// Propagates OpenTelemetry [`Baggage`] in the W3C `baggage` header, exactly as
/// the specification says, and byte-identically across any number of hops.
///
/// Entries are read into and written from the context's [`Baggage`]
/// ([`BaggageExt`]), so applications and the SDK use the normal API.
///
/// - **Values** are percent-decoded on extract (`+` stays `+`, invalid UTF-8
///   becomes U+FFFD) and encoded on inject, `%` included.
/// - **Properties** (`;p`, `;p=v`) are kept as the entry's `BaggageMetadata` in a
///   canonical form: `;`-separated, no whitespace, values percent-encoded, e.g.
///   `p;q=a%2Cb`. Metadata set by the application is read in that same form (a
///   leading `;` is allowed); it is validated and re-canonicalized on inject.
/// - **Duplicate keys**: `Baggage` holds one value per key; the last one wins
///   and the earlier ones are reported as duplicates.
/// - **Limits** (§3.3.2): 64 members and 8192 bytes as sent on; members beyond
///   them, and malformed members, are dropped alone and reported through
///   [`Propagator`]. Input beyond 32 KiB is not looked at.
/// - **Inject** sorts entries by key (`Baggage` is a `HashMap`), and never
///   sends an empty header.
///
/// ```
/// use baton_propagators::{BaggagePropagator, HeaderCarrier, HeaderCarrierMut};
/// use opentelemetry::baggage::BaggageExt;
/// use opentelemetry::propagation::TextMapPropagator;
///
/// let mut incoming = http::HeaderMap::new();
/// incoming.append("baggage", "userId=Am%C3%A9lie;p%2Cadmin%3Dtrue".parse().unwrap());
/// incoming.append("baggage", "serverNode = DF%2028".parse().unwrap());
///
/// let propagator = BaggagePropagator::default();
/// let cx = propagator.extract(&HeaderCarrier(&incoming));
/// assert_eq!(cx.baggage().get("userId").unwrap().as_str(), "Amélie");
/// assert_eq!(cx.baggage().get("serverNode").unwrap().as_str(), "DF 28");
///
/// let mut outgoing = http::HeaderMap::new();
/// propagator.inject_context(&cx, &mut HeaderCarrierMut(&mut outgoing));
/// assert_eq!(
///     outgoing["baggage"],
///     "serverNode=DF%2028,userId=Am%C3%A9lie;p%2Cadmin%3Dtrue"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BaggagePropagator;

impl BaggagePropagator {
    /// A baggage propagator.
    pub const fn new() -> Self {
        BaggagePropagator
    }

    /// `properties` (a member's `;`-separated property list, without the
    /// leading `;`, e.g. `ttl=60;internal`) in the form this propagator
    /// sends; `None` if a property is not `key` or `key=value` as W3C
    /// Baggage §3.3.1 (`property`) defines them.
    ///
    /// ```
    /// use baton_propagators::BaggagePropagator;
    ///
    /// assert_eq!(BaggagePropagator::properties("ttl = 60").as_deref(), Some("ttl=60"));
    /// assert_eq!(BaggagePropagator::properties("bad key=1"), None);
    /// ```
    #[must_use]
    pub fn properties(properties: &str) -> Option<String> {
        let mut out = String::new();
        grammar::write_properties(properties, &mut out).then_some(out)
    }
}

impl Propagator for BaggagePropagator {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        let Some(header) = carrier::combined(extractor, HEADER) else {
            return cx.clone();
        };
        let baggage = parse(&header, dropped);
        // A header without a single valid member is treated as absent.
        if baggage.is_empty() {
            cx.clone()
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn extract_from_header_map(
        &self,
        cx: &Context,
        headers: &http::HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        // Most requests carry no baggage: a lookup by a prebuilt name spares
        // parsing the name out of a `&str` for each of them.
        if !headers.contains_key(HEADER_NAME) {
            return cx.clone();
        }
        self.extract_reporting(cx, &carrier::HeaderCarrier(headers), dropped)
    }

    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        dropped: &mut Vec<Dropped>,
    ) {
        let baggage = cx.baggage();
        if baggage.is_empty() {
            return;
        }
        // `Baggage` iterates in a per-instance random order; sorting by key
        // makes the header byte-identical at every hop. Comparing the first
        // eight bytes as an integer first spares most `memcmp` calls.
        let mut entries: Vec<_> = baggage.iter().map(|e| (prefix(e.0.as_str()), e)).collect();
        entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.0.as_str().cmp(b.1.0.as_str()))
        });
        let mut header = String::with_capacity(MAX_BYTES.min(256 * entries.len()));
        let mut kept = 0;
        for (_, (key, (value, metadata))) in entries {
            let key = key.as_str();
            match write_member(&mut header, kept, key, value.as_str(), metadata.as_str()) {
                Ok(()) => kept += 1,
                Err(reason) => {
                    let key = if grammar::is_token(key) { key } else { "" };
                    dropped.push(Dropped::new(HEADER, key, reason));
                }
            }
        }
        if !header.is_empty() {
            injector.set(HEADER, header);
        }
    }

    fn field_names(&self) -> &[String] {
        &*FIELDS
    }
}

text_map_propagator!(BaggagePropagator);

/// The first eight bytes of `key`, zero-padded, as a big-endian integer: it
/// orders keys as their bytes do, ties aside.
fn prefix(key: &str) -> u64 {
    let mut bytes = [0; 8];
    for (to, from) in bytes.iter_mut().zip(key.bytes()) {
        *to = from;
    }
    u64::from_be_bytes(bytes)
}

/// Parses a (combined) `baggage` header, keeping every valid member that fits
/// the limits and reporting the others.
fn parse(header: &str, dropped: &mut Vec<Dropped>) -> Baggage {
    let header = within_input_limit(header, dropped);
    let mut baggage = Baggage::new();
    // Bytes the kept members take when injected, commas included.
    let mut size = 0;
    let mut properties = String::new();
    for raw in header.split(',') {
        // An empty list element (`a=1,,b=2`, a trailing comma) holds no entry.
        if grammar::trim_ows(raw).is_empty() {
            continue;
        }
        properties.clear();
        let member = match grammar::parse_member(raw, &mut properties) {
            Ok(member) => member,
            Err(e) => {
                dropped.push(Dropped::new(HEADER, e.key, DropReason::Malformed));
                continue;
            }
        };
        // §3.3.1.1 allows duplicate keys and §3.5 leaves deduplication to us;
        // `Baggage` keeps one value per key, and the last one wins.
        let old = baggage
            .get_with_metadata(member.key)
            .map(|(value, metadata)| member_len(member.key, value.as_str(), metadata.as_str()));
        let resized = match old {
            Some(old) => size - old + member.len,
            None if baggage.len() == MAX_MEMBERS => {
                dropped.push(Dropped::new(HEADER, member.key, DropReason::TooMany));
                continue;
            }
            None => size + usize::from(!baggage.is_empty()) + member.len,
        };
        if resized > MAX_BYTES {
            dropped.push(Dropped::new(HEADER, member.key, DropReason::TooLong));
            continue;
        }
        if old.is_some() {
            dropped.push(Dropped::new(HEADER, member.key, DropReason::Duplicate));
        }
        size = resized;
        let metadata = properties.get(member.properties).unwrap_or_default();
        baggage.insert_with_metadata(
            Key::from(member.key.to_owned()),
            StringValue::from(member.value.into_owned()),
            metadata,
        );
    }
    baggage
}

/// The length of a kept member as injected; its metadata is already canonical.
fn member_len(key: &str, value: &str, metadata: &str) -> usize {
    let properties = if metadata.is_empty() {
        0
    } else {
        1 + metadata.len()
    };
    key.len() + 1 + percent::encoded_len(value) + properties
}

/// The part of `header` that is parsed: all of it up to [`MAX_INPUT`] bytes,
/// otherwise the members that end within [`MAX_INPUT`] (§3.3.2: no partial
/// list-member is propagated), reporting the rest once.
fn within_input_limit<'a>(header: &'a str, dropped: &mut Vec<Dropped>) -> &'a str {
    let Some(window) = header.as_bytes().get(..=MAX_INPUT) else {
        return header;
    };
    dropped.push(Dropped::new(HEADER, "", DropReason::TooLong));
    let cut = window.iter().rposition(|&b| b == b',').unwrap_or(0);
    header.get(..cut).unwrap_or_default()
}

/// Appends `key=value;properties` to `header` (after a comma if it is not
/// empty), or leaves `header` unchanged and says why the entry is dropped.
fn write_member(
    header: &mut String,
    kept: usize,
    key: &str,
    value: &str,
    metadata: &str,
) -> Result<(), DropReason> {
    // OpenTelemetry 0.33 already refuses non-token keys; checked again because
    // nothing the next hop must reject may go out, whatever OTel accepts.
    if !grammar::is_token(key) {
        return Err(DropReason::Malformed);
    }
    if kept == MAX_MEMBERS {
        return Err(DropReason::TooMany);
    }
    // Encoding never shortens a value: refuse huge ones before encoding them.
    if key.len() + value.len() >= MAX_BYTES || metadata.len() > MAX_INPUT {
        return Err(DropReason::TooLong);
    }
    let start = header.len();
    if start > 0 {
        header.push(',');
    }
    header.push_str(key);
    header.push('=');
    percent::encode_into(value, header);
    // OTel's own docs write metadata both with and without a leading `;`.
    let metadata = grammar::trim_ows(metadata);
    let metadata = metadata.strip_prefix(';').unwrap_or(metadata);
    if !metadata.is_empty() {
        header.push(';');
        if !grammar::write_properties(metadata, header) {
            header.truncate(start);
            return Err(DropReason::Malformed);
        }
    }
    if header.len() > MAX_BYTES {
        header.truncate(start);
        return Err(DropReason::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_member_refuses_what_the_next_hop_must_reject() {
        // (key, value, metadata, expected, why)
        let rows = [
            ("k", "v", "", Ok("k=v"), "plain"),
            (
                "k",
                "a,b;c\r\n",
                "",
                Ok("k=a%2Cb%3Bc%0D%0A"),
                "§3.3.1.3: values are encoded",
            ),
            (
                "k",
                "v",
                ";p ; q=1",
                Ok("k=v;p;q=1"),
                "metadata is canonicalized",
            ),
            (
                "k\r\n",
                "v",
                "",
                Err(DropReason::Malformed),
                "key must be a token",
            ),
            (
                "",
                "v",
                "",
                Err(DropReason::Malformed),
                "key must be a token",
            ),
            (
                "k",
                "v",
                "p,admin=true",
                Err(DropReason::Malformed),
                "comma in metadata",
            ),
            (
                "k",
                "v",
                "p=\0",
                Err(DropReason::Malformed),
                "NUL in metadata",
            ),
        ];
        for (key, value, metadata, expected, why) in rows {
            let mut header = String::new();
            let got = write_member(&mut header, 0, key, value, metadata).map(|()| header.as_str());
            assert_eq!(got, expected, "{why}");
        }
    }

    #[test]
    fn write_member_leaves_the_header_unchanged_on_drop() {
        let mut header = String::from("a=1");
        let long = "x".repeat(MAX_BYTES - 4); // "a=1,b=" + long is 8194 bytes
        assert_eq!(
            write_member(&mut header, 1, "b", &long, ""),
            Err(DropReason::TooLong)
        );
        assert_eq!(
            write_member(&mut header, 1, "b", "v", "p;"),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            write_member(&mut header, MAX_MEMBERS, "b", "v", ""),
            Err(DropReason::TooMany)
        );
        assert_eq!(header, "a=1");
    }

    #[test]
    fn input_beyond_the_bound_is_cut_at_a_comma() {
        let member = "k=".to_owned() + &"v".repeat(98);
        let header = vec![member.as_str(); MAX_INPUT / 100 + 5].join(",");
        let mut dropped = Vec::new();
        let kept = within_input_limit(&header, &mut dropped);
        assert!(kept.len() <= MAX_INPUT && kept.ends_with(&member));
        assert_eq!(dropped, [Dropped::new(HEADER, "", DropReason::TooLong)]);
        let single = "k=".to_owned() + &"v".repeat(MAX_INPUT);
        assert_eq!(within_input_limit(&single, &mut dropped), "");
    }
}
