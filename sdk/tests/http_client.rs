//! The HTTP client middleware with a real reqwest client against a real axum
//! server (itself traced by the server layer) on 127.0.0.1.

#![cfg(all(feature = "reqwest", feature = "axum"))]
#![allow(clippy::unwrap_used, reason = "tests")]

mod http_support;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton::instrumentation::BaggagePolicy;
use baton::testing::{Capture, PointValue};
use http_support::{Server, durations};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, Value};
use reqwest_middleware::ClientWithMiddleware;

/// Echoes the propagation headers it received.
async fn echo(headers: HeaderMap) -> String {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "traceparent={} baggage={}",
        get("traceparent"),
        get("baggage")
    )
}

/// The server, traced with the global providers: requests from `client`
/// bring the trace of the test's capture.
async fn start() -> Server {
    let app = Router::new()
        .route("/echo", get(echo))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(HttpServerLayer::new());
    Server::start(app).await
}

fn client(middleware: HttpClientMiddleware) -> ClientWithMiddleware {
    middleware.client(reqwest::Client::builder()).unwrap()
}

/// A context of `capture` with a local root span and baggage `tenant=acme`.
fn root(capture: &Capture) -> Context {
    let span = opentelemetry::global::tracer("test").start_with_context("root", &capture.context());
    let cx = capture.context().with_span(span);
    baton::baggage::set_in(&cx, "tenant", "acme").unwrap()
}

#[tokio::test]
async fn the_client_span_is_the_servers_parent() {
    let capture = Capture::start();
    let server = start().await;
    let client = client(HttpClientMiddleware::new());
    // reqwest moves URL credentials into an `authorization` header before
    // middleware runs; their redaction is unit-tested in `client::url`.
    let url = server.url("/echo?color=blue&sig=abc");
    let cx = root(&capture);
    let body = baton::run(cx.clone(), async {
        client.get(&url).send().await.unwrap().text().await.unwrap()
    })
    .await;
    cx.span().end();

    let spans = capture.spans().await;
    let root = spans.one("root");
    let client_span = spans.one("GET");
    let server_span = spans.one("GET /echo");
    assert_eq!(*client_span.kind(), SpanKind::Client);
    assert_eq!(*server_span.kind(), SpanKind::Server);
    let trace_id = root.trace_id();
    assert_eq!(client_span.trace_id(), trace_id);
    assert_eq!(server_span.trace_id(), trace_id);
    spans.assert_parent("GET", "root");
    spans.assert_parent("GET /echo", "GET");
    assert!(body.starts_with(&format!(
        "traceparent=00-{trace_id}-{}-01 ",
        client_span.span_id()
    )));

    let port = i64::from(server.addr.port());
    let expected: [(&str, Value); 6] = [
        ("http.request.method", "GET".into()),
        ("server.address", "127.0.0.1".into()),
        ("server.port", port.into()),
        (
            "url.full",
            server.url("/echo?color=blue&sig=REDACTED").into(),
        ),
        ("http.response.status_code", 200.into()),
        ("network.protocol.version", "1.1".into()),
    ];
    for (key, value) in expected {
        client_span.assert_attribute(key, value);
    }
    client_span.assert_no_attribute("error.type");
    assert_eq!(*client_span.status(), Status::Unset);
    server.stop().await;
}

#[tokio::test]
async fn baggage_goes_only_to_allowed_hosts_and_trace_context_everywhere() {
    let capture = Capture::start();
    let server = start().await;
    let client = client(
        HttpClientMiddleware::new()
            .with_baggage_policy(BaggagePolicy::none().allow_hosts(["LocalHost"])),
    );
    let port = server.addr.port();
    let cx = root(&capture);
    let [outside, allowed] = baton::run(cx, async {
        let mut bodies = Vec::new();
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{port}/echo");
            bodies.push(client.get(&url).send().await.unwrap().text().await.unwrap());
        }
        <[String; 2]>::try_from(bodies).unwrap()
    })
    .await;
    assert!(outside.starts_with("traceparent=00-"), "{outside}");
    assert!(outside.ends_with(" baggage=-"), "{outside}");
    assert!(allowed.starts_with("traceparent=00-"), "{allowed}");
    assert!(allowed.ends_with(" baggage=tenant=acme"), "{allowed}");
    server.stop().await;
}

#[tokio::test]
async fn error_responses_and_transport_errors_are_errors() {
    let capture = Capture::start();
    let server = start().await;
    let client = client(HttpClientMiddleware::new());
    let closed = capture
        .run(async {
            let status = client
                .get(server.url("/fail"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 503);
            let status = client
                .get(server.url("/nope"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404);
            server.stop().await;

            // A port nobody listens on any more: connection refused.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let closed = listener.local_addr().unwrap();
            drop(listener);
            let refused = client.get(format!("http://{closed}/")).send().await;
            assert!(refused.is_err());
            closed
        })
        .await;

    let spans = capture.spans().await;
    let client_spans: Vec<_> = spans
        .iter()
        .filter(|s| *s.kind() == SpanKind::Client)
        .collect();
    let error_types: Vec<_> = client_spans
        .iter()
        .map(|s| s.attribute("error.type").cloned())
        .collect();
    assert_eq!(
        error_types,
        [
            Some("503".into()),
            Some("404".into()),
            Some("connect".into())
        ]
    );
    assert!(
        client_spans
            .iter()
            .all(|s| *s.status() == Status::error(""))
    );
    client_spans[2].assert_no_attribute("http.response.status_code");

    let metrics = capture.metrics();
    let mut points = durations(&metrics, "http.client.request.duration");
    points.retain(|p| p.attribute("error.type").is_some());
    let refused_point = points
        .iter()
        .find(|p| p.attribute("error.type") == Some(&Value::from("connect")))
        .unwrap();
    assert_eq!(refused_point.count(), Some(1));
    assert_eq!(
        refused_point.attribute_texts(),
        [
            "error.type=connect".to_owned(),
            "http.request.method=GET".to_owned(),
            "server.address=127.0.0.1".to_owned(),
            format!("server.port={}", closed.port()),
        ]
    );
    assert_eq!(points.len(), 3, "{metrics}");
    let active: Vec<_> = metrics.points("http.client.active_requests").collect();
    assert_eq!(active.len(), 2, "{metrics}");
    assert!(
        active.iter().all(|p| p.value == PointValue::Sum(0.0)),
        "{metrics}"
    );
}
