//! The request as filters and span-name formatters see it.

use http::{Extensions, HeaderMap, Method};

/// A read-only view of a request, the same for HTTP and gRPC, servers and
/// clients: what [`with_filter`](crate::http::server::HttpServerLayer::with_filter)
/// and [`with_span_name`](crate::http::server::HttpServerLayer::with_span_name)
/// are given.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    method: &'a Method,
    target: Target<'a>,
    headers: &'a HeaderMap,
    extensions: Option<&'a Extensions>,
}

#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    #[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
    Uri(&'a http::Uri),
    #[cfg(feature = "reqwest")]
    Url(&'a reqwest::Url),
}

/// The path prefix of the standard gRPC health service, `grpc.health.v1.Health`.
const GRPC_HEALTH: &str = "/grpc.health.v1.Health/";

impl<'a> RequestView<'a> {
    /// A request on its way in or out through a tower service.
    #[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
    pub(crate) fn from_parts(
        method: &'a Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
        extensions: &'a Extensions,
    ) -> Self {
        RequestView {
            method,
            target: Target::Uri(uri),
            headers,
            extensions: Some(extensions),
        }
    }

    /// A reqwest request (whose extensions are not public).
    #[cfg(feature = "reqwest")]
    pub(crate) fn from_reqwest(request: &'a reqwest::Request) -> Self {
        RequestView {
            method: request.method(),
            target: Target::Url(request.url()),
            headers: request.headers(),
            extensions: None,
        }
    }

    /// The HTTP method (`POST` for every gRPC call).
    #[must_use]
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The path: `/users/42`, or `/package.Service/Method` for gRPC.
    #[must_use]
    pub fn path(&self) -> &'a str {
        match self.target {
            #[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
            Target::Uri(uri) => uri.path(),
            #[cfg(feature = "reqwest")]
            Target::Url(url) => url.path(),
        }
    }

    /// The host the request names, if it names one: the URL's or the URI's
    /// authority, else the `Host` header.
    #[must_use]
    pub fn host(&self) -> Option<&'a str> {
        match self.target {
            #[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
            Target::Uri(uri) => uri.host().or_else(|| {
                let host = self.headers.get(http::header::HOST)?.to_str().ok()?;
                Some(split_host(host)?.0)
            }),
            #[cfg(feature = "reqwest")]
            Target::Url(url) => url.host_str(),
        }
    }

    /// The request headers (gRPC metadata included).
    #[must_use]
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request's extensions (axum's `MatchedPath`, say); `None` for a
    /// reqwest request, whose extensions are private to reqwest.
    #[must_use]
    pub fn extensions(&self) -> Option<&'a Extensions> {
        self.extensions
    }

    /// Whether this is a call to the standard gRPC health service,
    /// `grpc.health.v1.Health` (`Check` and `Watch`): the usual thing to
    /// leave out with `with_filter(|r| !r.is_grpc_health_check())`.
    #[must_use]
    pub fn is_grpc_health_check(&self) -> bool {
        self.path().starts_with(GRPC_HEALTH)
    }
}

/// A host and, if given, a port.
#[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
pub(crate) type HostPort<'a> = Option<(&'a str, Option<u16>)>;

/// `host[:port]` (RFC 9110 `Host`) split, without copying it into an
/// `http::uri::Authority` as parsing one would; `None` when malformed.
#[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
pub(crate) fn split_host(value: &str) -> HostPort<'_> {
    let (host, port) = if value.starts_with('[') {
        // An IP literal keeps its brackets, as `Authority::host` does.
        let end = value.find(']')? + 1;
        let (host, rest) = value.split_at(end);
        let literal = host[1..end - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        (literal.then_some(host)?, rest)
    } else {
        let end = value.find(':').unwrap_or(value.len());
        let (host, rest) = value.split_at(end);
        let name = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
        (name.then_some(host)?, rest)
    };
    if host.is_empty() {
        return None;
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some("") => None,
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => Some(port.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
#[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
mod tests {
    use super::*;

    #[test]
    fn host_headers_split_into_host_and_port() {
        // (Host, expected)
        let rows: [(&str, HostPort<'_>); 14] = [
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some(8080)))),
            ("example.com:", Some(("example.com", None))),
            ("127.0.0.1:80", Some(("127.0.0.1", Some(80)))),
            ("[::1]:3000", Some(("[::1]", Some(3000)))),
            ("[::1]", Some(("[::1]", None))),
            ("", None),
            (":80", None),
            ("example.com:99999", None),
            ("example.com:8a", None),
            ("user@example.com", None),
            ("exa mple.com", None),
            ("[::1", None),
            ("[::1]x", None),
        ];
        for (value, expected) in rows {
            assert_eq!(split_host(value), expected, "{value:?}");
        }
    }
}
