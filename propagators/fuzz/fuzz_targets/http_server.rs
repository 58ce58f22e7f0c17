//! Arbitrary header maps through Baton's HTTP server layer: it never
//! panics, the handler always runs (bad headers are absent, never an
//! error), and what it echoes or exposes is validated: the `x-request-id` it
//! returns is a safe id (the caller's only when safe), and the handler sees a
//! remote parent only when a `traceparent` came in.

#![no_main]

use std::convert::Infallible;
use std::future::Ready;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use baton::http::server::{HttpServerLayer, HttpServerService};
use http::{HeaderName, HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower_service::Service;

/// Answers 200, checking what the request's context holds.
#[derive(Clone)]
struct Handler {
    traceparent: bool,
}

impl Service<Request<()>> for Handler {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let id = baton::request_id::RequestId::current().expect("every request has an id");
        assert!(
            safe(id.as_str()),
            "unsafe request id in the handler: {id:?}"
        );
        if baton::trace::remote_parent().is_some() {
            assert!(self.traceparent, "a remote parent without a traceparent");
        }
        std::future::ready(Ok(Response::new(())))
    }
}

fn safe(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

static PROVIDER: LazyLock<SdkTracerProvider> =
    LazyLock::new(|| SdkTracerProvider::builder().build());

fuzz_target!(|data: &[u8]| {
    // Lines of `name:value`; the first line is the path and query.
    let mut lines = data.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let mut builder = Request::builder()
        .uri(http::Uri::try_from(target).unwrap_or_else(|_| http::Uri::from_static("/")));
    let mut traceparent = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        traceparent |= name == "traceparent";
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let incoming_id = request.headers().get("x-request-id").cloned();
    let layer = HttpServerLayer::new().with_tracer_provider(&*PROVIDER);
    let mut service = HttpServerService::new(Handler { traceparent }, layer);
    let mut future = std::pin::pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the handler answers at once, and never fails");
    };
    let echoed = response.headers()["x-request-id"].to_str().expect("ascii");
    assert!(safe(echoed), "unsafe request id echoed: {echoed:?}");
    if let Some(incoming) = incoming_id.as_ref().and_then(|v| v.to_str().ok()) {
        assert!(
            safe(incoming) || echoed != incoming,
            "echoed unvalidated: {incoming:?}"
        );
    }
});
