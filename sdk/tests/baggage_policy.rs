//! One baggage policy for HTTP and gRPC clients, checked over real HTTP and
//! gRPC on loopback for each rule: the request names the destination host
//! (an address or a name), while the connection goes to a test server on
//! 127.0.0.1 (an HTTP proxy for reqwest, a connector for tonic), which
//! reports the headers it received. Trace context must reach every host;
//! baggage only the ones the policy allows.
#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::interceptor::InjectInterceptor;
use baton::http::client::HttpClientMiddleware;
use baton::instrumentation::BaggagePolicy;
use baton_testkit::{EchoClient, EchoRequest, EchoServer, Unary};
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::transport::{Endpoint, Server};

/// (host, internal: gets baggage under the default policy, why)
const HOSTS: [(&str, bool, &str); 14] = [
    ("127.0.0.1", true, "loopback"),
    ("10.1.2.3", true, "private (RFC 1918)"),
    ("192.168.0.7", true, "private (RFC 1918)"),
    ("169.254.1.1", true, "link-local"),
    ("[fd00::1]", true, "unique local IPv6"),
    (
        "orders",
        true,
        "single label: a Compose or Kubernetes service",
    ),
    ("orders.internal", true, "a private-use suffix"),
    (
        "pricing.default.svc.cluster.local",
        true,
        "Kubernetes' service domain",
    ),
    ("api.example.com", false, "a public name"),
    ("8.8.8.8", false, "a public address"),
    (
        "orders.internal.example.com",
        false,
        "looks internal, is public",
    ),
    ("localhost.example.com", false, "looks internal, is public"),
    (
        "10.1.2.3.example.com",
        false,
        "an address inside a public name",
    ),
    ("172.32.0.1", false, "just outside 172.16.0.0/12"),
];

/// A context with a span and baggage `tenant=acme`.
fn request_context() -> opentelemetry::Context {
    let span = SdkTracerProvider::builder()
        .build()
        .tracer("test")
        .start_with_context("root", &opentelemetry::Context::new());
    let cx = opentelemetry::Context::new().with_span(span);
    baton::baggage::set_in(&cx, "tenant", "acme").unwrap()
}

/// What a server answers: the `traceparent` and `baggage` it received.
fn seen(headers: &http::HeaderMap) -> (bool, Option<String>) {
    let baggage = headers
        .get("baggage")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (headers.contains_key("traceparent"), baggage)
}

async fn http_proxy() -> SocketAddr {
    let app = Router::new().route(
        "/echo",
        get(|headers: http::HeaderMap| async move {
            let (traced, baggage) = seen(&headers);
            format!("{traced} {}", baggage.unwrap_or_default())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends one HTTP request to `host` through `policy`; what the server saw.
async fn over_http(proxy: SocketAddr, host: &str, policy: &BaggagePolicy) -> (bool, String) {
    let client = HttpClientMiddleware::new()
        .with_baggage_policy(policy.clone())
        .client(
            reqwest::Client::builder()
                .proxy(reqwest::Proxy::http(format!("http://{proxy}")).unwrap()),
        )
        .unwrap();
    let url = format!("http://{host}/echo");
    let body = baton::run(request_context(), client.get(&url).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (traced, baggage) = body.split_once(' ').unwrap();
    (traced == "true", baggage.to_owned())
}

async fn grpc_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        Server::builder()
            .add_service(EchoServer::new(Unary(|request: &tonic::Request<_>| {
                let (traced, baggage) = seen(request.metadata().as_ref());
                format!("{traced} {}", baggage.unwrap_or_default())
            })))
            .serve_with_incoming(incoming),
    );
    addr
}

/// How the gRPC call carries the context.
#[derive(Clone, Copy, Debug)]
enum Via {
    Layer,
    Interceptor,
}

/// Calls `host` (a channel made for `http://{host}:50051`, connected to
/// `server` whatever the host says) through `policy`; what the server saw.
async fn over_grpc(
    server: SocketAddr,
    host: &str,
    policy: &BaggagePolicy,
    via: Via,
) -> (bool, String) {
    let endpoint = Endpoint::from_shared(format!("http://{host}:50051")).unwrap();
    let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_| async move {
        tokio::net::TcpStream::connect(server)
            .await
            .map(hyper_util::rt::TokioIo::new)
    }));
    let request = EchoRequest::default();
    let reply = match via {
        Via::Layer => {
            let layer = GrpcClientLayer::new(endpoint.uri()).with_baggage_policy(policy.clone());
            let mut client =
                EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel));
            baton::run(request_context(), client.unary(request)).await
        }
        Via::Interceptor => {
            let interceptor =
                InjectInterceptor::new(endpoint.uri()).with_baggage_policy(policy.clone());
            let mut client = EchoClient::with_interceptor(channel, interceptor);
            baton::run(request_context(), client.unary(request)).await
        }
    };
    let message = reply.unwrap().into_inner().message;
    let (traced, baggage) = message.split_once(' ').unwrap();
    (traced == "true", baggage.to_owned())
}

/// Checks every row of `HOSTS` on HTTP, the gRPC layer and the interceptor,
/// `expected` saying from the row's "internal" whether baggage arrives.
async fn check(policy: BaggagePolicy, expected: impl Fn(&str, bool) -> bool) {
    let proxy = http_proxy().await;
    let grpc = grpc_server().await;
    for (host, internal, why) in HOSTS {
        let wanted = if expected(host, internal) {
            "tenant=acme"
        } else {
            ""
        };
        let transports = [
            ("http", over_http(proxy, host, &policy).await),
            (
                "grpc layer",
                over_grpc(grpc, host, &policy, Via::Layer).await,
            ),
            (
                "grpc interceptor",
                over_grpc(grpc, host, &policy, Via::Interceptor).await,
            ),
        ];
        for (transport, (traced, baggage)) in transports {
            assert!(
                traced,
                "{transport} to {host}: trace context goes everywhere"
            );
            assert_eq!(
                baggage, wanted,
                "{transport} to {host} ({why}) under {policy:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sends_baggage_to_internal_destinations_only() {
    check(BaggagePolicy::default(), |_, internal| internal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_keeps_it_in_the_process_and_all_sends_it_everywhere() {
    check(BaggagePolicy::none(), |_, _| false).await;
    check(BaggagePolicy::all(), |_, _| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_can_be_allowed_and_denied() {
    let policy = BaggagePolicy::internal()
        .allow_hosts(["api.example.com"])
        .deny_hosts(["orders"]);
    check(policy, |host, internal| match host {
        "api.example.com" => true,
        "orders" => false,
        _ => internal,
    })
    .await;
}
