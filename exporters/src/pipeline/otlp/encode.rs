//! OTLP/protobuf encoding of spans, straight from `SpanData` to bytes.
//!
//! Written by hand because `opentelemetry-otlp` first copies every span into
//! `opentelemetry-proto`'s generated structs (a `String` per attribute key
//! and value, a `Vec` per list, a hash map per batch), then prost walks that
//! tree recomputing nested lengths at every level, then it is all freed:
//! measured with callgrind on the overhead scenario, about 28,000
//! instructions per span, more than everything Baton's layers do for a
//! request. Here each field is written once into one buffer; a nested
//! message's length is patched in after its body, moving the body only when
//! the length needs more than one byte.
//!
//! The output decodes to exactly what `opentelemetry-proto`'s
//! `group_spans_by_resource_and_scope` builds (a test checks it field by
//! field), so collectors see no difference.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

/// Wire types of the protobuf fields written here.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags`: the context's is-remote bit is known, and its value.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The `resource` and `schema_url` fields of a `ResourceSpans`, encoded once
/// per resource rather than once per export.
#[derive(Debug, Clone, Default)]
pub(crate) struct EncodedResource(Vec<u8>);

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut buf = Vec::new();
        message(&mut buf, 1, |buf| {
            for (key, value) in resource.iter() {
                key_value(buf, 1, key.as_str(), value);
            }
        });
        if let Some(schema_url) = resource.schema_url() {
            string(&mut buf, 3, schema_url);
        }
        EncodedResource(buf)
    }
}

/// An `ExportTraceServiceRequest` holding `spans` of `resource`, grouped by
/// instrumentation scope in order of first appearance.
pub(crate) fn export_request(resource: &EncodedResource, spans: &[SpanData]) -> Vec<u8> {
    // Each span's scope is looked up once, against the last one found
    // first: batches hold a handful of scopes, usually runs of one.
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let mut of_span = Vec::with_capacity(spans.len());
    let mut last = 0;
    for span in spans {
        let scope = &span.instrumentation_scope;
        if !scopes.get(last).is_some_and(|s| same_scope(s, scope)) {
            last = match scopes.iter().position(|s| same_scope(s, scope)) {
                Some(i) => i,
                None => {
                    scopes.push(scope);
                    scopes.len() - 1
                }
            };
        }
        of_span.push(last);
    }
    let mut buf = Vec::with_capacity(256 + spans.len() * 512);
    message(&mut buf, 1, |buf| {
        buf.extend_from_slice(&resource.0);
        for (index, scope) in scopes.iter().enumerate() {
            message(buf, 2, |buf| {
                message(buf, 1, |buf| {
                    string(buf, 1, scope.name());
                    string(buf, 2, scope.version().unwrap_or_default());
                    for kv in scope.attributes() {
                        key_value(buf, 3, kv.key.as_str(), &kv.value);
                    }
                });
                for (span, _) in spans.iter().zip(&of_span).filter(|(_, i)| **i == index) {
                    message(buf, 2, |buf| encode_span(buf, span));
                }
                string(buf, 3, scope.schema_url().unwrap_or_default());
            });
        }
    });
    buf
}

/// `a == b`, without comparing the text when both are clones of one
/// scope with no attributes (a tracer's spans: the names are the same
/// `&'static str`s). `InstrumentationScope`'s own `==` compares every
/// string and builds and sorts two vectors of attributes, twice per span
/// here before: 430 instructions per span in callgrind on the overhead
/// scenario.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    let same = |x: Option<&str>, y: Option<&str>| match (x, y) {
        (Some(x), Some(y)) => std::ptr::eq(x, y),
        (None, None) => true,
        _ => false,
    };
    let shared = same(Some(a.name()), Some(b.name()))
        && same(a.version(), b.version())
        && same(a.schema_url(), b.schema_url())
        && a.attributes().next().is_none()
        && b.attributes().next().is_none();
    shared || a == b
}

fn encode_span(buf: &mut Vec<u8>, span: &SpanData) {
    let cx = &span.span_context;
    bytes(buf, 1, &cx.trace_id().to_bytes());
    bytes(buf, 2, &cx.span_id().to_bytes());
    string(buf, 3, &cx.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes(buf, 4, &span.parent_span_id.to_bytes());
    }
    string(buf, 5, &span.name);
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    uint(buf, 6, kind);
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    for kv in &span.attributes {
        key_value(buf, 9, kv.key.as_str(), &kv.value);
    }
    uint(buf, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(buf, 11, |buf| {
            fixed64(buf, 1, nanos(event.timestamp));
            string(buf, 2, &event.name);
            attributes(buf, 3, &event.attributes);
            uint(buf, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(buf, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let cx = &link.span_context;
        message(buf, 13, |buf| {
            bytes(buf, 1, &cx.trace_id().to_bytes());
            bytes(buf, 2, &cx.span_id().to_bytes());
            string(buf, 3, &cx.trace_state().header());
            attributes(buf, 4, &link.attributes);
            uint(buf, 5, u64::from(link.dropped_attributes_count));
            fixed32(buf, 6, flags(cx.is_remote(), cx.trace_flags().to_u8()));
        });
    }
    uint(buf, 14, u64::from(span.links.dropped_count));
    // Always present, as upstream sends it.
    message(buf, 15, |buf| {
        let (code, text) = match &span.status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, &**description),
        };
        string(buf, 2, text);
        uint(buf, 3, code);
    });
    fixed32(
        buf,
        16,
        flags(span.parent_span_is_remote, cx.trace_flags().to_u8()),
    );
}

fn flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

/// Nanoseconds since the epoch; 0 before it, as upstream.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attributes(buf: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        key_value(buf, field, kv.key.as_str(), &kv.value);
    }
}

fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    message(buf, field, |buf| {
        string(buf, 1, key);
        message(buf, 2, |buf| any_value(buf, value));
    });
}

/// The body of an `AnyValue`: a oneof, so written even when it is a default.
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => string_always(buf, 1, s.as_str()),
        Value::Bool(b) => {
            key(buf, 2, VARINT);
            varint(buf, u64::from(*b));
        }
        Value::I64(i) => {
            key(buf, 3, VARINT);
            // int64 is written as its two's complement bits.
            varint(buf, u64::from_ne_bytes(i.to_ne_bytes()));
        }
        Value::F64(f) => {
            key(buf, 4, FIXED64);
            buf.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => message(buf, 5, |buf| match array {
            Array::Bool(values) => array_values(buf, values, |v| Value::Bool(*v)),
            Array::I64(values) => array_values(buf, values, |v| Value::I64(*v)),
            Array::F64(values) => array_values(buf, values, |v| Value::F64(*v)),
            Array::String(values) => array_values(buf, values, |v| Value::String(v.clone())),
            // A kind added upstream after this was written: sent as text
            // rather than lost.
            other => string_always(buf, 1, &other.to_string()),
        }),
        other => string_always(buf, 1, &other.to_string()),
    }
}

fn array_values<T>(buf: &mut Vec<u8>, values: &[T], value: impl Fn(&T) -> Value) {
    for v in values {
        message(buf, 1, |buf| any_value(buf, &value(v)));
    }
}

/// A nested message: its tag, its length, then what `body` writes.
fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    // One byte for the length, the common case; moved below if longer.
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let mut encoded = [0; 10];
    let size = varint_into(&mut encoded, len as u64);
    if size > 1 {
        buf.splice(at + 1..at + 1, std::iter::repeat_n(0, size - 1));
    }
    buf[at..at + size].copy_from_slice(&encoded[..size]);
}

/// A string field, left out when empty (the proto3 default).
fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        string_always(buf, field, value);
    }
}

fn string_always(buf: &mut Vec<u8>, field: u32, value: &str) {
    key(buf, field, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value.as_bytes());
}

fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// An unsigned varint field, left out when 0.
fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, value);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(buf, u64::from((field << 3) | wire_type));
}

fn varint(buf: &mut Vec<u8>, value: u64) {
    // Tags and most lengths fit in one byte: a push, not a copy of a
    // variable-length slice (a `memcpy` call each; a third of this
    // encoder's instructions went to them).
    if value < 0x80 {
        buf.push(value as u8);
        return;
    }
    let mut encoded = [0; 10];
    let size = varint_into(&mut encoded, value);
    buf.extend_from_slice(&encoded[..size]);
}

/// Writes `value` as a base-128 varint into `out`; returns its length.
fn varint_into(out: &mut [u8; 10], mut value: u64) -> usize {
    let mut i = 0;
    while value >= 0x80 {
        out[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    out[i] = value as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_examples() {
        // (value, encoding) from the protobuf encoding guide.
        let rows: [(u64, &[u8]); 4] = [
            (1, &[0x01]),
            (150, &[0x96, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, encoding) in rows {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(buf, encoding, "{value}");
        }
    }

    #[test]
    fn long_nested_messages_get_their_full_length() {
        let mut buf = Vec::new();
        message(&mut buf, 1, |buf| string(buf, 1, &"x".repeat(300)));
        // tag, length 303 as two bytes, inner tag, inner length 300, body.
        assert_eq!(&buf[..5], &[0x0a, 0xaf, 0x02, 0x0a, 0xac]);
        assert_eq!(buf.len(), 1 + 2 + 1 + 2 + 300);
    }
}

/// Baton's encoding decodes to exactly what `opentelemetry-proto` builds.
#[cfg(test)]
mod upstream {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
    use proptest::prelude::*;
    use prost::Message;

    use super::{EncodedResource, export_request};

    fn assert_same(resource: &Resource, spans: &[SpanData]) {
        let upstream = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.to_vec(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        let bytes = export_request(&EncodedResource::new(resource), spans);
        // The estimate that cuts batches never undercounts the encoding.
        let estimate = crate::pipeline::size::resource(resource)
            + spans
                .iter()
                .map(crate::pipeline::size::Item::cost)
                .sum::<usize>();
        assert!(bytes.len() <= estimate, "{} > {estimate}", bytes.len());
        let ours = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("valid protobuf");
        assert_eq!(ours, upstream);
    }

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            TraceState::from_key_value(state.split(',').filter_map(|kv| kv.split_once('=')))
                .unwrap_or_default(),
        )
    }

    fn span(
        name: &'static str,
        scope: &InstrumentationScope,
        attributes: Vec<KeyValue>,
    ) -> SpanData {
        SpanData {
            span_context: context(0x0102, 0x0304, false, ""),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: std::time::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            end_time: std::time::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_223_456_789),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    fn every_field_matches_upstream() {
        let resource = Resource::builder_empty()
            .with_schema_url(
                [
                    KeyValue::new("service.name", "checkout"),
                    KeyValue::new("pid", 42),
                ],
                "https://opentelemetry.io/schemas/1.42.0",
            )
            .build();
        let baton = InstrumentationScope::builder("baton")
            .with_version("0.1.0")
            .with_schema_url("https://opentelemetry.io/schemas/1.42.0")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();
        let bare = InstrumentationScope::builder("bare").build();
        let all_values = vec![
            KeyValue::new("s", "text"),
            KeyValue::new("empty", ""),
            KeyValue::new("t", true),
            KeyValue::new("f", false),
            KeyValue::new("i", -7_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("d", 0.25),
            KeyValue::new("nan", f64::NAN.max(1.5)),
            KeyValue::new("ab", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ai", Value::Array(Array::I64(vec![1, -1, i64::MAX]))),
            KeyValue::new("ad", Value::Array(Array::F64(vec![0.5]))),
            KeyValue::new(
                "as",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                ])),
            ),
            KeyValue::new("long", "x".repeat(300)),
        ];

        let mut server = span("GET /users/{id}", &baton, all_values);
        server.span_kind = SpanKind::Server;
        server.span_context = context(u128::MAX - 1, 0x0a0b, false, "vendor=v1,other=o");
        server.parent_span_id = SpanId::from(0x99);
        server.parent_span_is_remote = true;
        server.dropped_attributes_count = 3;
        server.status = Status::error("boom");
        server.events.events.push(Event::new(
            "exception",
            std::time::UNIX_EPOCH + Duration::from_secs(5),
            vec![KeyValue::new("exception.type", "io")],
            2,
        ));
        server.events.dropped_count = 1;
        server.links.links.push(Link::new(
            context(7, 8, true, "k=v"),
            vec![KeyValue::new("link", 1_i64)],
            4,
        ));
        server.links.dropped_count = 5;

        let mut client = span("shop.Orders/Place", &bare, vec![]);
        client.span_kind = SpanKind::Client;
        client.status = Status::Ok;
        client.parent_span_id = SpanId::from(0x0a0b);
        let mut later = span("background", &baton, vec![KeyValue::new("n", 1_i64)]);
        later.span_kind = SpanKind::Consumer;
        later.start_time = std::time::UNIX_EPOCH - Duration::from_secs(1);

        assert_same(&resource, &[server, client, later]);
        assert_same(&Resource::builder_empty().build(), &[]);
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            // NaN never equals itself: finite values only.
            (-1e300..1e300_f64).prop_map(Value::F64),
            ".{0,40}".prop_map(|s| Value::String(s.into())),
            proptest::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
            proptest::collection::vec(".{0,8}", 0..4).prop_map(|v| {
                Value::Array(Array::String(
                    v.into_iter().map(StringValue::from).collect(),
                ))
            }),
        ]
    }

    proptest! {
        #[test]
        fn random_attributes_match_upstream(
            attributes in proptest::collection::vec(("[a-z.]{0,20}", value()), 0..20),
            name in ".{0,300}",
            trace in any::<u128>(),
            span_id in 1..u64::MAX,
            parent in any::<u64>(),
        ) {
            let scope = InstrumentationScope::builder("p").build();
            let attributes = attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
            let mut data = span("x", &scope, attributes);
            data.name = Cow::Owned(name);
            data.span_context = context(trace, span_id, false, "");
            data.parent_span_id = SpanId::from(parent);
            assert_same(&Resource::builder_empty().build(), &[data]);
        }
    }
}
