//! Baton's layers against a Go service instrumented the way Go services are:
//! `otelgrpc` and `otelhttp` on the official Go SDK
//! (`integration-tests/peers/go`, built by `scripts/setup-peers`), over real
//! gRPC and HTTP on 127.0.0.1. Baton's spans go to memory; the Go peer
//! reports what its SDK saw (and, calling out, the span it recorded).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use baton::grpc::client::GrpcClientLayer;
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use http::HeaderMap;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value as Json;
use support::peer::{Peer, PeerKind, PeerView};
use tonic::transport::Endpoint;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const METHOD: &str = "grpc.health.v1.Health/Check";

/// A tracer provider whose spans land in memory as they end.
fn telemetry() -> (SdkTracerProvider, InMemorySpanExporter) {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    (provider, spans)
}

/// The one finished span of `kind` named `name`.
#[track_caller]
fn one(spans: &InMemorySpanExporter, kind: &SpanKind, name: &str) -> SpanData {
    let all = spans.get_finished_spans().expect("finished spans");
    let mut matching = all
        .iter()
        .filter(|s| &s.span_kind == kind && s.name == name);
    let span = matching
        .next()
        .unwrap_or_else(|| panic!("no {kind:?} span {name:?} among {all:#?}"))
        .clone();
    assert!(matching.next().is_none(), "several {kind:?} spans {name:?}");
    span
}

#[track_caller]
fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// A context holding a fresh span of the test's own and `tenant=acme`
/// baggage: the caller's side of each call below.
fn caller(provider: &SdkTracerProvider) -> Context {
    let tracer = provider.tracer("test");
    let cx = Context::new().with_span(tracer.start_with_context("caller", &Context::new()));
    baton::baggage::set_in(&cx, "tenant", "acme").expect("valid baggage")
}

/// The Go peer's server span continues Baton's CLIENT `span`, with its
/// flags and the caller's baggage.
#[track_caller]
fn assert_go_continued(seen: &PeerView, span: &SpanData) {
    let sc = &span.span_context;
    assert_eq!(seen.trace_id, sc.trace_id().to_string());
    assert_eq!(
        seen.parent_span_id.as_deref(),
        Some(sc.span_id().to_string().as_str()),
        "Go's parent is Baton's CLIENT span; Go saw {}",
        seen.raw
    );
    assert_eq!(seen.trace_flags, Some(sc.trace_flags().to_u8()));
    assert_eq!(
        seen.baggage.get("tenant").map(String::as_str),
        Some("acme"),
        "Go saw {}",
        seen.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_grpc_client_to_go_otelgrpc_server() {
    let (provider, spans) = telemetry();
    let go = Peer::start(PeerKind::Go);
    let port = go.grpc_port();
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect_lazy();
    let channel = tower::ServiceBuilder::new()
        .layer(
            GrpcClientLayer::new()
                .with_server_address("127.0.0.1", port)
                .with_tracer_provider(&provider),
        )
        .service(channel);
    let mut client = HealthClient::new(channel);

    let cx = caller(&provider);
    let response = baton::run(cx.clone(), async move {
        client.check(HealthCheckRequest::default()).await
    })
    .await
    .expect("Health/Check on the Go peer");
    cx.span().end();
    let report = response
        .metadata()
        .get_bin("x-peer-report-bin")
        .expect("the Go peer's report header")
        .to_bytes()
        .expect("base64 report");
    let seen = PeerView::parse(
        PeerKind::Go,
        serde_json::from_slice(&report).expect("JSON report"),
    );

    let span = one(&spans, &SpanKind::Client, METHOD);
    let root = one(&spans, &SpanKind::Internal, "caller");
    assert_eq!(span.parent_span_id, root.span_context.span_id());
    assert_go_continued(&seen, &span);
    assert_eq!(
        attr(&span, "rpc.response.status_code"),
        Some(Value::from("OK"))
    );
    assert_eq!(attr(&span, "rpc.method"), Some(Value::from(METHOD)));
}

/// What a call's handler side saw: baggage `tenant` and the current span.
type Seen = (Option<String>, SpanContext);

/// A tonic Health server behind Baton's `GrpcServerLayer` on 127.0.0.1,
/// keeping what each call's handler side saw.
struct BatonHealth {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BatonHealth {
    fn start(provider: &SdkTracerProvider) -> Self {
        let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = incoming.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        // Inside Baton's layer, so it runs in the call's context, as the
        // handler does.
        let inspect = tower::util::MapRequestLayer::new(move |request| {
            let cx = Context::current();
            record.lock().expect("not poisoned").push((
                baton::baggage::get("tenant"),
                cx.span().span_context().clone(),
            ));
            request
        });
        let (_, health) = tonic_health::server::health_reporter();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let layer = GrpcServerLayer::new().with_tracer_provider(provider);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(layer)
                .layer(inspect)
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        BatonHealth {
            addr,
            seen,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// The string at `path` in the peer's JSON answer.
#[track_caller]
fn text<'a>(json: &'a Json, path: &str) -> &'a str {
    json.pointer(path)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no string at {path} in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_otelgrpc_client_to_baton_grpc_server() {
    let (provider, spans) = telemetry();
    let server = BatonHealth::start(&provider);
    let go = Peer::start(PeerKind::Go);

    // The Go peer's HTTP server span continues this trace; from inside it,
    // otelgrpc's client calls Baton.
    let trace_id = TraceId::from(0x4bf9_2f35_77b3_4d6a_a3ce_929d_0e0e_4736_u128);
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("header value"),
    );
    headers.insert("baggage", "tenant=acme".parse().expect("header value"));
    let answer = go
        .get_json(&format!("/call-grpc?addr={}", server.addr), &headers)
        .await;

    let go_client = text(&answer, "/client/span_id");
    assert_eq!(text(&answer, "/client/name"), METHOD);
    assert_eq!(text(&answer, "/client/trace_id"), trace_id.to_string());
    // Go's own wiring: its client span is a child of its server span.
    assert_eq!(
        text(&answer, "/client/parent_span_id"),
        text(&answer, "/span_id")
    );

    let span = one(&spans, &SpanKind::Server, METHOD);
    assert_eq!(span.span_context.trace_id(), trace_id);
    assert_eq!(
        span.parent_span_id.to_string(),
        go_client,
        "Baton's SERVER span continues otelgrpc's CLIENT span; Go answered {answer}"
    );
    assert!(span.parent_span_is_remote);
    assert_eq!(
        attr(&span, "rpc.response.status_code"),
        Some(Value::from("OK"))
    );

    let seen = server.seen.lock().expect("not poisoned").clone();
    assert_eq!(
        seen,
        vec![(Some("acme".to_owned()), span.span_context.clone())],
        "the handler side sees the call's baggage and Baton's span"
    );
    assert_ne!(span.span_context.span_id(), SpanId::INVALID);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_http_client_to_go_otelhttp_server() {
    let (provider, spans) = telemetry();
    let go = Peer::start(PeerKind::Go);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            HttpClientMiddleware::new()
                .with_baggage_hosts(["127.0.0.1"])
                .with_tracer_provider(&provider),
        )
        .build();

    let cx = caller(&provider);
    let response = baton::run(cx.clone(), client.get(go.url("/")).send())
        .await
        .expect("GET on the Go peer");
    cx.span().end();
    let body = response.bytes().await.expect("the Go peer's answer");
    let seen = PeerView::parse(
        PeerKind::Go,
        serde_json::from_slice(&body).expect("JSON report"),
    );

    let span = one(&spans, &SpanKind::Client, "GET");
    assert_go_continued(&seen, &span);
    assert_eq!(
        attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
}
