//! Carriers: [`Extractor`]/[`Injector`] views of `http::HeaderMap` and tonic metadata.
//!
//! Unlike `opentelemetry-http`'s `HeaderExtractor`, [`HeaderCarrier::get_all`]
//! returns every line of a repeated header, which the W3C specs require
//! propagators to combine.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// Reads propagation headers from an `http::HeaderMap`.
///
/// ```
/// use baton_propagators::HeaderCarrier;
/// use opentelemetry::propagation::Extractor;
///
/// let mut headers = http::HeaderMap::new();
/// headers.append("baggage", "a=1".parse().unwrap());
/// headers.append("baggage", "b=2".parse().unwrap());
/// assert_eq!(HeaderCarrier(&headers).get_all("baggage"), Some(vec!["a=1", "b=2"]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HeaderCarrier<'a>(pub &'a HeaderMap);

/// Writes propagation headers into an `http::HeaderMap`, replacing any previous value.
///
/// A value that is not a valid header value is skipped rather than panicking;
/// the propagators in this crate never produce one.
#[derive(Debug)]
pub struct HeaderCarrierMut<'a>(pub &'a mut HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        get(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        keys(self.0)
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        get_all(self.0, key)
    }
}

fn get<'a>(headers: &'a HeaderMap, key: &str) -> Option<&'a str> {
    headers.get(key).and_then(|v| v.to_str().ok())
}

fn keys(headers: &HeaderMap) -> Vec<&str> {
    headers.keys().map(HeaderName::as_str).collect()
}

fn get_all<'a>(headers: &'a HeaderMap, key: &str) -> Option<Vec<&'a str>> {
    // A line that is not visible ASCII cannot be a valid value of any
    // propagation header; skipping it is the same as treating it as absent.
    let values: Vec<&str> = headers
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then_some(values)
}

impl Injector for HeaderCarrierMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            if UNIQUE_PER_REQUEST.contains(&name.as_str()) {
                never_index(&mut value);
            }
            self.0.insert(name, value);
        }
    }
}

/// Headers whose value is new on every request (they carry a span or request
/// id); see [`never_index`].
const UNIQUE_PER_REQUEST: [&str; 7] = [
    "traceparent",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "uber-trace-id",
    "x-request-id",
];

/// Marks a value that is new on every request so that HTTP/2 (HPACK) sends it
/// as a never-indexed literal. Indexed, each one is inserted into both peers'
/// 4 KiB dynamic tables, where it is never used again and evicts the entries
/// that do repeat (content type, user agent, baggage); measured on a gRPC
/// call, that churn cost more CPU than the propagation itself.
pub fn never_index(value: &mut HeaderValue) {
    value.set_sensitive(true);
}

/// Reads propagation metadata from a tonic request or response.
#[cfg(feature = "tonic")]
#[derive(Debug, Clone, Copy)]
pub struct MetadataCarrier<'a>(pub &'a tonic::metadata::MetadataMap);

/// Writes propagation metadata into a tonic request or response.
#[cfg(feature = "tonic")]
#[derive(Debug)]
pub struct MetadataCarrierMut<'a>(pub &'a mut tonic::metadata::MetadataMap);

// gRPC metadata is an `http::HeaderMap` underneath, so both carriers share
// the header carriers' code instead of repeating it.
#[cfg(feature = "tonic")]
impl Extractor for MetadataCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        get(self.0.as_ref(), key)
    }

    fn keys(&self) -> Vec<&str> {
        keys(self.0.as_ref())
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        get_all(self.0.as_ref(), key)
    }
}

#[cfg(feature = "tonic")]
impl Injector for MetadataCarrierMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        HeaderCarrierMut(self.0.as_mut()).set(key, value);
    }
}

/// All lines of a header combined into one comma-separated value, as the W3C
/// specs require for `tracestate` and `baggage`. Borrows when there is one line.
pub(crate) fn combined<'a>(extractor: &'a dyn Extractor, key: &str) -> Option<Cow<'a, str>> {
    match extractor.get_all(key) {
        Some(values) if values.len() == 1 => Some(Cow::Borrowed(values[0])),
        Some(values) if !values.is_empty() => Some(Cow::Owned(values.join(","))),
        _ => extractor.get(key).map(Cow::Borrowed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn combined_joins_repeated_lines_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        let carrier = HeaderCarrier(&headers);
        assert_eq!(combined(&carrier, "tracestate").as_deref(), Some("a=1,b=2"));
        assert_eq!(combined(&carrier, "baggage"), None);
    }

    #[test]
    fn non_ascii_lines_are_skipped_not_fatal() {
        let mut headers = HeaderMap::new();
        headers.append("baggage", HeaderValue::from_bytes(b"k=\xff").unwrap());
        headers.append("baggage", HeaderValue::from_static("a=1"));
        assert_eq!(
            HeaderCarrier(&headers).get_all("baggage"),
            Some(vec!["a=1"])
        );
    }

    #[test]
    fn injector_skips_invalid_values_without_panicking() {
        let mut headers = HeaderMap::new();
        HeaderCarrierMut(&mut headers).set("baggage", "a=1\r\nx: y".to_owned());
        assert!(headers.is_empty());
        HeaderCarrierMut(&mut headers).set("baggage", "a=1".to_owned());
        HeaderCarrierMut(&mut headers).set("baggage", "b=2".to_owned());
        assert_eq!(headers.get_all("baggage").iter().count(), 1);
    }

    #[test]
    fn per_request_ids_are_never_indexed_and_the_rest_may_be() {
        let mut headers = HeaderMap::new();
        let mut carrier = HeaderCarrierMut(&mut headers);
        carrier.set("traceparent", "00-1-2-01".to_owned());
        carrier.set("x-request-id", "r".to_owned());
        carrier.set("baggage", "tenant=acme".to_owned());
        carrier.set("tracestate", "a=1".to_owned());
        let sensitive = |name| headers.get(name).map(HeaderValue::is_sensitive);
        assert_eq!(sensitive("traceparent"), Some(true));
        assert_eq!(sensitive("x-request-id"), Some(true));
        assert_eq!(sensitive("baggage"), Some(false));
        assert_eq!(sensitive("tracestate"), Some(false));

        let mut fast = HeaderMap::new();
        use opentelemetry::trace::TraceContextExt as _;
        let cx = opentelemetry::Context::new().with_remote_span_context(
            opentelemetry::trace::SpanContext::new(
                opentelemetry::trace::TraceId::from(1),
                opentelemetry::trace::SpanId::from(2),
                opentelemetry::trace::TraceFlags::SAMPLED,
                true,
                opentelemetry::trace::TraceState::default(),
            ),
        );
        crate::TraceContextPropagator::new().inject_into_headers(&cx, &mut fast);
        assert_eq!(
            fast.get("traceparent").map(HeaderValue::is_sensitive),
            Some(true)
        );
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn metadata_carriers_round_trip() {
        let mut md = tonic::metadata::MetadataMap::new();
        MetadataCarrierMut(&mut md).set("traceparent", "x".to_owned());
        assert_eq!(MetadataCarrier(&md).get("traceparent"), Some("x"));
        assert_eq!(MetadataCarrier(&md).keys(), vec!["traceparent"]);
    }
}
