//! What a queued item costs, and the attribute value length limit.
//!
//! The batch processors bound their queue in bytes and cut their batches so
//! that no request exceeds the receiver's limit, both with one estimate per
//! item, computed once when it is queued: an upper bound of both the memory
//! the item holds and its OTLP/protobuf encoding, so that one number serves
//! both bounds. It only adds up lengths; nothing is encoded or allocated.

use std::mem::size_of;

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{Event, Link, TraceState};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLogRecord;
use opentelemetry_sdk::trace::SpanData;

/// The most a field's tag and length prefix take (a 5-byte varint length
/// covers anything below 32 GiB, plus the tag's byte).
const PREFIX: usize = 6;

/// A `KeyValue` message around its key and an `AnyValue` message: four
/// tags with their lengths.
const KEY_VALUE: usize = 4 * PREFIX;

/// A span's fixed-size fields encoded (ids, kind, times, counts, flags,
/// status) and its message's prefix, with room to spare.
const SPAN_FIELDS: usize = 160;

/// An event's or a link's fixed-size fields encoded.
const EVENT_FIELDS: usize = 48;
const LINK_FIELDS: usize = 96;

/// What the messages around spans (request, resource, scope) take at most,
/// beside the resource's and scopes' own contents.
pub(crate) const ENVELOPE: usize = 8 * PREFIX;

/// An item the batch processors queue.
pub trait Item: Send + 'static {
    /// An upper bound of the bytes the item holds in memory and of its
    /// OTLP/protobuf encoding inside a request (its scope's included).
    fn cost(&self) -> usize;
}

impl Item for SpanData {
    fn cost(&self) -> usize {
        size_of::<SpanData>()
            + SPAN_FIELDS
            + self.name.len()
            + trace_state(self.span_context.trace_state())
            + scope(&self.instrumentation_scope)
            + status(&self.status)
            + attributes(&self.attributes)
            + self.events.iter().map(event).sum::<usize>()
            + self.links.iter().map(link).sum::<usize>()
    }
}

impl Item for (SdkLogRecord, InstrumentationScope) {
    fn cost(&self) -> usize {
        let (record, scope_) = self;
        size_of::<Self>()
            + SPAN_FIELDS
            + scope(scope_)
            + record.event_name().map_or(0, str::len)
            + record.target().map_or(0, |t| t.len())
            + record.severity_text().map_or(0, str::len)
            + record.body().map_or(0, any_value)
            + record
                .attributes_iter()
                .map(|(key, value)| {
                    size_of::<(Key, AnyValue)>() + KEY_VALUE + key.as_str().len() + any_value(value)
                })
                .sum::<usize>()
    }
}

/// What `resource` adds to each request, with the envelope around the items.
pub(crate) fn resource(resource: &Resource) -> usize {
    ENVELOPE
        + resource
            .iter()
            .map(|(key, v)| KEY_VALUE + key.as_str().len() + value(v))
            .sum::<usize>()
        + resource.schema_url().map_or(0, str::len)
}

fn scope(scope: &InstrumentationScope) -> usize {
    4 * PREFIX
        + scope.name().len()
        + scope.version().map_or(0, str::len)
        + scope.schema_url().map_or(0, str::len)
        + attributes_of(scope.attributes())
}

fn status(status: &opentelemetry::trace::Status) -> usize {
    match status {
        opentelemetry::trace::Status::Error { description } => description.len(),
        _ => 0,
    }
}

fn trace_state(state: &TraceState) -> usize {
    // The empty state, by far the most common, costs no allocation to check.
    if *state == TraceState::NONE {
        0
    } else {
        PREFIX + state.header().len()
    }
}

fn event(event: &Event) -> usize {
    size_of::<Event>() + EVENT_FIELDS + event.name.len() + attributes(&event.attributes)
}

fn link(link: &Link) -> usize {
    size_of::<Link>()
        + LINK_FIELDS
        + trace_state(link.span_context.trace_state())
        + attributes(&link.attributes)
}

fn attributes(attributes: &[KeyValue]) -> usize {
    attributes_of(attributes.iter())
}

fn attributes_of<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> usize {
    attributes
        .map(|kv| size_of::<KeyValue>() + KEY_VALUE + kv.key.as_str().len() + value(&kv.value))
        .sum()
}

/// A value's heap bytes and encoding beside the `KeyValue` around it.
fn value(value: &Value) -> usize {
    match value {
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::String(values)) => values
            .iter()
            .map(|s| size_of::<StringValue>() + 2 * PREFIX + s.as_str().len())
            .sum(),
        Value::Array(Array::Bool(values)) => values.len() * (2 * PREFIX + 1),
        Value::Array(Array::I64(values)) => values.len() * (2 * PREFIX + 10),
        Value::Array(Array::F64(values)) => values.len() * (2 * PREFIX + 8),
        // Numbers and booleans fit in the `KeyValue` allowance; kinds added
        // upstream later are encoded as their text.
        Value::Bool(_) | Value::I64(_) | Value::F64(_) => 10,
        other => 2 * other.to_string().len(),
    }
}

fn any_value(value: &AnyValue) -> usize {
    PREFIX
        + match value {
            AnyValue::String(s) => s.as_str().len(),
            AnyValue::Bytes(bytes) => bytes.len(),
            AnyValue::ListAny(values) => values
                .iter()
                .map(|v| size_of::<AnyValue>() + PREFIX + any_value(v))
                .sum(),
            AnyValue::Map(map) => map
                .iter()
                .map(|(key, v)| {
                    2 * size_of::<AnyValue>() + KEY_VALUE + key.as_str().len() + any_value(v)
                })
                .sum(),
            _ => 10,
        }
}

/// Cuts every string attribute value of `span`, its events and its links
/// (and every string of an array value) to at most `limit` characters, at
/// a character boundary. Returns whether anything was cut.
pub(crate) fn truncate_span(span: &mut SpanData, limit: usize) -> bool {
    let mut cut = truncate_all(&mut span.attributes, limit);
    for event in &mut span.events.events {
        cut |= truncate_all(&mut event.attributes, limit);
    }
    for link in &mut span.links.links {
        cut |= truncate_all(&mut link.attributes, limit);
    }
    cut
}

fn truncate_all(attributes: &mut [KeyValue], limit: usize) -> bool {
    let mut cut = false;
    for kv in attributes {
        match &mut kv.value {
            Value::String(s) => cut |= truncate(s, limit),
            Value::Array(Array::String(values)) => {
                for s in values {
                    cut |= truncate(s, limit);
                }
            }
            _ => {}
        }
    }
    cut
}

/// Cuts `s` to `limit` characters (the specification counts characters,
/// not bytes); a string of at most `limit` bytes is left without counting.
fn truncate(s: &mut StringValue, limit: usize) -> bool {
    let text = s.as_str();
    if text.len() <= limit {
        return false;
    }
    match text.char_indices().nth(limit) {
        Some((end, _)) => {
            *s = StringValue::from(text[..end].to_owned());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str, limit: usize) -> String {
        let mut s = StringValue::from(text.to_owned());
        truncate(&mut s, limit);
        s.as_str().to_owned()
    }

    #[test]
    fn strings_are_cut_at_a_character_count() {
        // (value, limit, kept)
        let rows = [
            ("abcdef", 3, "abc"),
            ("abc", 3, "abc"),
            ("abc", 10, "abc"),
            ("abc", 0, ""),
            // Multi-byte characters count as one each and are never split.
            ("éééé", 2, "éé"),
            ("日本語テキスト", 3, "日本語"),
            ("a😀b", 2, "a😀"),
            // Longer in bytes than the limit but not in characters: kept.
            ("éé", 3, "éé"),
        ];
        for (value, limit, kept) in rows {
            assert_eq!(cut(value, limit), kept, "{value:?} at {limit}");
        }
    }

    #[test]
    fn arrays_are_cut_element_by_element_and_other_values_never() {
        let mut attributes = vec![
            KeyValue::new(
                "list",
                Value::Array(Array::String(vec!["long one".into(), "ok".into()])),
            ),
            KeyValue::new("n", 123_456_789_i64),
            KeyValue::new("s", "long text"),
        ];
        assert!(truncate_all(&mut attributes, 4));
        assert_eq!(
            attributes[0].value,
            Value::Array(Array::String(vec!["long".into(), "ok".into()]))
        );
        assert_eq!(attributes[1].value, Value::I64(123_456_789));
        assert_eq!(attributes[2].value, Value::String("long".into()));
        assert!(!truncate_all(&mut attributes, 4), "nothing left to cut");
    }
}
