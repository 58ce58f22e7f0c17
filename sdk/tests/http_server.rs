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
use http_support::{Server, Telemetry, attr, attrs};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId};
use opentelemetry::{KeyValue, Value};
use tower_layer::Layer;
use tower_service::Service;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-01")
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

fn app(layer: HttpServerLayer) -> Router {
    Router::new()
        .route("/users/{id}", get(seen))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/health", get(|| async { "up" }))
        .layer(layer)
}

fn layer(telemetry: &Telemetry) -> HttpServerLayer {
    HttpServerLayer::new()
        .with_tracer_provider(&telemetry.tracer_provider)
        .with_meter_provider(&telemetry.meter_provider)
        .with_filter(|request| request.path() != "/health")
}

#[tokio::test]
async fn server_span_continues_the_incoming_trace_and_the_handler_sees_the_context() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
    let response = reqwest::Client::new()
        .get(server.url("/users/42?x=1"))
        .header("traceparent", traceparent())
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

    let span = telemetry.span("GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE_ID).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT_ID).unwrap());
    assert!(span.parent_span_is_remote);
    assert_eq!(span.status, Status::Unset);
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
        assert_eq!(attr(&span, key), Some(value), "{key}");
    }
    assert_eq!(attr(&span, "error.type"), None);

    // A generated id, echoed, and current in the handler and its spawned task.
    assert!(
        RequestId::parse(&echoed).is_some() && echoed.len() == 32,
        "{echoed}"
    );
    let expected = format!(
        "request_id={echoed} tenant=acme trace_id={TRACE_ID} span_id={}",
        span.span_context.span_id()
    );
    assert_eq!(body, format!("{expected}\nspawned {expected}"));
    server.stop().await;
}

#[tokio::test]
async fn signatures_in_the_query_are_redacted() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
    let response = reqwest::Client::new()
        .get(server.url("/users/7?color=blue&sig=secret&X-Amz-Signature=s2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let span = telemetry.span("GET /users/{id}");
    assert_eq!(
        attr(&span, "url.query"),
        Some("color=blue&sig=REDACTED&X-Amz-Signature=REDACTED".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_reused_only_when_safe() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
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
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
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

    let failed = telemetry.span("GET /fail");
    assert_eq!(failed.status, Status::error(""));
    assert_eq!(attr(&failed, "error.type"), Some("500".into()));
    assert_eq!(attr(&failed, "http.response.status_code"), Some(500.into()));
    // No route matched: the span is named by the method only, never the raw path.
    let missing = telemetry.span("GET");
    assert_eq!(missing.status, Status::Unset);
    assert_eq!(attr(&missing, "error.type"), None);
    assert_eq!(attr(&missing, "http.route"), None);
    assert_eq!(
        attr(&missing, "http.response.status_code"),
        Some(404.into())
    );

    let mut points = telemetry.histogram("http.server.request.duration");
    points.sort_by_key(|p| p.attributes.len());
    let common = |status: i64| {
        [
            ("http.request.method", Value::from("GET")),
            ("http.response.status_code", status.into()),
            ("network.protocol.version", "1.1".into()),
            ("url.scheme", "http".into()),
        ]
    };
    let [not_found, fail] = points.as_slice() else {
        panic!("{points:#?}")
    };
    assert_eq!(not_found.attributes, attrs(common(404)));
    let [a, b, c, d] = common(500);
    assert_eq!(
        fail.attributes,
        attrs([
            a,
            b,
            c,
            d,
            ("http.route", "/fail".into()),
            ("error.type", "500".into())
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn filtered_requests_get_no_span_no_metric_no_request_id() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
    let client = reqwest::Client::new();
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-request-id").is_none());
    assert_eq!(health.text().await.unwrap(), "up");
    // One traced request, so the metrics are known to be collected at all.
    client.get(server.url("/users/1")).send().await.unwrap();

    let names: Vec<_> = telemetry.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["GET /users/{id}"]);
    let points = telemetry.histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert!(
        points[0]
            .attributes
            .contains(&KeyValue::new("http.route", "/users/{id}"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_public_endpoint_starts_a_new_trace_linked_to_the_caller() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry).public_endpoint())).await;
    let body = reqwest::Client::new()
        .get(server.url("/users/7"))
        .header("traceparent", traceparent())
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let span = telemetry.span("GET /users/{id}");
    let incoming = TraceId::from_hex(TRACE_ID).unwrap();
    assert_ne!(span.span_context.trace_id(), incoming);
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    let [link] = span.links.links.as_slice() else {
        panic!("{:?}", span.links)
    };
    assert_eq!(link.span_context.trace_id(), incoming);
    assert_eq!(
        link.span_context.span_id(),
        SpanId::from_hex(PARENT_ID).unwrap()
    );
    // Untrusted baggage is not handed to the handler.
    assert!(body.contains(" tenant= "), "{body}");
    assert!(body.contains(&format!("trace_id={} ", span.span_context.trace_id())));
    server.stop().await;
}

#[tokio::test]
async fn durations_use_the_conventions_buckets_and_active_requests_return_to_zero() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
    let client = reqwest::Client::new();
    for id in ["1", "2", "3"] {
        client
            .get(server.url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
    }
    let points = telemetry.histogram("http.server.request.duration");
    let [point] = points.as_slice() else {
        panic!("{points:#?}")
    };
    assert_eq!(point.count, 3);
    assert_eq!(point.bounds, DURATION_BOUNDARIES);
    assert_eq!(
        point.attributes,
        attrs([
            ("http.request.method", "GET".into()),
            ("http.route", "/users/{id}".into()),
            ("http.response.status_code", 200.into()),
            ("network.protocol.version", "1.1".into()),
            ("url.scheme", "http".into()),
        ])
    );
    let active = telemetry.counter("http.server.active_requests");
    assert_eq!(
        active,
        [(
            attrs([
                ("http.request.method", "GET".into()),
                ("url.scheme", "http".into())
            ]),
            0
        )]
    );
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
    let telemetry = Telemetry::new();
    let mut service = layer(&telemetry).layer(Failing);
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
    let span = telemetry.span("HTTP");
    let error_type = std::any::type_name::<Broken>();
    assert_eq!(attr(&span, "error.type"), Some(error_type.into()));
    assert_eq!(attr(&span, "http.request.method"), Some("_OTHER".into()));
    assert_eq!(
        attr(&span, "http.request.method_original"),
        Some("PURGE".into())
    );
    assert_eq!(attr(&span, "http.response.status_code"), None);
    assert_eq!(span.status, Status::error(""));
    let points = telemetry.histogram("http.server.request.duration");
    assert_eq!(
        points[0].attributes,
        attrs([
            ("error.type", error_type.into()),
            ("http.request.method", "_OTHER".into()),
            ("network.protocol.version", "1.1".into()),
            ("url.scheme", "http".into()),
        ])
    );
}

#[tokio::test]
async fn malformed_propagation_headers_count_as_absent() {
    let telemetry = Telemetry::new();
    let server = Server::start(app(layer(&telemetry))).await;
    let response = reqwest::Client::new()
        .get(server.url("/users/1"))
        .header("traceparent", "00-not-a-trace-01")
        .header("baggage", "=broken;;")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let span = telemetry.span("GET /users/{id}");
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert!(span.span_context.trace_id() != TraceId::INVALID);
    assert!(body.contains(" tenant= "), "{body}");
    server.stop().await;
}
