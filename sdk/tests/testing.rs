//! `baton::testing` against real hops on 127.0.0.1: an axum server and a
//! tonic server with Baton's layers, a request through both, one tree; and
//! the kit's assertions failing where they must.

#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use baton::grpc::client::{GrpcClientLayer, GrpcClientService};
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton::instrumentation::BaggagePolicy;
use baton::testing::{Capture, PointValue};
use baton_testkit::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer};
use opentelemetry::trace::{SpanKind, Tracer as _};
use reqwest_middleware::ClientWithMiddleware;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

/// The orders service: logs, then answers or fails as asked.
struct Orders;

#[tonic::async_trait]
impl Echo for Orders {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        tracing::info!(tenant = baton::baggage::get("tenant"), "order placed");
        Ok(tonic::Response::new(EchoReply {
            message: request.into_inner().message,
        }))
    }

    type StreamStream = futures_util::stream::Empty<Result<EchoReply, tonic::Status>>;

    async fn stream(
        &self,
        _request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        Ok(tonic::Response::new(futures_util::stream::empty()))
    }

    async fn fail(
        &self,
        _request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unavailable("orders are down"))
    }
}

async fn orders() -> SocketAddr {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(EchoServer::new(Orders))
            .serve_with_incoming(incoming),
    );
    addr
}

type OrdersClient = EchoClient<GrpcClientService<Channel>>;

/// The gateway: `/checkout` calls orders, `/broken` calls orders' failing
/// method and answers 502.
async fn gateway(orders: SocketAddr) -> SocketAddr {
    let uri: http::Uri = format!("http://{orders}").parse().unwrap();
    let channel = Endpoint::from_shared(uri.to_string())
        .unwrap()
        .connect_lazy();
    let client = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(GrpcClientLayer::new(&uri))
            .service(channel),
    );
    let app = Router::new()
        .route(
            "/checkout",
            get(|State(mut orders): State<OrdersClient>| async move {
                let request = EchoRequest {
                    message: "cart".into(),
                    ..Default::default()
                };
                orders
                    .unary(request)
                    .await
                    .map(|_| "ok")
                    .map_err(|_| StatusCode::BAD_GATEWAY)
            }),
        )
        .route(
            "/broken",
            get(|State(mut orders): State<OrdersClient>| async move {
                let failed = orders.fail(EchoRequest::default()).await;
                (StatusCode::BAD_GATEWAY, format!("{}", failed.is_err()))
            }),
        )
        .with_state(client)
        .layer(HttpServerLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn client() -> ClientWithMiddleware {
    HttpClientMiddleware::new()
        .with_baggage_policy(BaggagePolicy::none().allow_hosts(["127.0.0.1"]))
        .client(reqwest::Client::builder())
        .unwrap()
}

/// Calls `path` on a fresh gateway, as the test's code would, with baggage
/// `tenant=acme`, inside `capture`.
async fn call(capture: &Capture, path: &str) -> reqwest::StatusCode {
    let gateway = gateway(orders().await).await;
    let url = format!("http://{gateway}{path}");
    let cx = baton::baggage::set_in(&capture.context(), "tenant", "acme").unwrap();
    baton::run(cx, async {
        client().get(url).send().await.unwrap().status()
    })
    .await
}

#[tokio::test]
async fn a_request_through_an_http_and_a_grpc_hop_is_one_tree() {
    let capture = Capture::start();
    assert_eq!(call(&capture, "/checkout").await, 200);

    let spans = capture.spans().await;
    spans.assert_tree(
        "
        trace · GET · 4 spans
        CLI GET  -  http.request.method=GET http.response.status_code=200 server.address=127.0.0.1
          SRV GET /checkout  -  http.request.method=GET http.route=/checkout http.response.status_code=200 server.address=127.0.0.1
            CLI baton.test.Echo/Unary  -  rpc.method=baton.test.Echo/Unary rpc.response.status_code=OK server.address=127.0.0.1
              SRV baton.test.Echo/Unary  -  rpc.method=baton.test.Echo/Unary rpc.response.status_code=OK server.address=127.0.0.1
        ",
    );

    let server = spans
        .named("baton.test.Echo/Unary")
        .find(|s| *s.kind() == SpanKind::Server);
    let server = server.unwrap();
    let caller = spans.parent(server).unwrap();
    assert_eq!(*caller.kind(), SpanKind::Client);
    assert_eq!(spans.parent(caller).unwrap().name(), "GET /checkout");
    assert!(server.has_remote_parent());
    assert_eq!(server.baggage("tenant"), Some("acme"));

    let metrics = capture.metrics();
    let point = metrics.one("http.server.request.duration");
    assert_eq!(point.count(), Some(1));
    assert_eq!(
        point
            .attribute("http.route")
            .map(|v| v.as_str().into_owned()),
        Some("/checkout".into())
    );
    let PointValue::Histogram { bounds, .. } = &point.value else {
        panic!("{point} is not a histogram");
    };
    assert_eq!(bounds.as_slice(), baton::metrics::DURATION_BOUNDARIES);
    assert_eq!(metrics.one("rpc.server.call.duration").count(), Some(1));

    let logs = capture.logs();
    let [placed] = logs.as_slice() else {
        panic!("one log record expected: {logs:#?}");
    };
    assert_eq!(placed.body.as_deref(), Some("order placed"));
    assert_eq!(placed.attribute("tenant"), Some("acme"));
    assert_eq!(placed.span_id, Some(server.span_id()));
    assert_eq!(placed.trace_id, Some(server.trace_id()));
    assert!(placed.request_id.is_some(), "{placed:?}");
}

#[tokio::test]
async fn a_failure_downstream_marks_the_spans_as_errors() {
    let capture = Capture::start();
    assert_eq!(call(&capture, "/broken").await, 502);

    let spans = capture.spans().await;
    let gateway = spans.one("GET /broken");
    assert!(gateway.is_error());
    gateway.assert_attribute("error.type", "502");
    let failed: Vec<_> = spans.named("baton.test.Echo/Fail").collect();
    assert_eq!(failed.len(), 2, "{spans}");
    for span in failed {
        span.assert_attribute("rpc.response.status_code", "UNAVAILABLE");
    }
}

/// Parallel tests of one binary see only their own spans: each of these
/// runs the same request, and each capture holds one trace.
#[tokio::test]
async fn parallel_captures_hold_only_their_own_traces() {
    let captures: Vec<_> = (0..4).map(|_| Capture::start()).collect();
    let calls = captures.iter().map(|capture| call(capture, "/checkout"));
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
    }
    for capture in &captures {
        let spans = capture.spans().await;
        assert_eq!(spans.trace_ids().len(), 1, "{spans}");
        assert_eq!(spans.len(), 4, "{spans}");
        assert_eq!(
            capture
                .metrics()
                .one("http.server.request.duration")
                .count(),
            Some(1)
        );
    }
}

#[tokio::test]
async fn a_caller_outside_the_process_is_adopted() {
    let capture = Capture::start();
    let gateway = gateway(orders().await).await;
    // A plain client: the capture's caller headers carry its trace.
    let response = reqwest::Client::new()
        .get(format!("http://{gateway}/checkout"))
        .headers(capture.caller())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = capture.spans().await;
    assert!(spans.one("GET /checkout").has_remote_parent());
    assert_eq!(spans.len(), 3, "{spans}");
}

/// The message of the panic `f` raises.
fn failure(f: impl FnOnce()) -> String {
    let panic = std::panic::catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion fails");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// `parent` with `child` under it, in `capture`'s context.
fn two_spans(capture: &Capture, parent: &str, child: &'static str) {
    let _guard = capture.enter();
    let tracer = opentelemetry::global::tracer("test");
    tracer.in_span(parent.to_owned(), |_| tracer.in_span(child, |_| {}));
}

#[tokio::test]
async fn a_wrong_parent_fails_naming_both() {
    let capture = Capture::start();
    two_spans(&capture, "load cart", "price cart");
    {
        let _guard = capture.enter();
        opentelemetry::global::tracer("test").in_span("checkout", |_| {});
    }
    let spans = capture.spans().await;
    let message = failure(|| spans.assert_parent("price cart", "checkout"));
    assert!(
        message.contains("span `price cart` has parent `load cart`, expected `checkout`"),
        "{message}"
    );
    let message = failure(|| {
        spans.assert_tree(
            "
            trace · checkout · 2 spans
            INT checkout  -
              INT price cart  -
            ",
        );
    });
    assert!(
        message.contains("- trace · checkout · 2 spans"),
        "{message}"
    );
    assert!(
        message.contains("+ trace · load cart · 2 spans"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_attribute_fails_naming_it() {
    let capture = Capture::start();
    assert_eq!(call(&capture, "/checkout").await, 200);
    let spans = capture.spans().await;
    let server = spans.one("GET /checkout");
    server.assert_attribute("http.route", "/checkout");
    let message = failure(|| {
        server.assert_attribute("http.request.header.tenant", "acme");
    });
    assert!(
        message.contains("span `GET /checkout` has no attribute `http.request.header.tenant`"),
        "{message}"
    );
    assert!(message.contains("http.route=/checkout"), "{message}");
}

#[tokio::test]
async fn a_span_leaked_from_another_test_fails_the_tree() {
    let mine = Capture::start();
    let other = Capture::start();
    two_spans(&mine, "checkout", "load cart");
    // Another test's span, ended in this one's context by mistake.
    {
        let _guard = other.enter();
        let leaked = opentelemetry::global::tracer("other").start("leaked");
        drop(leaked);
    }
    let _guard = other.enter();
    let span =
        opentelemetry::global::tracer("other").start_with_context("leaked too", &mine.context());
    drop(span);
    drop(_guard);

    let expected = "
        trace · checkout · 2 spans
        INT checkout  -
          INT load cart  -
        ";
    other
        .spans()
        .await
        .assert_tree("trace · leaked · 1 span\nINT leaked  -");
    let message = failure(|| mine.spans_now().assert_tree(expected));
    assert!(
        message.contains("+ trace · leaked too · 1 span"),
        "{message}"
    );
    assert!(message.contains("+ INT leaked too  -"), "{message}");
}

#[tokio::test]
async fn spans_wait_for_spans_still_open() {
    let capture = Capture::start();
    let open = {
        let _guard = capture.enter();
        opentelemetry::global::tracer("test").start("ends later")
    };
    assert!(capture.spans_now().is_empty());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(open);
    });
    assert_eq!(capture.spans().await.one("ends later").name(), "ends later");
}

/// A server answering `/ping`, its requests handled through `layer`.
async fn ping_server(layer: Option<baton::testing::CaptureLayer>) -> SocketAddr {
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .layer(HttpServerLayer::new());
    let app = match layer {
        Some(layer) => app.layer(layer),
        None => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A request with no trace headers starts a trace of the capture whose
/// layer the server handles it through, and only then; its active count is
/// captured going up and down.
#[tokio::test]
async fn a_request_without_trace_headers_is_captured_through_the_layer() {
    let capture = Capture::start();
    let plain = reqwest::Client::new();
    let without = ping_server(None).await;
    let response = plain.get(format!("http://{without}/ping")).send().await;
    assert_eq!(response.unwrap().status(), 200);
    let with = ping_server(Some(capture.layer())).await;
    let response = plain.get(format!("http://{with}/ping")).send().await;
    assert_eq!(response.unwrap().status(), 200);

    let spans = capture.spans().await;
    spans.assert_tree(
        "
        trace · GET /ping · 1 span
        SRV GET /ping  -  http.request.method=GET http.route=/ping http.response.status_code=200 server.address=127.0.0.1
        ",
    );
    assert!(!spans.one("GET /ping").has_remote_parent());
    let metrics = capture.metrics();
    assert_eq!(metrics.one("http.server.request.duration").count(), Some(1));
    let active = metrics.one("http.server.active_requests");
    assert_eq!(
        active.attribute_texts(),
        ["http.request.method=GET", "url.scheme=http"]
    );
    assert_eq!(active.value, PointValue::Sum(0.0));

    // Once the capture is gone, the layer hands requests on as they are.
    drop(capture);
    let response = plain.get(format!("http://{with}/ping")).send().await;
    assert_eq!(response.unwrap().status(), 200);
}

/// The client's active count is captured too, in the request's context.
#[tokio::test]
async fn the_clients_active_requests_return_to_zero() {
    let capture = Capture::start();
    assert_eq!(call(&capture, "/checkout").await, 200);
    capture.spans().await;
    let metrics = capture.metrics();
    let active = metrics.one("http.client.active_requests");
    assert_eq!(active.value, PointValue::Sum(0.0), "{metrics}");
    assert_eq!(
        metrics.one("http.server.active_requests").value,
        PointValue::Sum(0.0)
    );
}
