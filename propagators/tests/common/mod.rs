//! Helpers shared by the propagator test files.

use http::HeaderMap;

/// A header map from `(name, value)` pairs, repeated names appended in order.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            v.parse().expect("test header value"),
        );
    }
    map
}
