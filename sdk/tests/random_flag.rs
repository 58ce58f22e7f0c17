//! W3C Trace Context Level 2's random-trace-id flag (#random-trace-id-flag)
//! through Baton's layers over real HTTP and gRPC on 127.0.0.1: what the next
//! hop receives, for sampled and unsampled parents and for new traces, under
//! the samplers that take each path of the SDK.
//!
//! Rows are `(sampler, incoming flags or a new trace, flags the next hop
//! receives, why)`.
#![cfg(all(feature = "axum", feature = "reqwest", feature = "tonic"))]
#![allow(clippy::unwrap_used, reason = "tests")]

mod http_support;

use std::pin::Pin;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::interceptor::InjectInterceptor;
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton_testkit::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer};
use futures_util::Stream;
use http_support::Server;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

type Row = (
    fn() -> Sampler,
    Option<&'static str>,
    &'static str,
    &'static str,
);

fn parent_based() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
}

fn always_on() -> Sampler {
    Sampler::AlwaysOn
}

fn always_off() -> Sampler {
    Sampler::AlwaysOff
}

/// Every path of `opentelemetry_sdk`'s tracer: sampled, dropped, new trace.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    (parent_based, Some("02"), "02", "#random-trace-id-flag: kept for an unsampled parent (the span is dropped)"),
    (parent_based, Some("03"), "03", "#random-trace-id-flag with #sampled-flag"),
    (always_off, Some("03"), "02", "#random-trace-id-flag: kept when this hop drops a sampled parent"),
    (parent_based, Some("00"), "00", "#random-trace-id-flag: never claimed for a trace id someone else made"),
    (parent_based, Some("01"), "01", "#random-trace-id-flag: never claimed for a trace id someone else made"),
    (always_on, None, "03", "#random-trace-id-flag: a new, random trace id SHOULD be marked"),
    (always_off, None, "02", "#random-trace-id-flag: also when the new trace is not sampled"),
];

fn provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(sampler).build()
}

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-{flags}")
}

/// The flags of a `traceparent`, checking that a received trace id was kept.
fn flags_of(traceparent: &str, incoming: Option<&str>) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    if incoming.is_some() {
        assert_eq!(parts[1], TRACE_ID, "{traceparent}");
    }
    parts[3].to_owned()
}

/// A plain server that answers with the `traceparent` it received.
fn echo_traceparent() -> Router {
    Router::new().route(
        "/",
        get(|headers: HeaderMap| async move {
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        }),
    )
}

/// Baton's server layer receives `incoming`; its handler calls the next hop
/// through Baton's reqwest middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_layer_and_client_middleware() {
    let next = Server::start(echo_traceparent()).await;
    for &(sampler, incoming, expected, why) in ROWS {
        let provider = provider(sampler());
        let client = HttpClientMiddleware::new()
            .with_tracer_provider(&provider)
            .client(reqwest::Client::builder())
            .unwrap();
        let next_url = next.url("/");
        let app = Router::new()
            .route(
                "/",
                get(move || {
                    let (client, url) = (client.clone(), next_url.clone());
                    async move {
                        let response = client.get(url).send().await.unwrap();
                        response.text().await.unwrap()
                    }
                }),
            )
            .layer(HttpServerLayer::new().with_tracer_provider(&provider));
        let middle = Server::start(app).await;
        let mut request = reqwest::Client::new().get(middle.url("/"));
        if let Some(flags) = incoming {
            request = request.header("traceparent", traceparent(flags));
        }
        let received = request.send().await.unwrap().text().await.unwrap();
        assert_eq!(flags_of(&received, incoming), expected, "{why}: {received}");
        middle.stop().await;
    }
    next.stop().await;
}

/// A remote parent with `flags`, or none.
fn remote(flags: Option<&str>) -> Context {
    flags.map_or_else(Context::new, |flags| {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE_ID).unwrap(),
            SpanId::from_hex(PARENT_ID).unwrap(),
            TraceFlags::new(u8::from_str_radix(flags, 16).unwrap()),
            true,
            TraceState::NONE,
        ))
    })
}

/// Answers with the `traceparent` it received; with `next`, calls it through
/// the injecting interceptor and answers with what that one received.
struct EchoTraceparent {
    next: Option<Channel>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoTraceparent {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let message = match &self.next {
            Some(channel) => {
                let mut client = EchoClient::with_interceptor(
                    channel.clone(),
                    InjectInterceptor::new(&"http://127.0.0.1".parse().expect("a uri")),
                );
                let reply = client.unary(EchoRequest::default()).await?;
                reply.into_inner().message
            }
            None => request
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        };
        Ok(tonic::Response::new(EchoReply { message }))
    }

    type StreamStream = ReplyStream;

    async fn stream(
        &self,
        _: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stream"))
    }

    async fn fail(
        &self,
        _: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("fail"))
    }
}

/// A tonic server for `service`, behind Baton's server layer when given one.
async fn grpc_server(
    service: EchoTraceparent,
    layer: Option<GrpcServerLayer>,
) -> (Channel, tokio::task::JoinHandle<()>) {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let service = EchoServer::new(service);
    let server = tokio::spawn(async move {
        let mut builder = tonic::transport::Server::builder();
        match layer {
            Some(layer) => builder
                .layer(layer)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap(),
            None => builder
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap(),
        }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    (channel, server)
}

/// Baton's gRPC client layer calls from a remote parent (or none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_layer() {
    let (channel, server) = grpc_server(EchoTraceparent { next: None }, None).await;
    for &(sampler, incoming, expected, why) in ROWS {
        let provider = provider(sampler());
        let layer = GrpcClientLayer::new(&"http://127.0.0.1".parse().expect("a uri"))
            .with_tracer_provider(&provider);
        let mut client = EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(layer)
                .service(channel.clone()),
        );
        let reply = baton::run(remote(incoming), client.unary(EchoRequest::default()))
            .await
            .unwrap();
        let received = reply.into_inner().message;
        assert_eq!(flags_of(&received, incoming), expected, "{why}: {received}");
    }
    server.abort();
}

/// Baton's gRPC server layer receives `incoming`; its handler calls the next
/// hop through the injecting interceptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_layer_and_interceptor() {
    let (next, next_server) = grpc_server(EchoTraceparent { next: None }, None).await;
    for &(sampler, incoming, expected, why) in ROWS {
        let provider = provider(sampler());
        let layer = GrpcServerLayer::new().with_tracer_provider(&provider);
        let service = EchoTraceparent {
            next: Some(next.clone()),
        };
        let (middle, middle_server) = grpc_server(service, Some(layer)).await;
        let mut request = tonic::Request::new(EchoRequest::default());
        if let Some(flags) = incoming {
            request
                .metadata_mut()
                .insert("traceparent", traceparent(flags).parse().unwrap());
        }
        let reply = EchoClient::new(middle).unary(request).await.unwrap();
        let received = reply.into_inner().message;
        assert_eq!(flags_of(&received, incoming), expected, "{why}: {received}");
        middle_server.abort();
    }
    next_server.abort();
}
