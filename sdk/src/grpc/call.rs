//! One gRPC call as both layers see it: the span, the status, what the end
//! records. The server and the client differ only in [`Side`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use foldhash::fast::RandomState;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::{Link, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_RESPONSE_STATUS_CODE, RPC_SYSTEM_NAME,
};
use opentelemetry_semantic_conventions::metric::{
    RPC_CLIENT_CALL_DURATION, RPC_SERVER_CALL_DURATION,
};
use smallvec::SmallVec;
use tonic::Code;

use crate::instrumentation::{Address, Kind, Options, RequestView, Resolved};
use crate::metrics::{Duration, SetKey};

/// `rpc.system.name` for gRPC.
const GRPC: &str = "grpc";
/// `rpc.method` (and `error.type`) when the value is not a recognised one.
const OTHER: &str = "_OTHER";
/// The header (or trailer) that carries the call's status; prebuilt, as a
/// lookup by `&str` parses the name every time.
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Which end of the call a layer instruments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// A layer's call-duration histogram. Shared: each call in flight holds it
/// (one reference count).
#[derive(Clone, Debug)]
pub(crate) struct Instruments(Arc<Duration>);

impl Instruments {
    pub(crate) fn new(side: Side, meter: &Meter) -> Self {
        Instruments(Arc::new(match side {
            Side::Server => crate::metrics::duration(
                meter,
                RPC_SERVER_CALL_DURATION,
                "Duration of gRPC calls received, until the response stream ends.",
            ),
            Side::Client => crate::metrics::duration(
                meter,
                RPC_CLIENT_CALL_DURATION,
                "Duration of gRPC calls made, until the response stream ends.",
            ),
        }))
    }
}

/// Addresses seen in request URIs, so that each call does not copy its host
/// again. A few: a server answers to one or two names, a channel talks to
/// one; past [`ADDRESSES`], calls copy theirs as before.
#[derive(Clone, Debug, Default)]
pub(crate) struct Addresses(Arc<RwLock<HashMap<Box<str>, Address, RandomState>>>);

/// The most [`Addresses`] remembers.
const ADDRESSES: usize = 16;

impl Addresses {
    /// `configured`, else the address of `uri`.
    pub(crate) fn or_seen<'a>(
        &self,
        configured: Option<&'a Address>,
        uri: &http::Uri,
    ) -> Option<Cow<'a, Address>> {
        match configured {
            Some(address) => Some(Cow::Borrowed(address)),
            None => self.of(uri).map(Cow::Owned),
        }
    }

    /// The `server.address` and `server.port` of `uri`, if it has an authority.
    pub(crate) fn of(&self, uri: &http::Uri) -> Option<Address> {
        let authority = uri.authority()?.as_str();
        if let Ok(known) = self.0.read()
            && let Some(address) = known.get(authority)
        {
            return Some(address.clone());
        }
        let address = Address::from_uri(uri)?;
        if let Ok(mut known) = self.0.write()
            && known.len() < ADDRESSES
        {
            known.insert(authority.into(), address.clone());
        }
        Some(address)
    }
}

/// Starts the span of a call to `path` as a child of `parent`, in `base`:
/// the layer's `side` of it, linked to `link` if given.
pub(crate) fn start<K: Kind<Instruments = Instruments>>(
    side: Side,
    options: &Options<K>,
    resolved: &Resolved<'_, K>,
    (parent, base): (&Context, &Context),
    view: &RequestView<'_>,
    server: Option<&Address>,
    link: Option<SpanContext>,
) -> Call {
    let path = view.path();
    let method = method(path);
    let kind = match side {
        Side::Server => SpanKind::Server,
        Side::Client => SpanKind::Client,
    };
    // Room for what `finish` adds too (method, status, error type): a
    // span's attributes should not be reallocated as it ends.
    let mut attributes = Vec::with_capacity(8);
    attributes.push(KeyValue::new(RPC_SYSTEM_NAME, GRPC));
    if let Some(server) = server {
        attributes.extend(server.attributes());
    }
    let name: Cow<'static, str> = match &method {
        Some(Method::Interned(method)) => Cow::Borrowed(method),
        Some(Method::Owned(method)) => Cow::Owned(String::from(&**method)),
        None => {
            attributes.push(KeyValue::new(RPC_METHOD_ORIGINAL, path.to_owned()));
            Cow::Borrowed(GRPC)
        }
    };
    let mut builder = SpanBuilder::from_name(options.span_name(name, view))
        .with_kind(kind)
        .with_attributes(attributes);
    if let Some(link) = link {
        builder = builder.with_links(vec![Link::with_context(link)]);
    }
    Call {
        side,
        duration: resolved.instruments.clone(),
        cx: resolved.tracer.start_in(builder, parent, base),
        method,
        // Only the client's duration carries the server (the
        // conventions make it opt-in on the server).
        server: server.filter(|_| side == Side::Client).cloned(),
        start: Instant::now(),
        status: None,
        done: false,
    }
}

/// `package.Service/Method` from a gRPC path `/package.Service/Method`;
/// `None` when the path does not have that shape.
fn method(path: &str) -> Option<Method> {
    let method = path.strip_prefix('/')?;
    let (service, name) = method.split_once('/')?;
    let ok = !service.is_empty() && !name.is_empty() && !name.contains('/');
    ok.then(|| match crate::intern::get(method) {
        Some(interned) => Method::Interned(interned),
        None => Method::Owned(method.into()),
    })
}

/// A call's `package.Service/Method`.
#[derive(Clone, Debug)]
enum Method {
    /// Answered before: named without an allocation.
    Interned(&'static str),
    /// Not yet known to be one of the application's methods.
    Owned(Arc<str>),
}

impl Method {
    fn value(&self) -> StringValue {
        match self {
            Method::Interned(method) => StringValue::from(*method),
            Method::Owned(method) => StringValue::from(Arc::clone(method)),
        }
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    /// With a gRPC status.
    Status(Code),
    /// Without one: the inner service or the body failed.
    Failed,
}

/// A call in flight. Ends (span and duration) on [`Call::finish`], or when
/// dropped: with the status seen so far, else as `CANCELLED`.
#[derive(Debug)]
pub(crate) struct Call {
    side: Side,
    duration: Instruments,
    cx: Context,
    method: Option<Method>,
    server: Option<Address>,
    start: Instant,
    status: Option<Code>,
    done: bool,
}

impl Call {
    /// The context holding the call's span.
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// Whether a server layer made it.
    pub(crate) fn is_server(&self) -> bool {
        self.side == Side::Server
    }

    /// Reads the status from response headers: present in a trailers-only
    /// response, otherwise inferred from a non-200 HTTP status, otherwise
    /// still to come in the trailers.
    pub(crate) fn on_response<B>(&mut self, response: &http::Response<B>) {
        self.status = status(response.headers()).or_else(|| from_http(response.status()));
    }

    /// Reads the status from the trailers.
    pub(crate) fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(code) = status(trailers) {
            self.status = Some(code);
        }
    }

    /// Ends the call with the status seen so far; `UNKNOWN` if there was
    /// none or it was malformed, as a gRPC client would report it.
    pub(crate) fn end_of_stream(&mut self) {
        self.finish(Outcome::Status(self.status.unwrap_or(Code::Unknown)));
    }

    /// Ends the span and records the duration; only the first call counts.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let side = self.side;
        let (code, error) = match outcome {
            Outcome::Status(code) => (Some(code), is_error(side, code).then(|| name(code))),
            Outcome::Failed => (None, Some(OTHER)),
        };
        // A server answers UNIMPLEMENTED for a method it does not know: the
        // path came from outside and must not become a span name or a metric
        // attribute value.
        let recognised = self
            .method
            .as_ref()
            .filter(|_| !(side == Side::Server && code == Some(Code::Unimplemented)));
        let method = match recognised {
            Some(method) => {
                if let Method::Owned(name) = method {
                    // Answered: one of the application's methods, worth naming once.
                    crate::intern::intern(name);
                }
                KeyValue::new(RPC_METHOD, method.value())
            }
            None => KeyValue::new(RPC_METHOD, OTHER),
        };
        let code_name = code.map(name);
        let code = code_name.map(|code| KeyValue::new(RPC_RESPONSE_STATUS_CODE, code));
        let error_type = error.map(|error| KeyValue::new(ERROR_TYPE, error));

        let span = self.cx.span();
        if recognised.is_none()
            && let Some(original) = &self.method
        {
            span.update_name(GRPC);
            span.set_attribute(KeyValue::new(RPC_METHOD_ORIGINAL, original.value()));
        }
        // In one go: each call locks the span.
        let outcome = code.iter().chain(&error_type).cloned();
        span.set_attributes(std::iter::once(method.clone()).chain(outcome));
        if let Some(error) = error {
            span.set_status(Status::error(error));
        }
        span.end();

        let key = self.key(recognised, code_name, error);
        crate::metrics::in_context(&self.cx, || {
            self.duration.0.record_keyed(elapsed, key, || {
                // On the stack: recording must not allocate per call.
                let server = self.server.iter().flat_map(Address::attributes);
                let optional = [Some(method), code, error_type].into_iter().flatten();
                let system = std::iter::once(KeyValue::new(RPC_SYSTEM_NAME, GRPC));
                system
                    .chain(optional)
                    .chain(server)
                    .collect::<SmallVec<[KeyValue; 6]>>()
            });
        });
    }

    /// The key of the duration's attribute set; `None` when the method or
    /// the server's host is not interned.
    fn key(
        &self,
        method: Option<&Method>,
        code: Option<&'static str>,
        error: Option<&'static str>,
    ) -> Option<SetKey> {
        let method = match method {
            Some(Method::Interned(method)) => method,
            Some(Method::Owned(_)) => return None,
            None => OTHER,
        };
        let (host, port) = match &self.server {
            Some(server) => (Some(server.name?), server.port),
            None => (None, None),
        };
        let port = port.map_or(0, |port| u64::try_from(port).unwrap_or(0) + 1);
        Some(SetKey {
            names: [
                SetKey::name(Some(method)),
                SetKey::name(code),
                SetKey::name(error),
                SetKey::name(host),
            ],
            bits: port,
        })
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before the end: the caller went away (or a trailers-only
        // body was never polled, in which case the status is known).
        self.finish(Outcome::Status(self.status.unwrap_or(Code::Cancelled)));
    }
}

/// The `grpc-status` in `headers`; `None` when absent or not a number
/// (malformed values count as absent). Out-of-range numbers are `UNKNOWN`.
fn status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get(&GRPC_STATUS)?.to_str().ok()?;
    value.parse::<i32>().ok().map(Code::from_i32)
}

/// The gRPC status a client infers from an HTTP status without `grpc-status`
/// (gRPC's `http-grpc-status-mapping.md`); `None` for 200, whose status
/// comes in the trailers.
fn from_http(status: http::StatusCode) -> Option<Code> {
    use http::StatusCode as S;
    Some(match status {
        S::OK => return None,
        S::BAD_REQUEST => Code::Internal,
        S::UNAUTHORIZED => Code::Unauthenticated,
        S::FORBIDDEN => Code::PermissionDenied,
        S::NOT_FOUND => Code::Unimplemented,
        S::TOO_MANY_REQUESTS | S::BAD_GATEWAY | S::SERVICE_UNAVAILABLE | S::GATEWAY_TIMEOUT => {
            Code::Unavailable
        }
        _ => Code::Unknown,
    })
}

/// Whether `code` marks the span as an error: every non-OK status for a
/// client; for a server only those that say the server failed.
fn is_error(side: Side, code: Code) -> bool {
    match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

/// The status code's name, as `rpc.response.status_code` wants it.
fn name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_needs_service_and_name() {
        // (path, method)
        let rows = [
            ("/pkg.Svc/Call", Some("pkg.Svc/Call")),
            ("/Svc/Call", Some("Svc/Call")),
            ("pkg.Svc/Call", None),
            ("/pkg.Svc", None),
            ("/pkg.Svc/", None),
            ("//Call", None),
            ("/a/b/c", None),
            ("/", None),
        ];
        for (path, expected) in rows {
            let method = method(path).map(|m| m.value());
            assert_eq!(method.as_ref().map(StringValue::as_str), expected, "{path}");
        }
    }

    #[test]
    fn malformed_status_is_absent() {
        // (grpc-status value, code)
        let rows: [(&[u8], Option<Code>); 6] = [
            (b"0", Some(Code::Ok)),
            (b"13", Some(Code::Internal)),
            (b"99", Some(Code::Unknown)),
            (b"-1", Some(Code::Unknown)),
            (b"abc", None),
            (b"\xff", None),
        ];
        for (value, expected) in rows {
            let mut headers = http::HeaderMap::new();
            let value = http::HeaderValue::from_bytes(value).expect("valid header value");
            headers.insert(GRPC_STATUS.clone(), value);
            assert_eq!(status(&headers), expected, "{headers:?}");
        }
        assert_eq!(status(&http::HeaderMap::new()), None);
    }

    #[test]
    fn server_errors_are_the_servers_fault() {
        let server: Vec<_> = (0..17)
            .map(Code::from_i32)
            .filter(|&c| is_error(Side::Server, c))
            .map(name)
            .collect();
        assert_eq!(
            server,
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        let client = (0..17)
            .map(Code::from_i32)
            .filter(|&c| is_error(Side::Client, c));
        assert_eq!(client.count(), 16);
    }
}
