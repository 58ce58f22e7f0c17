//! The HTTP layers without axum or reqwest: a plain hyper server with
//! `HttpServerLayer` (routes from `with_route` and a `Route` extension) and
//! a hyper-util client with `HttpClientLayer`, over loopback.
#![cfg(all(feature = "http-server", feature = "http-client"))]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::convert::Infallible;
use std::net::SocketAddr;

use baton::http::client::HttpClientLayer;
use baton::http::server::{HttpServerLayer, Route};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::{ServiceBuilder, ServiceExt as _};

/// The handler: answers with the tenant it finds in the current baggage.
async fn handler(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let tenant = baton::baggage::get("tenant").unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(tenant))))
}

/// A hyper server on 127.0.0.1 whose routes come from `with_route` for
/// `/users/…` and from a `Route` extension, set by a layer outside Baton's,
/// for the rest.
async fn serve(provider: &SdkTracerProvider) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .map_request(|mut request: Request<_>| {
            request.extensions_mut().insert(Route::new("/orders/{id}"));
            request
        })
        .layer(
            HttpServerLayer::new()
                .with_tracer_provider(provider)
                .with_route(|request| {
                    request
                        .path()
                        .starts_with("/users/")
                        .then(|| Route::new("/users/{id}"))
                }),
        )
        .service_fn(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn a_hyper_util_client_and_a_hyper_server_carry_one_trace_and_baggage() {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let addr = serve(&provider).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_tracer_provider(&provider))
        .service(client);

    let parent = provider.tracer("test").start("parent");
    let cx = baton::Context::new().with_span(parent);
    let cx = baton::baggage::set_in(&cx, "tenant", "acme").unwrap();
    for path in ["/users/7", "/orders/9?sig=secret"] {
        let request = Request::get(format!("http://{addr}{path}"))
            .body(Empty::new())
            .unwrap();
        let response = baton::run(cx.clone(), client.clone().oneshot(request))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "acme", "baggage reached the handler of {path}");
    }

    let finished = spans.get_finished_spans().unwrap();
    let trace_id = cx.span().span_context().trace_id();
    let named = |name: &str| {
        finished
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name:?} in {finished:?}"))
    };
    let clients: Vec<_> = finished
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 2, "{finished:?}");
    for (client, (server, route)) in clients.iter().zip([
        (named("GET /users/{id}"), "/users/{id}"),
        (named("GET /orders/{id}"), "/orders/{id}"),
    ]) {
        assert_eq!(client.name, "GET");
        assert_eq!(client.span_context.trace_id(), trace_id);
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.span_context.trace_id(), trace_id);
        assert_eq!(server.parent_span_id, client.span_context.span_id());
        assert_eq!(attribute(server, "http.route"), Some(Value::from(route)));
        assert_eq!(
            attribute(client, "server.address"),
            Some(Value::from("127.0.0.1"))
        );
        assert_eq!(
            attribute(client, "server.port"),
            Some(Value::from(i64::from(addr.port())))
        );
        assert_eq!(
            attribute(client, "http.response.status_code"),
            Some(Value::from(200_i64))
        );
    }
    assert_eq!(
        attribute(clients[1], "url.full"),
        Some(Value::from(format!("http://{addr}/orders/9?sig=REDACTED"))),
        "{:?}",
        clients[1].attributes
    );
}
