//! W3C Trace Context Level 2 conformance of `TraceContextPropagator`.
//!
//! Table rows are `(input, expected, why)`. Rows named `test_*` port the
//! official test suite (`w3c/trace-context`, `test/test.py` at commit
//! `e06b326492f25b21c41a26e68fd5b0ca7c97a301`, default `STRICT_LEVEL` 2), one
//! row per request it sends; `#anchor` rows cite the section of
//! the W3C Trace Context Level 2 specification with that anchor. Where that
//! suite predates the current text, the row expects what the current text
//! says and its `why` names both: the older `tenant@system` key grammar
//! (`test_tracestate_key_illegal_vendor_format`,
//! `test_tracestate_key_length_limit`), and duplicated keys
//! (`test_tracestate_duplicated_keys`, which the suite's authors changed to
//! accept a receiver that keeps them, as #mutating-the-tracestate-field now
//! allows).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

use baton_propagators::trace_context::parse_traceparent;
use baton_propagators::{
    DropReason, Dropped, HeaderCarrier, HeaderCarrierMut, Propagator, TraceContextPropagator,
};
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer, TracerProvider,
};
use proptest::prelude::*;

const TRACE_ID: &str = "12345678901234567890123456789012";
/// Header lines in the order they are sent.
type Lines<'a> = Vec<(&'a str, &'a str)>;

/// Header lines and the trace id continued from them.
type TraceparentRow<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);

const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-00";

fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in lines {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, value.parse().unwrap());
    }
    map
}

/// Extracts through `Propagator` with a `HeaderCarrier`, checking that the
/// `HeaderMap` fast path agrees.
fn extract(map: &HeaderMap) -> (Context, Vec<Dropped>) {
    let propagator = TraceContextPropagator::new();
    let mut dropped = Vec::new();
    let cx = propagator.extract_reporting(&Context::new(), &HeaderCarrier(map), &mut dropped);
    let fast = propagator.extract_from_headers(&Context::new(), map);
    assert_eq!(
        fast.span().span_context(),
        cx.span().span_context(),
        "fast path differs"
    );
    (cx, dropped)
}

/// Injects through `Propagator` with a `HeaderCarrierMut`, checking that the
/// `HeaderMap` fast path agrees.
fn inject(cx: &Context) -> (HeaderMap, Vec<Dropped>) {
    let propagator = TraceContextPropagator::new();
    let mut map = HeaderMap::new();
    let mut dropped = Vec::new();
    propagator.inject_reporting(cx, &mut HeaderCarrierMut(&mut map), &mut dropped);
    let mut fast = HeaderMap::new();
    propagator.inject_into_headers(cx, &mut fast);
    assert_eq!(fast, map, "fast path differs");
    (map, dropped)
}

fn value<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    assert!(map.get_all(name).iter().count() <= 1, "{name} sent once");
    map.get(name).map(|v| v.to_str().unwrap())
}

/// The trace id continued from `lines`, if any.
fn continued_trace_id(lines: &[(&str, &str)]) -> Option<String> {
    let (cx, _) = extract(&headers(lines));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format!("{:032x}", sc.trace_id()))
}

/// The `tracestate` sent after receiving `lines`: `None` when none is sent.
fn forwarded_tracestate(lines: &[(&str, &str)]) -> Option<String> {
    let (cx, _) = extract(&headers(lines));
    let (out, dropped) = inject(&cx);
    assert!(dropped.is_empty(), "{dropped:?}");
    value(&out, "tracestate").map(str::to_owned)
}

#[test]
fn traceparent_table() {
    let tid = Some(TRACE_ID);
    #[rustfmt::skip]
    let rows: &[TraceparentRow<'_>] = &[
        (&[], None, "test_both_traceparent_and_tracestate_missing"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_included_tracestate_missing"),
        (&[("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"), ("traceparent", "00-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_duplicated"),
        (&[("trace-parent", "00-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_header_name"),
        (&[("trace.parent", "00-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_header_name"),
        (&[("TraceParent", "00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_header_name_valid_casing"),
        (&[("TrAcEpArEnT", "00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_header_name_valid_casing"),
        (&[("TRACEPARENT", "00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_header_name_valid_casing"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01.")], None, "test_traceparent_version_0x00"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")], None, "test_traceparent_version_0x00"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_version_0xcc"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")], tid, "test_traceparent_version_0xcc"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like")], None, "test_traceparent_version_0xcc"),
        (&[("traceparent", "ff-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_0xff"),
        (&[("traceparent", ".0-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_illegal_characters"),
        (&[("traceparent", "0.-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_illegal_characters"),
        (&[("traceparent", "000-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_too_long"),
        (&[("traceparent", "0000-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_too_long"),
        (&[("traceparent", "0-12345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_version_too_short"),
        (&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")], None, "test_traceparent_trace_id_all_zero"),
        (&[("traceparent", "00-.2345678901234567890123456789012-1234567890123456-01")], None, "test_traceparent_trace_id_illegal_characters"),
        (&[("traceparent", "00-1234567890123456789012345678901.-1234567890123456-01")], None, "test_traceparent_trace_id_illegal_characters"),
        (&[("traceparent", "00-123456789012345678901234567890123-1234567890123456-01")], None, "test_traceparent_trace_id_too_long"),
        (&[("traceparent", "00-1234567890123456789012345678901-1234567890123456-01")], None, "test_traceparent_trace_id_too_short"),
        (&[("traceparent", "00-12345678901234567890123456789012-0000000000000000-01")], None, "test_traceparent_parent_id_all_zero"),
        (&[("traceparent", "00-12345678901234567890123456789012-.234567890123456-01")], None, "test_traceparent_parent_id_illegal_characters"),
        (&[("traceparent", "00-12345678901234567890123456789012-123456789012345.-01")], None, "test_traceparent_parent_id_illegal_characters"),
        (&[("traceparent", "00-12345678901234567890123456789012-12345678901234567-01")], None, "test_traceparent_parent_id_too_long"),
        (&[("traceparent", "00-12345678901234567890123456789012-123456789012345-01")], None, "test_traceparent_parent_id_too_short"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-.0")], None, "test_traceparent_trace_flags_illegal_characters"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-0.")], None, "test_traceparent_trace_flags_illegal_characters"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-001")], None, "test_traceparent_trace_flags_too_long"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-1")], None, "test_traceparent_trace_flags_too_short"),
        (&[("traceparent", " 00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_ows_handling"),
        (&[("traceparent", "\t00-12345678901234567890123456789012-1234567890123456-01")], tid, "test_traceparent_ows_handling"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01 ")], tid, "test_traceparent_ows_handling"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01\t")], tid, "test_traceparent_ows_handling"),
        (&[("traceparent", "\t 00-12345678901234567890123456789012-1234567890123456-01 \t")], tid, "test_traceparent_ows_handling"),
        // From the spec text.
        (&[("traceparent", "0A-12345678901234567890123456789012-1234567890123456-01")], None, "#version: version = 2HEXDIGLC, uppercase is not HEXDIGLC"),
        (&[("traceparent", "00-1234567890ABCDEF1234567890123456-1234567890123456-01")], None, "#trace-id: 32HEXDIGLC, uppercase is not allowed"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890ABCDEF-01")], None, "#parent-id: MUST ignore a parent-id with non-lowercase hex characters"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-0A")], None, "#trace-flags: 2HEXDIGLC"),
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01-")], None, "#version-format: version 00 has exactly four fields"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01-")], tid, "#versioning-of-traceparent: flags followed by a dash"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-1")], None, "#versioning-of-traceparent: shorter than 55 characters restarts the trace"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456")], None, "#versioning-of-traceparent: shorter than 55 characters restarts the trace"),
        (&[("traceparent", "cc-12345678901234567890123456789012.1234567890123456-01")], None, "#versioning-of-traceparent: trace-id MUST be followed by a dash"),
        (&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456.01")], None, "#versioning-of-traceparent: parent-id MUST be followed by a dash"),
        (&[("traceparent", "")], None, "#traceparent-header: an empty value is invalid"),
        (&[("tracestate", "foo=1")], None, "test_tracestate_included_traceparent_missing; #no-traceparent-received"),
    ];
    for &(lines, expected, why) in rows {
        assert_eq!(
            continued_trace_id(lines).as_deref(),
            expected,
            "{why}: {lines:?}"
        );
    }
}

#[test]
fn trace_flags_table() {
    #[rustfmt::skip]
    let rows = [
        ("00-12345678901234567890123456789012-1234567890123456-01", "01", "#sampled-flag"),
        ("00-12345678901234567890123456789012-1234567890123456-02", "02", "#random-trace-id-flag: preserved though not sampled"),
        ("00-12345678901234567890123456789012-1234567890123456-03", "03", "#random-trace-id-flag with #sampled-flag"),
        ("00-12345678901234567890123456789012-1234567890123456-09", "01", "#other-flags: reserved bits MUST be set to zero; #trace-flags: mask, do not compare"),
        ("00-12345678901234567890123456789012-1234567890123456-ff", "03", "#other-flags: all reserved bits cleared, known bits kept"),
        ("00-12345678901234567890123456789012-1234567890123456-fc", "00", "#other-flags: only reserved bits"),
        ("cc-12345678901234567890123456789012-1234567890123456-07-xyz", "03", "#a-traceparent-is-received: unknown flags of a higher version set to 0; downgraded to 00"),
    ];
    for (input, flags, why) in rows {
        let (cx, _) = extract(&headers(&[("traceparent", input)]));
        let (out, _) = inject(&cx);
        let expected = format!("00-{TRACE_ID}-1234567890123456-{flags}");
        assert_eq!(value(&out, "traceparent"), Some(expected.as_str()), "{why}");
    }
}

#[test]
fn tracestate_table() {
    let key_without_vendor = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let key_with_vendor = format!("{key_without_vendor}@a-z0-9_-*/");
    let all_chars: String = (0x20u8..=0x7e)
        .filter(|&b| b != b',' && b != b'=')
        .map(char::from)
        .collect();
    let all_without_vendor = format!("{key_without_vendor}={all_chars}");
    let all_with_vendor = format!("{key_with_vendor}={all_chars}");
    let first_32 = "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10,bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20,bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30,bar31=31,bar32=32";
    let key_256 = format!("{}=1", "z".repeat(256));
    let key_257 = format!("{}=1", "z".repeat(257));
    let foo_key_256 = format!("foo=1,{key_256}");
    let tenant_241 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let foo_tenant_241 = format!("foo=1,{tenant_241}");
    let tenant_242 = format!("{}@v=1", "t".repeat(242));
    let system_15 = format!("t@{}=1", "v".repeat(15));
    let foo_tenant_242 = format!("foo=1,{tenant_242}");
    let foo_system_15 = format!("foo=1,{system_15}");
    let at_key_256 = format!("{}@{}@=1", "t".repeat(200), "v".repeat(54));
    let foo_at_key_256 = format!("foo=1,{at_key_256}");
    let at_key_257 = format!("{}@{}@=1", "t".repeat(200), "v".repeat(55));
    let value_256 = format!("foo={}", "v".repeat(256));
    let value_257 = format!("foo={}", "v".repeat(257));

    #[rustfmt::skip]
    let rows: Vec<(Lines<'_>, Option<&str>, &str)> = vec![
        (vec![("tracestate", "foo=1,bar=2")], Some("foo=1,bar=2"), "test_tracestate_included_traceparent_included"),
        (vec![("trace-state", "foo=1")], None, "test_tracestate_header_name"),
        (vec![("trace.state", "foo=1")], None, "test_tracestate_header_name"),
        (vec![("TraceState", "foo=1")], Some("foo=1"), "test_tracestate_header_name_valid_casing"),
        (vec![("TrAcEsTaTe", "foo=1")], Some("foo=1"), "test_tracestate_header_name_valid_casing"),
        (vec![("TRACESTATE", "foo=1")], Some("foo=1"), "test_tracestate_header_name_valid_casing"),
        (vec![("tracestate", "")], None, "test_tracestate_empty_header: accepted, and not sent (#tracestate-header-field-values: SHOULD avoid sending)"),
        (vec![("tracestate", "foo=1"), ("tracestate", "")], Some("foo=1"), "test_tracestate_empty_header"),
        (vec![("tracestate", ""), ("tracestate", "foo=1")], Some("foo=1"), "test_tracestate_empty_header"),
        (vec![("tracestate", "foo=1,bar=2"), ("tracestate", "rojo=1,congo=2"), ("tracestate", "baz=3")], Some("foo=1,bar=2,rojo=1,congo=2,baz=3"), "test_tracestate_multiple_headers_different_keys"),
        (vec![("tracestate", "foo=1,foo=1")], Some("foo=1,foo=1"), "test_tracestate_duplicated_keys: kept as received (#mutating-the-tracestate-field: only a participant adding a key must not repeat it)"),
        (vec![("tracestate", "foo=1,foo=2")], Some("foo=1,foo=2"), "test_tracestate_duplicated_keys: kept as received, order too"),
        (vec![("tracestate", "foo=1"), ("tracestate", "foo=1")], Some("foo=1,foo=1"), "test_tracestate_duplicated_keys: across lines (#tracestate-header-field-values: combined first)"),
        (vec![("tracestate", "foo=1"), ("tracestate", "foo=2")], Some("foo=1,foo=2"), "test_tracestate_duplicated_keys: across lines"),
        (vec![("tracestate", &all_without_vendor)], Some(&all_without_vendor), "test_tracestate_all_allowed_characters"),
        (vec![("tracestate", &all_with_vendor)], Some(&all_with_vendor), "test_tracestate_all_allowed_characters"),
        (vec![("tracestate", "foo=1 \t , \t bar=2, \t baz=3")], Some("foo=1,bar=2,baz=3"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")], Some("foo=1,bar=2,baz=3"), "test_tracestate_ows_handling"),
        (vec![("tracestate", " foo=1")], Some("foo=1"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "\tfoo=1")], Some("foo=1"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "foo=1 ")], Some("foo=1"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "foo=1\t")], Some("foo=1"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "\t foo=1 \t")], Some("foo=1"), "test_tracestate_ows_handling"),
        (vec![("tracestate", "foo =1")], None, "test_tracestate_key_illegal_characters"),
        (vec![("tracestate", "FOO=1")], None, "test_tracestate_key_illegal_characters"),
        (vec![("tracestate", "foo.bar=1")], None, "test_tracestate_key_illegal_characters"),
        (vec![("tracestate", "foo@=1,bar=2")], Some("foo@=1,bar=2"), "test_tracestate_key_illegal_vendor_format expects a discard by the older grammar; #key: `@` is a keychar, also last"),
        (vec![("tracestate", "@foo=1,bar=2")], None, "test_tracestate_key_illegal_vendor_format; #key: the first character is lcalpha or DIGIT"),
        (vec![("tracestate", "foo@@bar=1,bar=2")], Some("foo@@bar=1,bar=2"), "test_tracestate_key_illegal_vendor_format expects a discard by the older grammar; #key: any number of `@`"),
        (vec![("tracestate", "foo@bar@baz=1,bar=2")], Some("foo@bar@baz=1,bar=2"), "test_tracestate_key_illegal_vendor_format expects a discard by the older grammar; #key: any number of `@`"),
        (vec![("tracestate", &first_32[..89]), ("tracestate", &first_32[90..179]), ("tracestate", &first_32[180..269]), ("tracestate", &first_32[270..])], Some(first_32), "test_tracestate_member_count_limit: 32 members"),
        (vec![("tracestate", &first_32[..89]), ("tracestate", &first_32[90..179]), ("tracestate", &first_32[180..269]), ("tracestate", &first_32[270..]), ("tracestate", "bar33=33")], None, "test_tracestate_member_count_limit: 33 members"),
        (vec![("tracestate", "foo=1"), ("tracestate", &key_256)], Some(&foo_key_256), "test_tracestate_key_length_limit: 256"),
        (vec![("tracestate", "foo=1"), ("tracestate", &key_257)], None, "test_tracestate_key_length_limit: 257"),
        (vec![("tracestate", "foo=1"), ("tracestate", &tenant_241)], Some(&foo_tenant_241), "test_tracestate_key_length_limit: tenant 241, system 14"),
        (vec![("tracestate", "foo=1"), ("tracestate", &tenant_242)], Some(&foo_tenant_242), "test_tracestate_key_length_limit expects a discard by the older grammar (tenant 242); #key: 245 characters, within 256"),
        (vec![("tracestate", "foo=1"), ("tracestate", &system_15)], Some(&foo_system_15), "test_tracestate_key_length_limit expects a discard by the older grammar (system 15); #key: 17 characters, within 256"),
        (vec![("tracestate", "foo=1"), ("tracestate", &at_key_256)], Some(&foo_at_key_256), "#key: 256 characters with `@`s"),
        (vec![("tracestate", "foo=1"), ("tracestate", &at_key_257)], None, "#key: 257 characters with `@`s, whole header discarded"),
        (vec![("tracestate", "foo=bar=baz")], None, "test_tracestate_value_illegal_characters"),
        (vec![("tracestate", "foo=,bar=3")], None, "test_tracestate_value_illegal_characters"),
        // From the spec text.
        (vec![("tracestate", "1abc=1")], Some("1abc=1"), "#key: key = ( lcalpha / DIGIT ) ..., a digit may start any key (the older simple-key could not)"),
        (vec![("tracestate", "1abc@sys=1")], Some("1abc@sys=1"), "#key: key = ( lcalpha / DIGIT ) ..."),
        (vec![("tracestate", "abc@1sys=1")], Some("abc@1sys=1"), "#key: any keychar after `@` (the older system-id started with lcalpha)"),
        (vec![("tracestate", "foo=1,t@vvvvvvvvvvvvvvv=2")], Some("foo=1,t@vvvvvvvvvvvvvvv=2"), "#key: no limit of 14 after `@`"),
        (vec![("tracestate", "a@b@c=1,a@b@c=2")], Some("a@b@c=1,a@b@c=2"), "#key with two `@`s, repeated and kept (#mutating-the-tracestate-field)"),
        (vec![("tracestate", "foo@=1,_bar=2")], None, "#key: `_` cannot start a key; the whole header is discarded"),
        (vec![("tracestate", "Foo@bar=1")], None, "#key: lcalpha only"),
        (vec![("tracestate", "foo@bar.baz=1")], None, "#key: `.` is no keychar"),
        (vec![("tracestate", "foo=  x")], Some("foo=  x"), "#value: leading spaces MUST be preserved"),
        (vec![("tracestate", "foo=a\tb")], None, "#value: tabs are not chr"),
        (vec![("tracestate", &value_256)], Some(&value_256), "#value: up to 256 characters"),
        (vec![("tracestate", &value_257)], None, "#value: 0*255(chr) nblk-chr"),
        (vec![("tracestate", "foo")], None, "#list: list-member = key \"=\" value"),
        (vec![("tracestate", ",, ,\t,foo=1,,")], Some("foo=1"), "#tracestate-header-field-values: empty and whitespace-only members are allowed"),
    ];
    for (mut lines, expected, why) in rows {
        lines.insert(0, ("traceparent", VALID));
        assert_eq!(
            forwarded_tracestate(&lines).as_deref(),
            expected,
            "{why}: {lines:?}"
        );
    }
}

#[test]
fn tracestate_members_are_readable_through_opentelemetry() {
    // test_tracestate_included_traceparent_included: tracestate['foo'] == '1'.
    let (cx, _) = extract(&headers(&[
        ("traceparent", VALID),
        ("tracestate", "foo=1,bar=2"),
    ]));
    let state = cx.span().span_context().trace_state().clone();
    assert_eq!((state.get("foo"), state.get("bar")), (Some("1"), Some("2")));
}

#[test]
fn drops_are_reported_with_their_reason() {
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let many = many.join(",");
    #[rustfmt::skip]
    let rows: Vec<(Lines<'_>, Vec<Dropped>, &str)> = vec![
        (vec![("traceparent", VALID), ("traceparent", VALID)], vec![Dropped::new("traceparent", "", DropReason::Duplicate)], "test_traceparent_duplicated"),
        (vec![("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")], vec![Dropped::new("traceparent", "", DropReason::Malformed)], "#trace-id: all zeroes"),
        (vec![("traceparent", VALID), ("tracestate", "foo=1,foo=2")], vec![], "#mutating-the-tracestate-field: a repeated key is kept, not dropped"),
        (vec![("traceparent", VALID), ("tracestate", &many)], vec![Dropped::new("tracestate", "k32", DropReason::TooMany)], "#list: at most 32 members; the 33rd is named"),
        (vec![("traceparent", VALID), ("tracestate", "foo=a\tb")], vec![Dropped::new("tracestate", "foo", DropReason::Malformed)], "#value: a valid key is named"),
        (vec![("traceparent", VALID), ("tracestate", "FOO=1")], vec![Dropped::new("tracestate", "", DropReason::Malformed)], "#key: an invalid key is never echoed"),
        (vec![("traceparent", "ff-12345678901234567890123456789012-1234567890123456-01"), ("tracestate", "FOO=1")], vec![Dropped::new("traceparent", "", DropReason::Malformed)], "#tracestate-header: MUST NOT parse tracestate after a bad traceparent"),
        (vec![("traceparent", VALID), ("tracestate", "foo=1")], vec![], "nothing dropped"),
    ];
    for (lines, expected, why) in rows {
        assert_eq!(extract(&headers(&lines)).1, expected, "{why}");
    }
}

#[test]
fn one_mebibyte_headers_are_rejected_by_length() {
    let huge = format!("{VALID}{}", "-0".repeat(512 * 1024));
    let (cx, dropped) = extract(&headers(&[("traceparent", &huge)]));
    assert!(!cx.has_active_span());
    assert_eq!(
        dropped,
        [Dropped::new("traceparent", "", DropReason::TooLong)]
    );

    let huge = ",".repeat(1024 * 1024);
    let (cx, dropped) = extract(&headers(&[("traceparent", VALID), ("tracestate", &huge)]));
    assert!(
        cx.span().span_context().is_valid(),
        "#tracestate-header: a bad tracestate MUST NOT affect traceparent"
    );
    assert_eq!(
        dropped,
        [Dropped::new("tracestate", "", DropReason::TooLong)]
    );
}

fn remote(state: TraceState, flags: u8) -> Context {
    let sc = SpanContext::new(
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex("1234567890123456").unwrap(),
        TraceFlags::new(flags),
        true,
        state,
    );
    Context::new().with_remote_span_context(sc)
}

#[test]
fn inject_sends_only_valid_values() {
    let (out, dropped) = inject(&Context::new());
    assert!(
        out.is_empty() && dropped.is_empty(),
        "no span context, no headers"
    );

    let (out, _) = inject(&remote(TraceState::NONE, 0xff));
    assert_eq!(
        value(&out, "traceparent"),
        Some(&*format!("00-{TRACE_ID}-1234567890123456-03")),
        "#other-flags"
    );
    assert_eq!(
        value(&out, "tracestate"),
        None,
        "#tracestate-header-field-values: SHOULD avoid sending an empty header"
    );

    // `TraceState::insert` only refuses `,` and `=` in values.
    let state = TraceState::default()
        .insert("b", "2")
        .unwrap()
        .insert("a", "x\r\ny")
        .unwrap()
        .insert("c", "z ")
        .unwrap();
    let (out, dropped) = inject(&remote(state, 1));
    assert_eq!(
        value(&out, "tracestate"),
        Some("b=2"),
        "each bad member is dropped alone"
    );
    assert_eq!(
        dropped,
        [
            Dropped::new("tracestate", "c", DropReason::Malformed),
            Dropped::new("tracestate", "a", DropReason::Malformed)
        ],
        "#value: no control characters, no trailing space"
    );
}

#[test]
fn members_opentelemetry_rejects_survive_a_child_span() {
    let fourteen = "tenant@fourteen-chars=x";
    let (cx, dropped) = extract(&headers(&[
        ("traceparent", VALID),
        ("tracestate", &format!("{fourteen},foo=1")),
    ]));
    assert!(dropped.is_empty());
    assert_eq!(
        cx.span().span_context().trace_state().header(),
        "foo=1",
        "what OpenTelemetry can hold"
    );

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let child = cx.with_span(provider.tracer("test").start_with_context("child", &cx));
    let (out, _) = inject(&child);
    let traceparent = value(&out, "traceparent").unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-"))
            && !traceparent.contains("-1234567890123456-")
    );
    assert_eq!(
        value(&out, "tracestate"),
        Some(&*format!("{fourteen},foo=1"))
    );

    // Once the application changes the trace state, it is what goes out.
    let changed = cx
        .span()
        .span_context()
        .trace_state()
        .insert("mine", "1")
        .unwrap();
    let (out, _) = inject(&cx.with_remote_span_context(SpanContext::new(
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex("1234567890123456").unwrap(),
        TraceFlags::default(),
        true,
        changed,
    )));
    assert_eq!(value(&out, "tracestate"), Some("mine=1,foo=1"));

    // A later extraction into the same context replaces the stored header.
    let propagator = TraceContextPropagator::new();
    let again = headers(&[("traceparent", VALID), ("tracestate", "foo=1")]);
    let (out, _) =
        inject(&propagator.extract_reporting(&cx, &HeaderCarrier(&again), &mut Vec::new()));
    assert_eq!(value(&out, "tracestate"), Some("foo=1"));
    let (out, _) = inject(&propagator.extract_from_headers(&cx, &again));
    assert_eq!(value(&out, "tracestate"), Some("foo=1"));

    // Also when the later header is absent and the earlier one had no member
    // OpenTelemetry could hold.
    let (only, _) = extract(&headers(&[
        ("traceparent", VALID),
        ("tracestate", fourteen),
    ]));
    assert_eq!(only.span().span_context().trace_state(), &TraceState::NONE);
    let (out, _) = inject(&only);
    assert_eq!(value(&out, "tracestate"), Some(fourteen));
    let bare = headers(&[("traceparent", VALID)]);
    let (out, _) = inject(&propagator.extract_from_headers(&only, &bare));
    assert_eq!(value(&out, "tracestate"), None);
    let (out, _) = inject(&propagator.extract_with_context(&only, &HeaderCarrier(&bare)));
    assert_eq!(value(&out, "tracestate"), None);
}

#[test]
fn stale_tracestate_is_removed_by_the_header_map_fast_path() {
    let mut map = headers(&[("traceparent", VALID), ("tracestate", "old=1")]);
    TraceContextPropagator::new().inject_into_headers(&remote(TraceState::NONE, 1), &mut map);
    assert_eq!(value(&map, "tracestate"), None);
}

/// `AdvancedTest` (test.py): one incoming request, three outgoing ones, each
/// from its own SDK child span.
#[test]
fn advanced_multiple_requests() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");
    #[rustfmt::skip]
    let rows: &[TraceparentRow<'_>] = &[
        (&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01")], Some(TRACE_ID), "test_multiple_requests_with_valid_traceparent"),
        (&[], None, "test_multiple_requests_without_traceparent"),
        (&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")], None, "test_multiple_requests_with_illegal_traceparent"),
    ];
    for &(lines, inherited, why) in rows {
        let (cx, _) = extract(&headers(lines));
        let sent: Vec<String> = (0..3)
            .map(|_| {
                let child = cx.with_span(tracer.start_with_context("child", &cx));
                value(&inject(&child).0, "traceparent").unwrap().to_owned()
            })
            .collect();
        let parent_ids: std::collections::HashSet<&str> =
            sent.iter().map(|tp| &tp[36..52]).collect();
        assert_eq!(parent_ids.len(), 3, "{why}: a new parent-id per request");
        for tp in &sent {
            let trace_id = &tp[3..35];
            assert_ne!(trace_id, "00000000000000000000000000000000", "{why}");
            if let Some(inherited) = inherited {
                assert_eq!(trace_id, inherited, "{why}");
            }
        }
    }
}

#[test]
fn parse_traceparent_returns_a_remote_context() {
    let sc = parse_traceparent(VALID).unwrap();
    assert!(sc.is_remote() && sc.is_valid() && !sc.is_sampled());
    assert_eq!(sc.trace_state(), &TraceState::NONE);
}

// Strategies for values the spec allows.
/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )` (#key), short and near the
/// length limit.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_*/@-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z0-9_*/@-]{0,20}",
        "[a-z0-9][a-z0-9_*/@-]{250,255}",
    ]
}

fn state_value() -> impl Strategy<Value = String> {
    "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,20}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]"
}

fn valid_headers() -> impl Strategy<Value = (String, String)> {
    let ids = (1..=u128::MAX, 1..=u64::MAX, 0u8..4);
    // Repeated keys included: they are forwarded as received.
    let members = prop::collection::vec((key(), state_value()), 0..=32);
    (ids, members).prop_map(|((trace_id, span_id, flags), members)| {
        let traceparent = format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}");
        let members: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (traceparent, members.join(","))
    })
}

/// A header line near the grammar, or anything.
fn line(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![alphabet, any::<String>()]
}

fn hop(map: &HeaderMap, fast: bool) -> HeaderMap {
    let propagator = TraceContextPropagator::new();
    let mut out = HeaderMap::new();
    if fast {
        let cx = propagator.extract_from_headers(&Context::new(), map);
        propagator.inject_into_headers(&cx, &mut out);
    } else {
        let cx =
            propagator.extract_reporting(&Context::new(), &HeaderCarrier(map), &mut Vec::new());
        propagator.inject_reporting(&cx, &mut HeaderCarrierMut(&mut out), &mut Vec::new());
    }
    out
}

proptest! {
    #[test]
    fn valid_contexts_round_trip_over_five_hops((traceparent, tracestate) in valid_headers()) {
        let mut map = headers(&[("traceparent", &traceparent), ("tracestate", &tracestate)]);
        for i in 0..5 {
            map = hop(&map, i % 2 == 1);
            prop_assert_eq!(value(&map, "traceparent"), Some(traceparent.as_str()));
            prop_assert_eq!(value(&map, "tracestate"), (!tracestate.is_empty()).then_some(tracestate.as_str()));
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_output_reparses(
        traceparents in prop::collection::vec(line("[ \t0-9a-fA-F.-]{0,70}"), 0..3),
        tracestates in prop::collection::vec(line("[ \t,=@a-zA-Z0-9_*/!~-]{0,60}"), 0..4),
    ) {
        let mut map = HeaderMap::new();
        let lines = traceparents.iter().map(|v| ("traceparent", v)).chain(tracestates.iter().map(|v| ("tracestate", v)));
        for (name, v) in lines {
            if let Ok(v) = http::HeaderValue::from_str(v) {
                map.append(name, v);
            }
        }
        let (cx, _) = extract(&map);
        let (out, dropped) = inject(&cx);
        prop_assert!(dropped.is_empty(), "extracted members are valid");
        prop_assert_eq!(out.is_empty(), !cx.span().span_context().is_valid());
        if let Some(tp) = value(&out, "traceparent") {
            prop_assert!(parse_traceparent(tp).is_some());
        }
        // Anything sent re-extracts to the same context and is stable.
        let (again, reported) = extract(&out);
        prop_assert!(reported.is_empty());
        prop_assert_eq!(again.span().span_context().clone(), cx.span().span_context().clone());
        prop_assert_eq!(inject(&again).0, out);
    }

    #[test]
    fn tracestate_is_forwarded_exactly_when_the_grammar_accepts_it(
        members in prop::collection::vec((near_key(), "[ a-z0-9=@,!~]{0,4}[a-z0-9=!~]"), 0..=34),
    ) {
        let header: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let header = header.join(",");
        let lines = [("traceparent", VALID), ("tracestate", header.as_str())];
        prop_assert_eq!(forwarded_tracestate(&lines), oracle(&header), "{}", header);
    }
}

/// Keys near the #key grammar: `@`s anywhere, a bad first character, a bad
/// character inside, lengths around 256.
fn near_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9@_*/.A-]{1,6}", "[a-z0-9][a-z0-9@]{253,256}",]
}

/// The current #list, #key and #value grammar, written as directly as the
/// ABNF reads: the canonical header when every member is valid and there are
/// at most 32, otherwise none. Repeated keys are kept.
fn oracle(header: &str) -> Option<String> {
    let keychar = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-' | '*' | '/' | '@');
    let nblk = |c: char| matches!(c, '\x21'..='\x2b' | '\x2d'..='\x3c' | '\x3e'..='\x7e');
    let mut kept = Vec::new();
    for member in header.split(',').map(|m| m.trim_matches([' ', '\t'])) {
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        let first_ok = key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        let key_ok = first_ok && key.len() <= 256 && key.chars().all(keychar);
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
