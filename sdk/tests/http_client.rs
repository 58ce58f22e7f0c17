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
use http_support::{Server, Telemetry, attr, attrs};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, Value};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

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

async fn start(telemetry: &Telemetry) -> Server {
    let app = Router::new()
        .route("/echo", get(echo))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(
            HttpServerLayer::new()
                .with_tracer_provider(&telemetry.tracer_provider)
                .with_meter_provider(&telemetry.meter_provider),
        );
    Server::start(app).await
}

fn client(telemetry: &Telemetry, middleware: HttpClientMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(
            middleware
                .with_tracer_provider(&telemetry.tracer_provider)
                .with_meter_provider(&telemetry.meter_provider),
        )
        .build()
}

/// A context with a local root span and baggage `tenant=acme`.
fn root(telemetry: &Telemetry) -> Context {
    let tracer = telemetry.tracer_provider.tracer("test");
    let span = tracer.start_with_context("root", &Context::new());
    let cx = Context::new().with_span(span);
    baton::baggage::set_in(&cx, "tenant", "acme").unwrap()
}

#[tokio::test]
async fn the_client_span_is_the_servers_parent() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let client = client(&telemetry, HttpClientMiddleware::new());
    // reqwest moves URL credentials into an `authorization` header before
    // middleware runs; their redaction is unit-tested in `client::url`.
    let url = server.url("/echo?color=blue&sig=abc");
    let cx = root(&telemetry);
    let body = baton::run(cx.clone(), async {
        client.get(&url).send().await.unwrap().text().await.unwrap()
    })
    .await;
    cx.span().end();

    let root = telemetry.span("root");
    let client_span = telemetry.span("GET");
    let server_span = telemetry.span("GET /echo");
    assert_eq!(client_span.span_kind, SpanKind::Client);
    assert_eq!(server_span.span_kind, SpanKind::Server);
    let trace_id = root.span_context.trace_id();
    assert_eq!(client_span.span_context.trace_id(), trace_id);
    assert_eq!(server_span.span_context.trace_id(), trace_id);
    assert_eq!(client_span.parent_span_id, root.span_context.span_id());
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert!(body.starts_with(&format!(
        "traceparent=00-{trace_id}-{}-01 ",
        client_span.span_context.span_id()
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
        assert_eq!(attr(&client_span, key), Some(value), "{key}");
    }
    assert_eq!(attr(&client_span, "error.type"), None);
    assert_eq!(client_span.status, Status::Unset);
    server.stop().await;
}

#[tokio::test]
async fn baggage_goes_only_to_allowed_hosts_and_trace_context_everywhere() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let client = client(
        &telemetry,
        HttpClientMiddleware::new()
            .with_baggage_policy(BaggagePolicy::none().allow_hosts(["LocalHost"])),
    );
    let port = server.addr.port();
    let cx = root(&telemetry);
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
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let client = client(&telemetry, HttpClientMiddleware::new());
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

    let client_spans: Vec<_> = telemetry
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    let error_types: Vec<_> = client_spans.iter().map(|s| attr(s, "error.type")).collect();
    assert_eq!(
        error_types,
        [
            Some("503".into()),
            Some("404".into()),
            Some("connect".into())
        ]
    );
    assert!(client_spans.iter().all(|s| s.status == Status::error("")));
    assert_eq!(attr(&client_spans[2], "http.response.status_code"), None);

    let mut points = telemetry.histogram("http.client.request.duration");
    points.retain(|p| {
        p.attributes
            .iter()
            .any(|kv| kv.key.as_str() == "error.type")
    });
    let refused_point = points
        .iter()
        .find(|p| p.attributes.iter().any(|kv| kv.value == "connect".into()))
        .unwrap();
    assert_eq!(refused_point.count, 1);
    assert_eq!(
        refused_point.attributes,
        attrs([
            ("error.type", "connect".into()),
            ("http.request.method", "GET".into()),
            ("server.address", "127.0.0.1".into()),
            ("server.port", i64::from(closed.port()).into()),
        ])
    );
    assert_eq!(points.len(), 3, "{points:#?}");
    let active = telemetry.counter("http.client.active_requests");
    assert_eq!(active.len(), 2, "{active:#?}");
    assert!(active.iter().all(|(_, value)| *value == 0), "{active:#?}");
}
