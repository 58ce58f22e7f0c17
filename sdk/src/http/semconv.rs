//! The HTTP semantic conventions' rules shared by server and client: method
//! normalisation, span names, protocol versions, error types and query
//! redaction.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use http::{Method, StatusCode, Version};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL,
};

/// `http.request.method` for a method the conventions do not list.
const OTHER: &str = "_OTHER";

/// The conventions' known methods (RFC 9110, PATCH, QUERY).
const KNOWN_METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY",
];

/// What replaces a secret in `url.full` and `url.query`.
pub(crate) const REDACTED: &str = "REDACTED";

/// Query parameters whose values the conventions redact (matched case-sensitively).
const SENSITIVE_QUERY_KEYS: [&str; 5] = [
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "sig",
    "X-Goog-Signature",
];

/// `query` with the values of the signature parameters the conventions list
/// replaced by `REDACTED`; borrowed when there are none.
pub(crate) fn redact_query(query: &str) -> Cow<'_, str> {
    fn key(pair: &str) -> &str {
        pair.split_once('=').map_or(pair, |(key, _)| key)
    }
    let sensitive = |pair: &str| SENSITIVE_QUERY_KEYS.contains(&key(pair));
    if !query.split('&').any(sensitive) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| {
            if sensitive(pair) {
                Cow::Owned(format!("{}={REDACTED}", key(pair)))
            } else {
                Cow::Borrowed(pair)
            }
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

/// The `http.request.method` value of `method`: itself when known, else `_OTHER`.
pub(crate) fn method(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or(OTHER)
}

/// Pushes `http.request.method`, and `http.request.method_original` when the
/// method was normalised to `_OTHER`; returns the normalised value.
pub(crate) fn push_method(original: &Method, attributes: &mut Vec<KeyValue>) -> &'static str {
    let value = method(original);
    attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, value));
    if value == OTHER {
        attributes.push(KeyValue::new(
            HTTP_REQUEST_METHOD_ORIGINAL,
            original.as_str().to_owned(),
        ));
    }
    value
}

/// The span name of a request without a route (a client's spans, a
/// server's unmatched requests): the method, `HTTP` for an unknown one.
pub(crate) fn method_span_name(method: &'static str) -> &'static str {
    if method == OTHER { "HTTP" } else { method }
}

/// `{method} {route}`, or `{method}` without a route.
#[cfg(feature = "http-server")]
pub(crate) fn span_name(method: &'static str, route: &Route) -> Cow<'static, str> {
    let method = method_span_name(method);
    let route = match route {
        Route::None => return Cow::Borrowed(method),
        // One of the application's templates: named once.
        Route::Interned(route) => match crate::intern::pair(method, route) {
            Some(name) => return Cow::Borrowed(name),
            None => route,
        },
        Route::Owned(route) => &**route,
    };
    Cow::Owned(format!("{method} {route}"))
}

/// The matched route template, if any.
#[cfg(feature = "http-server")]
pub(crate) enum Route {
    None,
    /// The usual case: one of the application's templates, named once.
    Interned(&'static str),
    /// When the intern table is full.
    Owned(Arc<str>),
}

#[cfg(feature = "http-server")]
impl Route {
    /// The `http.route` value.
    pub(crate) fn value(&self) -> Option<StringValue> {
        match self {
            Route::None => None,
            Route::Interned(route) => Some(StringValue::from(*route)),
            Route::Owned(route) => Some(StringValue::from(Arc::clone(route))),
        }
    }
}

/// `network.protocol.version` of `version`.
pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// `error.type` for a response status the conventions count as an error
/// (from 500 for a server, from 400 for a client): the code as text.
pub(crate) fn status_error_type(status: StatusCode, error_from: u16) -> Option<StringValue> {
    /// The common codes' text, made once: errors should not cost an allocation each.
    static CODES: LazyLock<Vec<Arc<str>>> =
        LazyLock::new(|| (400..600u16).map(|code| code.to_string().into()).collect());
    let code = status.as_u16();
    if code < error_from {
        return None;
    }
    Some(match CODES.get(usize::from(code - 400)) {
        Some(text) => StringValue::from(Arc::clone(text)),
        None => StringValue::from(status.as_str().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other_and_named_http() {
        assert_eq!(method(&Method::GET), "GET");
        assert_eq!(
            method(&Method::from_bytes(b"QUERY").expect("token")),
            "QUERY"
        );
        let custom = Method::from_bytes(b"PURGE").expect("token");
        let mut attributes = Vec::new();
        assert_eq!(push_method(&custom, &mut attributes), OTHER);
        assert_eq!(
            attributes,
            [
                KeyValue::new(HTTP_REQUEST_METHOD, OTHER),
                KeyValue::new(HTTP_REQUEST_METHOD_ORIGINAL, "PURGE"),
            ]
        );
        assert_eq!(method_span_name(OTHER), "HTTP");
        assert_eq!(method_span_name("GET"), "GET");
    }

    #[cfg(feature = "http-server")]
    #[test]
    fn span_names_join_method_and_route() {
        assert_eq!(span_name(OTHER, &Route::Owned("/x".into())), "HTTP /x");
        assert_eq!(span_name("GET", &Route::None), "GET");
    }

    #[test]
    fn error_types_start_at_the_given_status() {
        let text = |code| {
            status_error_type(StatusCode::from_u16(code).expect("valid"), 500)
                .map(|v| v.as_str().to_owned())
        };
        assert_eq!(text(499), None);
        assert_eq!(text(500).as_deref(), Some("500"));
        assert_eq!(text(599).as_deref(), Some("599"));
        assert_eq!(text(600).as_deref(), Some("600"));
        assert_eq!(text(999).as_deref(), Some("999"));
    }
}
