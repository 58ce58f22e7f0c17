//! The HTTP server layer against a real axum server on 127.0.0.1.

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod http_support;

use std::future::{Ready, ready};
use std::task::{Context as TaskContext, Poll};

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::get;
use baton::http::server::HttpServerLayer;
use baton::metrics::DURATION_BOUNDARIES;
use baton::request_id::RequestId;
use baton::testing::{Capture, PointValue};
use http_support::{Server, durations};
use opentelemetry::Value;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId};
use tower_layer::Layer;
use tower_service::Service;

/// A caller's `traceparent`: a remote parent in a trace of `capture`'s own
/// (parallel tests must not send the same trace id, whose spans would go to
/// the capture that claimed it first).
fn traceparent(capture: &Capture) -> (SpanContext, String) {
    let parent = capture.remote_parent();
    let header = format!("00-{}-{}-01", parent.trace_id(), parent.span_id());
    (parent, header)
}

/// What the handler saw, one `key=value` per line, including from a task it
/// spawned with `baton::spawn`.
async fn seen() -> String {
    let here = describe();
    let spawned = baton::spawn(async { describe() }).await.unwrap();
    format!("{here}\nspawned {spawned}")
}

fn describe() -> String {
    let cx = baton::current();
    let span = cx.span();
    let sc = span.span_context();
    format!(
        "request_id={} tenant={} trace_id={} span_id={}",
        RequestId::current()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        baton::baggage::get("tenant").unwrap_or_default(),
        sc.trace_id(),
        sc.span_id(),
    )
}

/// The app behind `layer`, its requests handled in `capture`'s context so
/// that those without trace headers are captured too.
fn app(layer: HttpServerLayer, capture: &Capture) -> Router {
    Router::new()
        .route("/users/{id}", get(seen))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/health", get(|| async { "up" }))
        .layer(layer)
        .layer(capture.layer())
}

fn layer() -> HttpServerLayer {
    HttpServerLayer::new().with_filter(|request| request.path() != "/health")
}

#[tokio::test]
async fn server_span_continues_the_incoming_trace_and_the_handler_sees_the_context() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let (parent, traceparent) = traceparent(&capture);
    let response = reqwest::Client::new()
        .get(server.url("/users/42?x=1"))
        .header("traceparent", traceparent)
        .header("baggage", "tenant=acme")
        .header("user-agent", "baton-test/1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();

    let spans = capture.spans().await;
    let span = spans.one("GET /users/{id}");
    assert_eq!(*span.kind(), SpanKind::Server);
    assert_eq!(span.trace_id(), parent.trace_id());
    assert_eq!(span.parent_span_id(), parent.span_id());
    assert!(span.has_remote_parent());
    assert_eq!(*span.status(), Status::Unset);
    let port = i64::from(server.addr.port());
    let expected: [(&str, Value); 10] = [
        ("http.request.method", "GET".into()),
        ("http.route", "/users/{id}".into()),
        ("url.path", "/users/42".into()),
        ("url.query", "x=1".into()),
        ("url.scheme", "http".into()),
        ("server.address", "127.0.0.1".into()),
        ("server.port", port.into()),
        ("user_agent.original", "baton-test/1".into()),
        ("network.protocol.version", "1.1".into()),
        ("http.response.status_code", 200.into()),
    ];
    for (key, value) in expected {
        span.assert_attribute(key, value);
    }
    span.assert_no_attribute("error.type");

    // A generated id, echoed, and current in the handler and its spawned task.
    assert!(
        RequestId::parse(&echoed).is_some() && echoed.len() == 32,
        "{echoed}"
    );
    let expected = format!(
        "request_id={echoed} tenant=acme trace_id={} span_id={}",
        parent.trace_id(),
        span.span_id()
    );
    assert_eq!(body, format!("{expected}\nspawned {expected}"));
    server.stop().await;
}

#[tokio::test]
async fn signatures_in_the_query_are_redacted() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let response = reqwest::Client::new()
        .get(server.url("/users/7?color=blue&sig=secret&X-Amz-Signature=s2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    capture
        .spans()
        .await
        .one("GET /users/{id}")
        .assert_attribute(
            "url.query",
            "color=blue&sig=REDACTED&X-Amz-Signature=REDACTED",
        );
    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_reused_only_when_safe() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let client = reqwest::Client::new();
    // `a\u{7f}` cannot be sent: DEL is invalid in an `http` header value and
    // hyper rejects it before any service runs. Opaque bytes can be sent and
    // are not text: the layer must treat them as absent.
    let rows: [(&[u8], bool); 4] = [
        (b"abc-123.x", true),
        (b"a b", false),
        (&[b'a'; 200], false),
        (b"a\xff", false),
    ];
    for (incoming, reused) in rows {
        let response = client
            .get(server.url("/users/1"))
            .header("x-request-id", HeaderValue::from_bytes(incoming).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        assert_eq!(echoed.as_bytes() == incoming, reused, "{incoming:?}");
        assert!(RequestId::parse(&echoed).is_some());
        assert!(body.starts_with(&format!("request_id={echoed} ")), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_5xx_is_an_error_a_4xx_is_not() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(server.url("/fail"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        client
            .get(server.url("/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let spans = capture.spans().await;
    let failed = spans.one("GET /fail");
    assert_eq!(*failed.status(), Status::error(""));
    failed
        .assert_attribute("error.type", "500")
        .assert_attribute("http.response.status_code", 500_i64);
    // No route matched: the span is named by the method only, never the raw path.
    let missing = spans.one("GET");
    assert_eq!(*missing.status(), Status::Unset);
    missing
        .assert_no_attribute("error.type")
        .assert_no_attribute("http.route")
        .assert_attribute("http.response.status_code", 404_i64);

    let metrics = capture.metrics();
    let mut points = durations(&metrics, "http.server.request.duration");
    points.sort_by_key(|p| p.attributes.len());
    let [not_found, fail] = points.as_slice() else {
        panic!("{metrics}")
    };
    assert_eq!(
        not_found.attribute_texts(),
        [
            "http.request.method=GET",
            "http.response.status_code=404",
            "network.protocol.version=1.1",
            "url.scheme=http",
        ]
    );
    assert_eq!(
        fail.attribute_texts(),
        [
            "error.type=500",
            "http.request.method=GET",
            "http.response.status_code=500",
            "http.route=/fail",
            "network.protocol.version=1.1",
            "url.scheme=http",
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn filtered_requests_get_no_span_no_metric_no_request_id() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let client = reqwest::Client::new();
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-request-id").is_none());
    assert_eq!(health.text().await.unwrap(), "up");
    // One traced request, so the metrics are known to be collected at all.
    client.get(server.url("/users/1")).send().await.unwrap();

    let spans = capture.spans().await;
    let names: Vec<_> = spans.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["GET /users/{id}"], "{spans}");
    let metrics = capture.metrics();
    let points = durations(&metrics, "http.server.request.duration");
    assert_eq!(points.len(), 1, "{metrics}");
    assert_eq!(
        points[0].attribute("http.route"),
        Some(&Value::from("/users/{id}"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_public_endpoint_starts_a_new_trace_linked_to_the_caller() {
    let capture = Capture::start();
    let server = Server::start(app(layer().public_endpoint(), &capture)).await;
    let (parent, traceparent) = traceparent(&capture);
    let body = reqwest::Client::new()
        .get(server.url("/users/7"))
        .header("traceparent", traceparent)
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let spans = capture.spans().await;
    let span = spans.one("GET /users/{id}");
    assert_ne!(span.trace_id(), parent.trace_id());
    assert_eq!(span.parent_span_id(), SpanId::INVALID);
    let links = &span.data().links;
    let [link] = links.links.as_slice() else {
        panic!("{links:?}")
    };
    assert_eq!(link.span_context.trace_id(), parent.trace_id());
    assert_eq!(link.span_context.span_id(), parent.span_id());
    // Untrusted baggage is not handed to the handler.
    assert!(body.contains(" tenant= "), "{body}");
    assert!(body.contains(&format!("trace_id={} ", span.trace_id())));
    server.stop().await;
}

#[tokio::test]
async fn durations_use_the_conventions_buckets_and_active_requests_return_to_zero() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let client = reqwest::Client::new();
    for id in ["1", "2", "3"] {
        client
            .get(server.url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
    }
    // Every request's span has ended, and with it its active count.
    capture.spans().await;
    let metrics = capture.metrics();
    let points = durations(&metrics, "http.server.request.duration");
    let [point] = points.as_slice() else {
        panic!("{metrics}")
    };
    assert_eq!(point.count(), Some(3));
    let PointValue::Histogram { bounds, .. } = &point.value else {
        unreachable!("checked by `durations`")
    };
    assert_eq!(*bounds, DURATION_BOUNDARIES);
    assert_eq!(
        point.attribute_texts(),
        [
            "http.request.method=GET",
            "http.response.status_code=200",
            "http.route=/users/{id}",
            "network.protocol.version=1.1",
            "url.scheme=http",
        ]
    );
    let active: Vec<_> = metrics.points("http.server.active_requests").collect();
    let [active] = active.as_slice() else {
        panic!("{metrics}")
    };
    assert_eq!(
        active.attribute_texts(),
        ["http.request.method=GET", "url.scheme=http"]
    );
    assert_eq!(active.value, PointValue::Sum(0.0));
    server.stop().await;
}

/// A plain tower service that fails, to check the error path without axum.
#[derive(Clone)]
struct Failing;

#[derive(Debug)]
struct Broken;

impl Service<http::Request<()>> for Failing {
    type Response = http::Response<()>;
    type Error = Broken;
    type Future = Ready<Result<Self::Response, Broken>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Broken>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        ready(Err(Broken))
    }
}

#[tokio::test]
async fn an_inner_service_error_is_recorded_with_its_type() {
    let capture = Capture::start();
    let mut service = capture.layer().layer(layer().layer(Failing));
    let request = http::Request::builder()
        .method("PURGE")
        .uri("/cache")
        .body(())
        .unwrap();
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    assert!(service.call(request).await.is_err());

    // An unknown method: `_OTHER`, with the original kept, and a span named `HTTP`.
    let spans = capture.spans().await;
    let span = spans.one("HTTP");
    let error_type = std::any::type_name::<Broken>();
    span.assert_attribute("error.type", error_type)
        .assert_attribute("http.request.method", "_OTHER")
        .assert_attribute("http.request.method_original", "PURGE")
        .assert_no_attribute("http.response.status_code");
    assert_eq!(*span.status(), Status::error(""));
    let metrics = capture.metrics();
    let points = durations(&metrics, "http.server.request.duration");
    assert_eq!(
        points[0].attribute_texts(),
        [
            format!("error.type={error_type}"),
            "http.request.method=_OTHER".to_owned(),
            "network.protocol.version=1.1".to_owned(),
            "url.scheme=http".to_owned(),
        ]
    );
}

#[tokio::test]
async fn malformed_propagation_headers_count_as_absent() {
    let capture = Capture::start();
    let server = Server::start(app(layer(), &capture)).await;
    let response = reqwest::Client::new()
        .get(server.url("/users/1"))
        .header("traceparent", "00-not-a-trace-01")
        .header("baggage", "=broken;;")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let spans = capture.spans().await;
    let span = spans.one("GET /users/{id}");
    assert_eq!(span.parent_span_id(), SpanId::INVALID);
    assert!(span.trace_id() != TraceId::INVALID);
    assert!(body.contains(" tenant= "), "{body}");
    server.stop().await;
}
