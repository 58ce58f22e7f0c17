//! The options every middleware shares, and what a handler can see: over
//! real HTTP and gRPC on loopback, with in-memory telemetry per test.
#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton::trace::SpanContext;
use baton_testkit::{EchoClient, EchoRequest, EchoServer, Unary};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

struct Spans {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
}

impl Spans {
    fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        Spans { provider, exporter }
    }

    fn of_kind(&self, kind: &SpanKind) -> Vec<SpanData> {
        let spans = self.exporter.get_finished_spans().unwrap();
        spans.into_iter().filter(|s| &s.span_kind == kind).collect()
    }

    fn one(&self, kind: &SpanKind) -> SpanData {
        let mut spans = self.of_kind(kind);
        assert_eq!(spans.len(), 1, "{kind:?}: {spans:#?}");
        spans.remove(0)
    }
}

/// `{trace id}-{span id}` of `span`, as the handler shows its own.
fn ids(span: &SpanData) -> String {
    format!(
        "{}-{}",
        span.span_context.trace_id(),
        span.span_context.span_id()
    )
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// What the handler saw: its remote parent and its own span, as text.
fn seen_by_handler() -> String {
    let show = |cx: Option<SpanContext>| {
        cx.map_or("-".to_owned(), |cx| {
            format!("{}-{}", cx.trace_id(), cx.span_id())
        })
    };
    let tenant = baton::baggage::get("tenant").unwrap_or_else(|| "-".into());
    format!(
        "{} {} {tenant}",
        show(baton::trace::remote_parent()),
        show(baton::trace::span_context())
    )
}

async fn http_server(layer: HttpServerLayer) -> SocketAddr {
    let app = Router::new()
        .route("/seen", get(|| async { seen_by_handler() }))
        .route("/health", get(|| async { "up" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header("traceparent", TRACEPARENT)
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_http_handler_sees_its_remote_parent_and_its_span() {
    let spans = Spans::new();
    let addr = http_server(HttpServerLayer::new().with_tracer_provider(&spans.provider)).await;
    let seen = get_text(addr, "/seen").await;
    let server = spans.one(&SpanKind::Server);
    let own = ids(&server);
    assert_eq!(
        seen,
        format!("0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331 {own} acme")
    );
}

#[tokio::test]
async fn a_public_http_endpoint_still_shows_what_the_caller_sent() {
    let spans = Spans::new();
    let layer = HttpServerLayer::new()
        .with_tracer_provider(&spans.provider)
        .public_endpoint();
    let addr = http_server(layer).await;
    let seen = get_text(addr, "/seen").await;
    let server = spans.one(&SpanKind::Server);
    let (remote, own_and_tenant) = seen.split_once(' ').unwrap();
    assert_eq!(remote, "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331");
    assert!(
        !own_and_tenant.starts_with("0af7651916cd43dd8448eb211c80319c"),
        "a new trace: {seen}"
    );
    assert!(
        own_and_tenant.ends_with(" -"),
        "caller baggage dropped: {seen}"
    );
    assert_eq!(server.links.len(), 1);
}

#[tokio::test]
async fn http_filter_span_name_and_server_address_apply() {
    let spans = Spans::new();
    let layer = HttpServerLayer::new()
        .with_tracer_provider(&spans.provider)
        .with_filter(|request| request.path() != "/health")
        .with_span_name(|default, request| format!("{default} via {}", request.method()))
        .with_server_address("shop.example", 443);
    let addr = http_server(layer).await;
    assert_eq!(get_text(addr, "/health").await, "up");
    let seen = get_text(addr, "/seen").await;
    assert!(
        seen.ends_with(" acme"),
        "a filtered request still carries context: {seen}"
    );
    let server = spans.one(&SpanKind::Server);
    assert_eq!(server.name, "GET /seen via GET");
    assert_eq!(attr(&server, "server.address"), Some("shop.example".into()));
    assert_eq!(attr(&server, "server.port"), Some(443.into()));

    // The client middleware: its own name, filter.
    let client = HttpClientMiddleware::new()
        .with_tracer_provider(&spans.provider)
        .with_filter(|request| request.path() != "/health")
        .with_span_name(|default, request| format!("{default} {}", request.path()))
        .client(reqwest::Client::builder())
        .unwrap();
    let root = spans.provider.tracer("test").start("root");
    let cx = opentelemetry::Context::new().with_span(root);
    for path in ["/health", "/seen"] {
        let url = format!("http://{addr}{path}");
        let body = baton::run(cx.clone(), client.get(url).send())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.starts_with("- "),
            "{path}: trace context sent: {body}"
        );
    }
    let client = spans.one(&SpanKind::Client);
    assert_eq!(client.name, "GET /seen");
}

async fn grpc_server(layer: GrpcServerLayer) -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(EchoServer::new(Unary(|_: &_| seen_by_handler())))
            .serve_with_incoming(incoming),
    );
    Endpoint::from_shared(format!("http://{addr}")).unwrap()
}

fn with_caller_context<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("traceparent", TRACEPARENT.parse().unwrap());
    metadata.insert("baggage", "tenant=acme".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_handler_sees_its_remote_parent_and_health_checks_can_be_left_out() {
    let spans = Spans::new();
    let layer = GrpcServerLayer::new()
        .with_tracer_provider(&spans.provider)
        .with_filter(|call| !call.is_grpc_health_check());
    let endpoint = grpc_server(layer).await;
    let mut health = HealthClient::new(endpoint.connect_lazy());
    health
        .check(with_caller_context(HealthCheckRequest::default()))
        .await
        .unwrap();
    let mut echo = EchoClient::new(endpoint.connect_lazy());
    let seen = echo
        .unary(with_caller_context(EchoRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .message;
    let server = spans.one(&SpanKind::Server);
    assert_eq!(
        server.name, "baton.test.Echo/Unary",
        "the health check left out"
    );
    let own = ids(&server);
    assert_eq!(
        seen,
        format!("0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331 {own} acme")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_grpc_endpoint_links_and_drops_baggage() {
    let spans = Spans::new();
    let layer = GrpcServerLayer::new()
        .with_tracer_provider(&spans.provider)
        .public_endpoint()
        .with_span_name(|default, _| format!("public {default}"));
    let endpoint = grpc_server(layer).await;
    let mut echo = EchoClient::new(endpoint.connect_lazy());
    let seen = echo
        .unary(with_caller_context(EchoRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .message;
    let server = spans.one(&SpanKind::Server);
    assert_eq!(server.name, "public baton.test.Echo/Unary");
    assert_eq!(server.links.len(), 1);
    assert_ne!(
        server.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert!(
        seen.starts_with("0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331 "),
        "{seen}"
    );
    assert!(seen.ends_with(" -"), "caller baggage dropped: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_span_names_its_destination_without_an_extra_call() {
    let spans = Spans::new();
    let endpoint = grpc_server(GrpcServerLayer::new()).await;
    let port = endpoint.uri().port_u16().unwrap();
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(endpoint.uri()).with_tracer_provider(&spans.provider))
        .service(endpoint.connect_lazy());
    EchoClient::new(channel)
        .unary(EchoRequest::default())
        .await
        .unwrap();
    let client = spans.one(&SpanKind::Client);
    assert_eq!(attr(&client, "server.address"), Some("127.0.0.1".into()));
    assert_eq!(attr(&client, "server.port"), Some(i64::from(port).into()));
}
