//! Setup order does not matter: an axum router with the HTTP server layer,
//! a reqwest client with the HTTP client middleware and a tonic channel
//! with the gRPC client layer (calling a tonic server with the gRPC server
//! layer) are all built *before* `baton::init()`, and still record every
//! span and RED point to the providers installed later, propagating with
//! the propagator installed later; a second setup in the same process is
//! followed by the same layers, and so are providers set directly through
//! `opentelemetry::global`. A binary of its own: it changes process-wide
//! globals.
#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

#[path = "../../exporters/tests/rotel/mod.rs"]
#[allow(dead_code, reason = "shared helper, partly used here")]
mod rotel;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use baton::Init;
use baton::grpc::client::{GrpcClientLayer, GrpcClientService};
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton_testkit::{EchoClient, EchoRequest, EchoServer, UnaryEcho};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use reqwest_middleware::ClientWithMiddleware;
use rotel::Rotel;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint, Server};

/// The gateway's handler: calls orders, and answers its reply with the
/// `traceparent` and `b3` headers the gateway received.
async fn checkout(
    State(mut orders): State<EchoClient<GrpcClientService<Channel>>>,
    headers: http::HeaderMap,
) -> String {
    let reply = orders
        .unary(EchoRequest {
            message: "order".into(),
            ..EchoRequest::default()
        })
        .await
        .map(|r| r.into_inner().message)
        .unwrap_or_else(|status| status.to_string());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "{reply} traceparent={} b3={}",
        header("traceparent"),
        header("b3")
    )
}

/// The whole stack, built before any telemetry exists.
struct Stack {
    gateway: SocketAddr,
    client: ClientWithMiddleware,
}

async fn build_stack_before_setup() -> Stack {
    // The gRPC server, with its layer.
    let orders = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let orders_addr = orders.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(orders).with_nodelay(Some(true));
    tokio::spawn(
        Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(EchoServer::new(UnaryEcho::default()))
            .serve_with_incoming(incoming),
    );
    // The channel stack, with the gRPC client layer.
    let endpoint = Endpoint::from_shared(format!("http://{orders_addr}")).unwrap();
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(endpoint.uri()))
        .service(endpoint.connect_lazy());
    // The router, with the HTTP server layer.
    let app = Router::new()
        .route("/checkout", get(checkout))
        .with_state(EchoClient::new(channel))
        .layer(HttpServerLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The client, with the HTTP client middleware.
    let client = HttpClientMiddleware::new()
        .client(reqwest::Client::builder())
        .unwrap();
    Stack { gateway, client }
}

impl Stack {
    async fn checkout(&self) -> String {
        let url = format!("http://{}/checkout", self.gateway);
        let response = self.client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{response:?}");
        response.text().await.unwrap()
    }
}

fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<&str, String> = pairs.into_iter().collect();
    move |name| map.get(name).cloned()
}

fn init_to(collector: &Rotel, propagators: &str) -> baton::Telemetry {
    Init::from_vars(vars(vec![
        ("OTEL_SERVICE_NAME", "any-order".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ("OTEL_PROPAGATORS", propagators.into()),
    ]))
    // One process, two setups: the `tracing` subscriber can be set once.
    .without_subscriber()
    .install()
    .unwrap()
}

/// The four spans of one checkout, found by name, as one trace:
/// client → gateway → orders client → orders server.
fn assert_one_trace_of_four(spans: &[Value]) {
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let (client, server) = (named("GET"), named("GET /checkout"));
    let grpc = named("baton.test.Echo/Unary");
    assert_eq!(
        (client.len(), server.len(), grpc.len()),
        (1, 1, 2),
        "{spans:#?}"
    );
    let trace = &client[0]["trace_id"];
    assert!(
        spans.iter().all(|s| &s["trace_id"] == trace),
        "one trace: {spans:#?}"
    );
    assert_eq!(server[0]["parent_id"], client[0]["span_id"], "{spans:#?}");
    let (grpc_client, grpc_server) = match grpc[0]["parent_id"] == server[0]["span_id"] {
        true => (grpc[0], grpc[1]),
        false => (grpc[1], grpc[0]),
    };
    assert_eq!(grpc_client["parent_id"], server[0]["span_id"], "{spans:#?}");
    assert_eq!(
        grpc_server["parent_id"], grpc_client["span_id"],
        "{spans:#?}"
    );
}

const RED: [&str; 6] = [
    "http.server.request.duration",
    "http.server.active_requests",
    "http.client.request.duration",
    "http.client.active_requests",
    "rpc.client.call.duration",
    "rpc.server.call.duration",
];

fn assert_red(collector: &Rotel) {
    let metrics = collector.wait_for("metrics", Duration::from_secs(30), |lines| {
        RED.iter()
            .all(|name| lines.iter().any(|m| m["name"] == *name))
    });
    for name in RED {
        assert!(
            metrics.iter().any(|m| m["name"] == name),
            "{name}: {metrics:#?}"
        );
    }
}

#[test]
fn layers_built_before_setup_follow_every_setup() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stack = rt.block_on(build_stack_before_setup());

    // First setup, after the stack: W3C Trace Context.
    let first = Rotel::start("any-order-1");
    let telemetry = init_to(&first, "tracecontext,baggage");
    let reply = rt.block_on(stack.checkout());
    assert!(reply.starts_with("order traceparent=00-"), "{reply}");
    assert!(reply.ends_with("b3=-"), "{reply}");
    let report = telemetry.shutdown(Duration::from_secs(10));
    assert!(report.delivered(), "{report:?}");
    assert_eq!(report.spans.exported, 4, "{report:?}");
    let spans = first.wait_for("spans", Duration::from_secs(30), |l| l.len() >= 4);
    assert_one_trace_of_four(&spans);
    assert_red(&first);

    // Second setup in the same process, another collector and B3: the same
    // layers follow it, and OpenTelemetry's global propagator is Baton's.
    let second = Rotel::start("any-order-2");
    let telemetry = init_to(&second, "b3");
    let fields: Vec<String> =
        opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect());
    assert_eq!(fields, ["b3"]);
    let reply = rt.block_on(stack.checkout());
    assert!(
        reply.contains("traceparent=-") && !reply.ends_with("b3=-"),
        "{reply}"
    );
    let report = telemetry.shutdown(Duration::from_secs(10));
    assert_eq!(report.spans.exported, 4, "{report:?}");
    let spans = second.wait_for("spans", Duration::from_secs(30), |l| l.len() >= 4);
    assert_one_trace_of_four(&spans);
    assert_red(&second);
    assert_eq!(
        first.lines("spans").len(),
        4,
        "nothing more to the first collector"
    );

    // Replaced directly through `opentelemetry::global`: still followed.
    let memory = InMemorySpanExporter::default();
    opentelemetry::global::set_tracer_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .build(),
    );
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let reply = rt.block_on(stack.checkout());
    assert!(
        reply.contains("traceparent=00-") && reply.ends_with("b3=-"),
        "{reply}"
    );
    let names: Vec<_> = memory
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}
