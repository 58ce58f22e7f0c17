//! W3C Baggage propagator tests, written from the specification
//! (the W3C Baggage specification, section numbers as in the 2024 drafts).

// A panicking unwrap is how a test reports failure.
#![allow(clippy::unwrap_used)]

use baton_propagators::{
    BaggagePropagator, DropReason, Dropped, HeaderCarrier, HeaderCarrierMut, Propagator,
};
use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::{Context, StringValue};
use proptest::prelude::*;

use DropReason::{Duplicate, Malformed, TooLong, TooMany};

fn headers<B: AsRef<[u8]>>(lines: &[B]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line.as_ref()) {
            map.append("baggage", v);
        }
    }
    map
}

fn extract<B: AsRef<[u8]>>(lines: &[B]) -> (Context, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let map = headers(lines);
    let cx =
        BaggagePropagator.extract_reporting(&Context::new(), &HeaderCarrier(&map), &mut dropped);
    (cx, dropped)
}

fn inject(cx: &Context) -> (Option<String>, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let mut map = HeaderMap::new();
    BaggagePropagator.inject_reporting(cx, &mut HeaderCarrierMut(&mut map), &mut dropped);
    assert!(map.get_all("baggage").iter().count() <= 1);
    let header = map.get("baggage").map(|v| v.to_str().unwrap().to_owned());
    (header, dropped)
}

/// `(key, value, metadata)`, sorted by key.
fn entries(cx: &Context) -> Vec<(String, String, String)> {
    let mut entries: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
        .collect();
    entries.sort();
    entries
}

fn drops(dropped: &[Dropped]) -> Vec<(&str, DropReason)> {
    dropped.iter().map(|d| (d.key.as_str(), d.reason)).collect()
}

fn hop(header: &str) -> String {
    let (cx, dropped) = extract(&[header]);
    assert_eq!(dropped, [], "{header:?}");
    inject(&cx).0.unwrap_or_default()
}

type Row = (
    &'static [&'static str],
    &'static [(&'static str, &'static str, &'static str)],
    &'static [(&'static str, DropReason)],
    &'static str,
);

#[rustfmt::skip]
const EXTRACT: &[Row] = &[
    // (header lines, entries (key, value, metadata), drops, why)
    (&["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"],
     &[("key1", "value1", "property1;property2"), ("key2", "value2", ""), ("key3", "value3", "propertyKey=propertyValue")], &[],
     "§3.3.3 example: 3 list-members, properties kept, OWS trimmed"),
    (&["userId=alice,serverNode=DF%2028,isProduction=false"],
     &[("isProduction", "false", ""), ("serverNode", "DF 28", ""), ("userId", "alice", "")], &[],
     "§3.4 single header"),
    (&["userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false"],
     &[("isProduction", "false", ""), ("serverNode", "DF 28", ""), ("userId", "Amélie", "")], &[],
     "§3.4 values outside baggage-octet are percent-encoded UTF-8"),
    (&["userId=alice", "serverNode=DF%2028,isProduction=false"],
     &[("isProduction", "false", ""), ("serverNode", "DF 28", ""), ("userId", "alice", "")], &[],
     "§3.4 context split into multiple headers"),
    (&["userId =   alice", "serverNode = DF%2028, isProduction = false"],
     &[("isProduction", "false", ""), ("serverNode", "DF 28", ""), ("userId", "alice", "")], &[],
     "§3.4 values and names might begin and end with spaces"),
    (&["k=\tv\t ;\tp\t"], &[("k", "v", "p")], &[], "§3.3.1 OWS is SP / HTAB"),
    (&["k=a=b==", "l==c"], &[("k", "a=b==", ""), ("l", "=c", "")], &[],
     "§3.3.1.3 value MAY contain any number of ="),
    (&["k=a+b"], &[("k", "a+b", "")], &[], "§3.3.1.3 percent-encoding per RFC 3986: + is not a space"),
    (&["k=%FF%C3"], &[("k", "\u{FFFD}\u{FFFD}", "")], &[], "§3.3.1.3 non-UTF-8 sequences become U+FFFD"),
    (&["k=%252541"], &[("k", "%2541", "")], &[], "§3.3.1.3 decoded exactly once"),
    (&["k=100%"], &[("k", "100%", "")], &[], "% is a baggage-octet; a lone % stays literal"),
    (&["k="], &[("k", "", "")], &[], "§3.3.1 value = *baggage-octet may be empty"),
    (&["k%!#$&'*+-.^_`|~=1"], &[("k%!#$&'*+-.^_`|~", "1", "")], &[], "§3.3.1.2 key is any token, never decoded"),
    (&["k=v;p=%41;q=a%2Cb"], &[("k", "v", "p=A;q=a%2Cb")], &[], "§3.3.1.4 property values canonical, still encoded"),
    (&["k=v;p%2Cadmin%3Dtrue"], &[("k", "v", "p%2Cadmin%3Dtrue")], &[], "§3.3.1.4 a token property key, kept verbatim"),
    (&[",a=1,, ,b=2,"], &[("a", "1", ""), ("b", "2", "")], &[], "empty list elements hold no entry"),
    (&["a=1", "", "b=2"], &[("a", "1", ""), ("b", "2", "")], &[], "§3: an empty line combines to an empty element"),
    (&["k=1,k=2;p"], &[("k", "2", "p")], &[("k", Duplicate)], "§3.3.1.1/§3.5 duplicates: the last wins"),
    // Malformed members are dropped alone (§3.5), reporting the key only when it is a token.
    (&["a=1,novalue,c=3"], &[("a", "1", ""), ("c", "3", "")], &[("", Malformed)], "§3.3.1 list-member needs ="),
    (&["=v,a=1"], &[("a", "1", "")], &[("", Malformed)], "§3.3.1.2 key is a non-empty token"),
    (&["k k=v,a=1"], &[("a", "1", "")], &[("", Malformed)], "§3.3.1.2 no space inside a key"),
    (&["k(=v,a=1"], &[("a", "1", "")], &[("", Malformed)], "§3.3.1.2 ( is a delimiter, not a tchar"),
    (&["k=a b,a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 space is not a baggage-octet"),
    (&["k=\"v\",a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 DQUOTE is not a baggage-octet"),
    (&["k=a\\b,a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 backslash is not a baggage-octet"),
    (&["k=v;,a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 a property is not empty"),
    (&["k=v;p=a b,a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 property value is *baggage-octet"),
    (&["k=v;=x,a=1"], &[("a", "1", "")], &[("k", Malformed)], "§3.3.1 property key is a token"),
];

#[test]
fn extract_table() {
    for (lines, expected, expected_drops, why) in EXTRACT {
        let (cx, dropped) = extract(lines);
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v, m)| (k.to_string(), v.to_string(), m.to_string()))
            .collect();
        assert_eq!(entries(&cx), expected, "{lines:?}: {why}");
        assert_eq!(drops(&dropped), *expected_drops, "{lines:?}: {why}");
    }
}

#[test]
fn non_header_carriers_get_the_same_checks() {
    // A `HeaderMap` never yields control or non-ASCII bytes; other extractors can.
    for (raw, drop) in [
        ("k=v\x0b", ("k", Malformed)),
        ("k=é", ("k", Malformed)),
        ("ké=v", ("", Malformed)),
    ] {
        let carrier =
            std::collections::HashMap::from([("baggage".to_owned(), format!("{raw},a=1"))]);
        let mut dropped = Vec::new();
        let cx = BaggagePropagator.extract_reporting(&Context::new(), &carrier, &mut dropped);
        assert_eq!(
            entries(&cx),
            [("a".to_owned(), "1".to_owned(), String::new())],
            "{raw:?}"
        );
        assert_eq!(drops(&dropped), [drop], "{raw:?}");
    }
}

#[test]
fn absent_or_wholly_malformed_header_leaves_the_context_alone() {
    let cx = Context::new().with_baggage([opentelemetry::KeyValue::new("mine", "1")]);
    let cases: [&[&str]; 3] = [&[], &["garbage"], &["a b c", ";;;"]];
    for lines in cases {
        let map = headers(lines);
        let got = BaggagePropagator.extract_with_context(&cx, &HeaderCarrier(&map));
        assert_eq!(entries(&got), entries(&cx), "{lines:?}");
    }
}

#[test]
fn limits_64_members() {
    // §3.3.2 condition 1: 64 list-members MUST be propagated; beyond, members MAY be dropped.
    let header: Vec<String> = (0..70).map(|i| format!("k{i:02}=v")).collect();
    let (cx, dropped) = extract(&[header.join(",")]);
    assert_eq!(cx.baggage().len(), 64);
    let expected: Vec<_> = (64..70).map(|i| (format!("k{i:02}"), TooMany)).collect();
    let got: Vec<_> = dropped.iter().map(|d| (d.key.clone(), d.reason)).collect();
    assert_eq!(got, expected);
    // And all 64 go on.
    let (out, dropped) = inject(&cx);
    assert_eq!((out.unwrap(), dropped), (header[..64].join(","), vec![]));
}

#[test]
fn limits_8192_bytes() {
    // §3.3.2 condition 2: a baggage-string of 8192 bytes MUST be propagated.
    let big = |n: usize, key: &str| format!("{key}={}", "v".repeat(n - key.len() - 1));
    let header = [big(4096, "a"), big(4095, "b")].join(","); // 8192 bytes with the comma
    assert_eq!(header.len(), 8192);
    let (cx, dropped) = extract(&[&header]);
    assert_eq!((cx.baggage().len(), dropped), (2, vec![]));
    assert_eq!(inject(&cx), (Some(header), vec![]));

    // One byte more: the member that does not fit is dropped alone (never a partial
    // member), and a later one that fits is still kept.
    let (cx, dropped) = extract(&[[big(4096, "a"), big(4096, "b"), "c=1".to_owned()].join(",")]);
    assert_eq!(drops(&dropped), [("b", TooLong)]);
    assert_eq!(
        entries(&cx)
            .iter()
            .map(|e| e.0.as_str())
            .collect::<Vec<_>>(),
        ["a", "c"]
    );
}

#[test]
fn limits_count_what_is_sent_on_not_what_came_in() {
    // `%FF` (3 bytes) is sent on as `%EF%BF%BD` (9 bytes): 8192 bytes of input
    // would not fit once canonical, so the limit is checked on the output.
    let header = format!("k={}", "%FF".repeat(2730));
    let (cx, dropped) = extract(&[&header]);
    assert_eq!(
        (cx.baggage().len(), drops(&dropped)),
        (0, vec![("k", TooLong)])
    );
    // OWS and redundant escapes take no room in what is sent on.
    let header = format!("k = {} ", "%41".repeat(8000));
    let (cx, dropped) = extract(&[&header]);
    assert_eq!((cx.baggage().len(), dropped), (1, vec![]));
}

#[test]
fn hostile_input_is_bounded() {
    let header = "a=1,".repeat(1 << 16); // 256 KiB
    let (cx, dropped) = extract(&[&header]);
    assert_eq!(cx.baggage().len(), 1);
    assert!(dropped.len() < 9000, "{}", dropped.len());
    assert_eq!(dropped.first(), Some(&Dropped::new("baggage", "", TooLong)));
}

#[test]
fn otel_baggage_limits_equal_the_spec_minimums() {
    // OTel's `Baggage` silently refuses a 65th entry: exactly the spec's minimum,
    // so the propagator keeps 64 and reports the rest itself.
    let mut b = Baggage::new();
    for i in 0..65 {
        b.insert(format!("k{i}"), "v");
    }
    assert_eq!(b.len(), 64);
}

/// (entries set through the OTel API, header sent, drops, why)
type InjectRow = (
    &'static [(&'static str, &'static str, &'static str)],
    Option<&'static str>,
    &'static [(&'static str, DropReason)],
    &'static str,
);

#[test]
fn inject_table() {
    #[rustfmt::skip]
    let rows: &[InjectRow] = &[
        (&[("b", "2", ""), ("a", "1", "")], Some("a=1,b=2"), &[], "sorted by key: byte-stable output"),
        (&[("k", "DF 28", "")], Some("k=DF%2028"), &[], "§3.4 example: space is encoded"),
        (&[("k", "Amélie", "")], Some("k=Am%C3%A9lie"), &[], "§3.4 example: UTF-8 is encoded"),
        (&[("k", "100%", "")], Some("k=100%25"), &[], "§3.3.1.3 the percent code point MUST be encoded"),
        (&[("k", "a,b;c=\"d\\e", "")], Some("k=a%2Cb%3Bc=%22d%5Ce"), &[], "§3.3.1 delimiters are encoded"),
        (&[("k", "\r\n\0", "")], Some("k=%0D%0A%00"), &[], "control characters never reach the wire"),
        (&[("k", "v", "red;state=on")], Some("k=v;red;state=on"), &[], "OTel's documented metadata form"),
        (&[("k", "v", ";k1=v1;k2")], Some("k=v;k1=v1;k2"), &[], "OTel's other documented form, with a leading ;"),
        (&[("k", "v", " p = a%2cb ; q ")], Some("k=v;p=a%2Cb;q"), &[], "metadata is canonicalized"),
        (&[("a", "1", "p,admin=true"), ("b", "2", "")], Some("b=2"), &[("a", Malformed)], "a comma in metadata would make an entry"),
        (&[("a", "1", "p=\r\nx: y"), ("b", "2", "")], Some("b=2"), &[("a", Malformed)], "CR LF in metadata"),
        (&[("a", "1", "p=a b")], None, &[("a", Malformed)], "metadata is wire form; never an empty header"),
    ];
    for (set, expected, expected_drops, why) in rows {
        let mut baggage = Baggage::new();
        for (k, v, m) in *set {
            baggage.insert_with_metadata(k.to_string(), StringValue::from(v.to_string()), *m);
        }
        let (header, dropped) = inject(&Context::new().with_baggage(baggage));
        assert_eq!(header.as_deref(), *expected, "{why}");
        assert_eq!(drops(&dropped), *expected_drops, "{why}");
    }
}

#[test]
fn inject_drops_what_does_not_fit_once_encoded() {
    // OTel counts decoded bytes (3000 here); encoded it is 9002 bytes.
    let cx = Context::new().with_baggage([opentelemetry::KeyValue::new("k", " ".repeat(3000))]);
    assert_eq!(
        inject(&cx),
        (None, vec![Dropped::new("baggage", "k", TooLong)])
    );
    assert_eq!(inject(&Context::new()), (None, vec![]));
}

#[test]
fn upstream_decay_cases_are_stable_over_five_hops() {
    // opentelemetry_sdk 0.33 turns `k=%252541` into `A` after three hops, and the
    // property into a new `admin=true` entry at the next hop.
    // (input, canonical form sent on, why)
    let rows = [
        (
            "k=%252541",
            "k=%252541",
            "§3.3.1.3: % MUST be encoded, so it is never decoded twice",
        ),
        (
            "k=v;p%2Cadmin%3Dtrue",
            "k=v;p%2Cadmin%3Dtrue",
            "§3.3.1.4: a token property key, kept verbatim",
        ),
        (
            "k=v;p=a%2Cadmin%3Dtrue",
            "k=v;p=a%2Cadmin=true",
            "§3.3.1.4: a property value; = needs no encoding",
        ),
    ];
    for (header, canonical, why) in rows {
        let mut h = header.to_owned();
        for _ in 0..5 {
            h = hop(&h);
            assert_eq!(h, canonical, "{why}");
        }
        let (cx, _) = extract(&[&h]);
        assert_eq!(
            cx.baggage().len(),
            1,
            "{header}: the property stays a property"
        );
    }
    assert_eq!(entries(&extract(&["k=%252541"]).0)[0].1, "%2541");
}

#[test]
fn upstream_really_decays() {
    // Documents why this propagator exists; fails if the pinned upstream is fixed.
    let upstream = opentelemetry_sdk::propagation::BaggagePropagator::new();
    let mut h = "k=%252541".to_owned();
    for _ in 0..3 {
        let map = headers(&[&h]);
        let cx = upstream.extract(&HeaderCarrier(&map));
        let mut out = HeaderMap::new();
        upstream.inject_context(&cx, &mut HeaderCarrierMut(&mut out));
        h = out["baggage"].to_str().unwrap().to_owned();
    }
    assert_eq!(h, "k=A");
}

#[test]
fn text_map_propagator_fields() {
    assert_eq!(BaggagePropagator.fields().collect::<Vec<_>>(), ["baggage"]);
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

/// A property value in wire form: any baggage-octets, `%` included.
fn wire_value() -> impl Strategy<Value = String> {
    "[!#-+\\--:<-\\[\\]-~]{0,10}"
}

fn properties() -> impl Strategy<Value = String> {
    prop::collection::vec((token(), prop::option::of(wire_value())), 0..4).prop_map(|ps| {
        ps.into_iter()
            .map(|(k, v)| v.map_or(k.clone(), |v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(";")
    })
}

/// Every byte of an injected header is a visible ASCII byte: no CR, LF, NUL,
/// space or DEL, and nothing a header value may not hold.
fn assert_valid_output(header: &str) {
    assert!(!header.is_empty());
    assert!(
        header.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{header:?}"
    );
    assert!(HeaderValue::from_str(header).is_ok());
}

proptest! {
    #[test]
    fn application_baggage_round_trips_byte_identically_over_five_hops(
        set in prop::collection::vec((token(), "(?s).{0,24}", properties()), 0..8)
    ) {
        let mut baggage = Baggage::new();
        for (k, v, m) in &set {
            baggage.insert_with_metadata(k.clone(), StringValue::from(v.clone()), m.as_str());
        }
        let cx = Context::new().with_baggage(baggage);
        let (first, dropped) = inject(&cx);
        prop_assert_eq!(dropped, vec![]);
        prop_assert_eq!(first.is_some(), !cx.baggage().is_empty());
        let Some(first) = first else { return Ok(()) };
        assert_valid_output(&first);

        // Values come back exactly; metadata comes back canonical (identical when it was).
        let (hop1, dropped) = extract(&[&first]);
        prop_assert_eq!(dropped, vec![]);
        let mut original = entries(&cx);
        let mut extracted = entries(&hop1);
        for (o, e) in original.iter_mut().zip(&mut extracted) {
            if !o.2.contains('%') {
                prop_assert_eq!(&o.2, &e.2);
            }
            o.2.clear();
            e.2.clear();
        }
        prop_assert_eq!(original, extracted);

        let mut h = first.clone();
        for _ in 0..5 {
            h = hop(&h);
            prop_assert_eq!(&h, &first);
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_output_is_valid_and_stable(
        lines in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[a-c0-9=;,% \t\"\\\\%+]{0,48}".prop_map(String::into_bytes),
        ], 0..4)
    ) {
        let (cx, _) = extract(&lines);
        let (out, dropped) = inject(&cx);
        prop_assert_eq!(dropped, vec![], "what was extracted can always be sent on");
        prop_assert_eq!(out.is_some(), !cx.baggage().is_empty());
        if let Some(out) = out {
            assert_valid_output(&out);
            let (again, dropped) = extract(&[&out]);
            prop_assert_eq!(dropped, vec![], "output always re-parses");
            prop_assert_eq!(entries(&again), entries(&cx));
            prop_assert_eq!(hop(&out), out);
        }
    }

    #[test]
    fn arbitrary_application_values_never_produce_an_invalid_header(
        set in prop::collection::vec((token(), any::<String>(), any::<String>()), 0..6)
    ) {
        let mut baggage = Baggage::new();
        for (k, v, m) in &set {
            baggage.insert_with_metadata(k.clone(), StringValue::from(v.clone()), m.as_str());
        }
        let cx = Context::new().with_baggage(baggage);
        let (out, refused) = inject(&cx);
        prop_assert!(refused.iter().all(|d| d.reason == Malformed), "{:?}", refused);
        prop_assert_eq!(out.is_some(), refused.len() < cx.baggage().len());
        if let Some(out) = &out {
            assert_valid_output(out);
            let (again, dropped) = extract(&[out]);
            prop_assert_eq!(dropped, vec![]);
            prop_assert_eq!(again.baggage().len(), cx.baggage().len() - refused.len());
        }
    }
}
