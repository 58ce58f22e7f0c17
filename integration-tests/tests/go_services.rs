//! Baton's layers against a Go service instrumented the way Go services are:
//! `otelgrpc` and `otelhttp` on the official Go SDK
//! (`integration-tests/peers/go`, built by `scripts/setup-peers`), over real
//! gRPC and HTTP on 127.0.0.1. Baton's spans go to memory; the Go peer
//! reports what its SDK saw (and, calling out, the span it recorded).

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::serve::ListenerExt as _;
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use http::HeaderMap;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value as Json;
use support::peer::{Peer, PeerKind, PeerView};
use tokio::sync::oneshot;
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
            GrpcClientLayer::new(&format!("http://127.0.0.1:{}", port).parse().expect("a uri"))
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

/// What a request's handler side saw: baggage `tenant` and the current span.
type Seen = (Option<String>, SpanContext);
type Record = Arc<Mutex<Vec<Seen>>>;

/// Notes what the current context holds; called where a handler runs.
fn note(record: &Record) {
    let cx = Context::current();
    record.lock().expect("not poisoned").push((
        baton::baggage::get("tenant"),
        cx.span().span_context().clone(),
    ));
}

/// A server on 127.0.0.1 behind Baton's layer, keeping what each request's
/// handler side saw.
struct BatonServer {
    addr: SocketAddr,
    seen: Record,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BatonServer {
    fn spawn<F>(
        addr: SocketAddr,
        seen: Record,
        serve: impl FnOnce(oneshot::Receiver<()>) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(stopped));
        BatonServer {
            addr,
            seen,
            stop,
            task,
        }
    }

    /// tonic's Health service behind `GrpcServerLayer`.
    fn grpc(provider: &SdkTracerProvider) -> Self {
        // Without it each reply waits for a delayed ACK.
        let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind")
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().expect("address");
        let seen = Record::default();
        let record = Arc::clone(&seen);
        // Inside Baton's layer, so it runs in the call's context, as the
        // handler does.
        let inspect = tower::util::MapRequestLayer::new(move |request| {
            note(&record);
            request
        });
        let (_, health) = tonic_health::server::health_reporter();
        let layer = GrpcServerLayer::new().with_tracer_provider(provider);
        Self::spawn(addr, seen, |stopped| async move {
            tonic::transport::Server::builder()
                .layer(layer)
                .layer(inspect)
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        })
    }

    /// An axum route, `GET /items/{id}`, behind `HttpServerLayer`.
    async fn http(provider: &SdkTracerProvider) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Record::default();
        let record = Arc::clone(&seen);
        let app = axum::Router::new()
            .route(
                "/items/{id}",
                axum::routing::get(move || {
                    let record = Arc::clone(&record);
                    async move {
                        note(&record);
                        "item"
                    }
                }),
            )
            .layer(HttpServerLayer::new().with_tracer_provider(provider));
        Self::spawn(addr, seen, |stopped| async move {
            // Without it each response waits for a delayed ACK.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        })
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

/// The trace the Go peer is asked to continue when it calls Baton.
fn incoming_trace() -> TraceId {
    TraceId::from(0x4bf9_2f35_77b3_4d6a_a3ce_929d_0e0e_4736_u128)
}

/// Asks the Go peer to call out (`path`: `/call-grpc?...` or `/call-http?...`)
/// from its server span, itself continuing [`incoming_trace`] with
/// `tenant=acme` baggage; returns the id of the CLIENT span Go recorded.
async fn go_calls(go: &Peer, path: &str) -> String {
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{}-00f067aa0ba902b7-01", incoming_trace())
            .parse()
            .expect("header value"),
    );
    headers.insert("baggage", "tenant=acme".parse().expect("header value"));
    let answer = go.get_json(path, &headers).await;
    assert_eq!(
        text(&answer, "/client/trace_id"),
        incoming_trace().to_string()
    );
    // Go's own wiring: its client span is a child of its server span.
    assert_eq!(
        text(&answer, "/client/parent_span_id"),
        text(&answer, "/span_id"),
        "Go answered {answer}"
    );
    text(&answer, "/client/span_id").to_owned()
}

/// Baton's SERVER `span` continues Go's CLIENT span `go_client`, and the
/// handler side of `server` saw the baggage and that span, once.
#[track_caller]
fn assert_baton_continued(span: &SpanData, go_client: &str, server: &BatonServer) {
    assert_eq!(span.span_context.trace_id(), incoming_trace());
    assert_eq!(
        span.parent_span_id.to_string(),
        go_client,
        "Baton's SERVER span continues Go's CLIENT span"
    );
    assert!(span.parent_span_is_remote);
    assert_ne!(span.span_context.span_id(), SpanId::INVALID);
    let seen = server.seen.lock().expect("not poisoned").clone();
    assert_eq!(
        seen,
        vec![(Some("acme".to_owned()), span.span_context.clone())],
        "the handler side sees the request's baggage and Baton's span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_otelgrpc_client_to_baton_grpc_server() {
    let (provider, spans) = telemetry();
    let server = BatonServer::grpc(&provider);
    let go = Peer::start(PeerKind::Go);

    let go_client = go_calls(&go, &format!("/call-grpc?addr={}", server.addr)).await;

    let span = one(&spans, &SpanKind::Server, METHOD);
    assert_baton_continued(&span, &go_client, &server);
    assert_eq!(
        attr(&span, "rpc.response.status_code"),
        Some(Value::from("OK"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_otelhttp_client_to_baton_http_server() {
    let (provider, spans) = telemetry();
    let server = BatonServer::http(&provider).await;
    let go = Peer::start(PeerKind::Go);

    let url = format!("http://{}/items/7", server.addr);
    let go_client = go_calls(&go, &format!("/call-http?url={url}")).await;

    let span = one(&spans, &SpanKind::Server, "GET /items/{id}");
    assert_baton_continued(&span, &go_client, &server);
    assert_eq!(attr(&span, "http.route"), Some(Value::from("/items/{id}")));
    assert_eq!(
        attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_http_client_to_go_otelhttp_server() {
    let (provider, spans) = telemetry();
    let go = Peer::start(PeerKind::Go);
    let client = HttpClientMiddleware::new()
        .with_tracer_provider(&provider)
        .client(reqwest::Client::builder())
        .expect("a reqwest client");

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
