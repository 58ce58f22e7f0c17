//! A real three-hop chain on 127.0.0.1, in one process: a test client calls
//! the gateway (axum, HTTP), which calls orders (tonic, gRPC), which calls
//! pricing (axum, HTTP) with reqwest. Every hop is instrumented with
//! Baton's layers; spans and metrics are captured with `baton::testing`,
//! log lines go to a buffer. See `chain_support` for the services.

#![allow(clippy::unwrap_used, reason = "tests")]

mod chain_support;

use baton::testing::{Capture, CapturedSpan};
use chain_support::{Chain, HEALTHZ, logs};
use opentelemetry::Value;
use opentelemetry::global::BoxedSpan;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceId, Tracer as _,
};
use serde_json::json;

const BAGGAGE: &str = "tenant=acme,user=ada";

/// The test client's own span: the root of a trace of `capture`, ended by
/// the caller.
fn root(capture: &Capture) -> BoxedSpan {
    let tracer = opentelemetry::global::tracer("test-client");
    tracer
        .span_builder("checkout")
        .with_kind(SpanKind::Client)
        .start_with_context(&tracer, &capture.context())
}

/// The spans of trace `trace_id`, once every captured span has ended;
/// there must be `count` of them.
async fn trace(capture: &Capture, trace_id: TraceId, count: usize) -> Vec<CapturedSpan> {
    let spans = capture.spans().await;
    let in_trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id() == trace_id)
        .cloned()
        .collect();
    assert_eq!(in_trace.len(), count, "{spans}");
    in_trace
}

/// Data points of duration histogram `name`, each as (count, sorted
/// `key=value` attributes), sorted.
fn histogram(capture: &Capture, name: &str) -> Vec<(u64, Vec<String>)> {
    let metrics = capture.metrics();
    let mut points: Vec<_> = metrics
        .points(name)
        .map(|point| {
            assert_eq!(point.unit, "s", "{point}");
            let count = point
                .count()
                .unwrap_or_else(|| panic!("{point} is no histogram"));
            let mut attributes = point.attribute_texts();
            attributes.sort();
            (count, attributes)
        })
        .collect();
    points.sort();
    points
}

/// `GET url` as a client in trace `parent`, with baggage and a request id.
async fn call(url: &str, parent: &SpanContext, request_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header(
            "traceparent",
            format!("00-{}-{}-01", parent.trace_id(), parent.span_id()),
        )
        .header("baggage", BAGGAGE)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap()
}

fn check_attrs<const N: usize>(span: &CapturedSpan, expected: [(&'static str, Value); N]) {
    for (key, value) in expected {
        span.assert_attribute(key, value);
    }
}

fn port(server: &chain_support::Server) -> Value {
    Value::I64(i64::from(server.addr.port()))
}

/// `child` is a child of `parent` in the same trace; `remote` when the
/// parent's context came over the wire.
#[track_caller]
fn assert_child(child: &CapturedSpan, parent: &CapturedSpan, remote: bool) {
    assert_eq!(
        child.trace_id(),
        parent.trace_id(),
        "{} in {}'s trace",
        child.name(),
        parent.name()
    );
    assert_eq!(
        child.parent_span_id(),
        parent.span_id(),
        "{} child of {}",
        child.name(),
        parent.name()
    );
    assert_eq!(child.has_remote_parent(), remote, "{} remote", child.name());
}

/// The names and kinds of `spans`, for failure messages.
fn names(spans: &[CapturedSpan]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} ({:?})", s.name(), s.kind()))
        .collect()
}

/// The one span of `spans` with `kind` and `name`.
#[track_caller]
fn of_kind<'a>(spans: &'a [CapturedSpan], kind: &SpanKind, name: &str) -> &'a CapturedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.kind() == kind && s.name() == name)
        .collect();
    let [span] = found.as_slice() else {
        panic!("one {kind:?} {name:?} in {:#?}", names(spans))
    };
    span
}

/// The one span of `spans` named `name`.
#[track_caller]
fn one<'a>(spans: &'a [CapturedSpan], name: &str) -> &'a CapturedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name() == name).collect();
    let [span] = found.as_slice() else {
        panic!("one span named {name:?} in {:#?}", names(spans))
    };
    span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_chain_is_one_trace_carrying_baggage_and_request_id() {
    let chain = Chain::start().await;
    let t = &chain.capture;
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/42"), &root_cx, "chain-req-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "chain-req-1");
    assert_eq!(response.text().await.unwrap(), "42=9.99");
    drop(root);

    let spans = trace(t, root_cx.trace_id(), 6).await;
    let root = one(&spans, "checkout");
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    let grpc_client = of_kind(&spans, &SpanKind::Client, "baton.test.Echo/Unary");
    let grpc_server = of_kind(&spans, &SpanKind::Server, "baton.test.Echo/Unary");
    let http_client = of_kind(&spans, &SpanKind::Client, "GET");
    let pricing = of_kind(&spans, &SpanKind::Server, "GET /price/{sku}");

    // One trace, each hop the child of the one before.
    assert_eq!(root.parent_span_id(), SpanId::INVALID);
    assert_child(gateway, root, true);
    assert_child(grpc_client, gateway, false);
    assert_child(grpc_server, grpc_client, true);
    assert_child(http_client, grpc_server, false);
    assert_child(pricing, http_client, true);
    for span in &spans {
        assert_eq!(*span.status(), Status::Unset, "{}", span.name());
        span.assert_no_attribute("error.type");
    }

    check_attrs(
        gateway,
        [
            ("http.request.method", "GET".into()),
            ("http.route", "/orders/{id}".into()),
            ("url.path", "/orders/42".into()),
            ("url.scheme", "http".into()),
            ("server.address", "127.0.0.1".into()),
            ("server.port", port(&chain.gateway)),
            ("http.response.status_code", 200.into()),
        ],
    );
    for span in [grpc_client, grpc_server] {
        check_attrs(
            span,
            [
                ("rpc.system.name", "grpc".into()),
                ("rpc.method", "baton.test.Echo/Unary".into()),
                ("rpc.response.status_code", "OK".into()),
                ("server.address", "127.0.0.1".into()),
                ("server.port", port(&chain.orders)),
            ],
        );
    }
    check_attrs(
        http_client,
        [
            ("http.request.method", "GET".into()),
            ("server.address", "127.0.0.1".into()),
            ("server.port", port(&chain.pricing)),
            ("url.full", chain.pricing.url("/price/42").into()),
            ("http.response.status_code", 200.into()),
        ],
    );
    check_attrs(
        pricing,
        [
            ("http.request.method", "GET".into()),
            ("http.route", "/price/{sku}".into()),
            ("url.path", "/price/42".into()),
            ("server.port", port(&chain.pricing)),
            ("http.response.status_code", 200.into()),
        ],
    );

    // Each handler ran in its hop's span, with the caller's baggage (HTTP →
    // gRPC → HTTP, plus `order` added at the gateway) and request id.
    let trace_id = root_cx.trace_id();
    for (hop, span, order) in [
        ("gateway", gateway, None),
        ("orders", grpc_server, Some("42".to_owned())),
        ("pricing", pricing, Some("42".to_owned())),
    ] {
        let visit = chain.seen.visit(hop, "42");
        assert_eq!(visit.trace_id, trace_id, "{hop}");
        assert_eq!(visit.span_id, span.span_id(), "{hop}");
        assert_eq!(visit.tenant.as_deref(), Some("acme"), "{hop}");
        assert_eq!(visit.user.as_deref(), Some("ada"), "{hop}");
        assert_eq!(visit.order, order, "{hop}");
        assert_eq!(visit.request_id.as_deref(), Some("chain-req-1"), "{hop}");
    }

    // Log lines from deep inside carry the ids and only the chosen baggage
    // keys (`order` is not one of them).
    for (message, span) in [("priced", pricing), ("asking pricing", grpc_server)] {
        let lines = logs().lines(trace_id, message);
        let [line] = lines.as_slice() else {
            panic!("one {message:?} line: {lines:#?}")
        };
        assert_eq!(line["span_id"], span.span_id().to_string());
        assert_eq!(line["request_id"], "chain-req-1", "{line}");
        assert_eq!(line["baggage"], json!({"tenant": "acme", "user": "ada"}));
    }
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_through_the_chain_ends_after_its_last_message() {
    let chain = Chain::start().await;
    let t = &chain.capture;
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/7/history"), &root_cx, "req-s").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "7-0=9.99,7-1=9.99,7-2=9.99");
    drop(root);

    // root, gateway, gRPC client and server, three HTTP clients and servers.
    let spans = trace(t, root_cx.trace_id(), 10).await;
    let root = one(&spans, "checkout");
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}/history");
    let grpc_client = of_kind(&spans, &SpanKind::Client, "baton.test.Echo/Stream");
    let grpc_server = of_kind(&spans, &SpanKind::Server, "baton.test.Echo/Stream");
    assert_child(gateway, root, true);
    assert_child(grpc_client, gateway, false);
    assert_child(grpc_server, grpc_client, true);
    for span in [grpc_client, grpc_server] {
        check_attrs(
            span,
            [
                ("rpc.method", "baton.test.Echo/Stream".into()),
                ("rpc.response.status_code", "OK".into()),
            ],
        );
        assert_eq!(*span.status(), Status::Unset);
    }
    // The pricing calls were made from a task the handler spawned, while
    // the stream was being sent: still children of the gRPC server span.
    for i in 0..3 {
        let sku = format!("7-{i}");
        let path = Value::from(format!("/price/{sku}"));
        let pricing = spans
            .iter()
            .find(|s| s.attribute("url.path") == Some(&path))
            .unwrap_or_else(|| panic!("pricing span for {sku}"));
        assert_eq!(*pricing.kind(), SpanKind::Server);
        let client = spans
            .iter()
            .find(|s| s.span_id() == pricing.parent_span_id())
            .unwrap();
        assert_eq!(*client.kind(), SpanKind::Client);
        assert_eq!(client.name(), "GET");
        assert_child(pricing, client, true);
        assert_child(client, grpc_server, false);
        let visit = chain.seen.visit("pricing", &sku);
        assert_eq!(visit.request_id.as_deref(), Some("req-s"));
        assert_eq!(visit.tenant.as_deref(), Some("acme"));
    }

    // Neither call span had ended at the first message; both ended after
    // the last one, the client's after the server's, the gateway's last.
    assert_eq!(*chain.seen.stream_spans_at_first.lock().unwrap(), Some(0));
    let last_sent = chain.seen.last_sent.lock().unwrap().unwrap();
    let end = |span: &CapturedSpan| span.data().end_time;
    assert!(end(grpc_server) >= last_sent);
    assert!(end(grpc_client) >= end(grpc_server));
    assert!(end(gateway) >= end(grpc_client));
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_errors_on_the_spans_of_the_hops_that_failed() {
    let chain = Chain::start().await;
    let t = &chain.capture;

    // A 500 at pricing: an error at every hop, each in its own terms, and
    // the gateway answers 503 (orders said UNAVAILABLE).
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/broken-1"), &root_cx, "req-f1").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "orders: Unavailable");
    drop(root);
    let spans = trace(t, root_cx.trace_id(), 6).await;
    let expected = [
        (SpanKind::Server, "GET /price/{sku}", "500"),
        (SpanKind::Client, "GET", "500"),
        (SpanKind::Server, "baton.test.Echo/Unary", "UNAVAILABLE"),
        (SpanKind::Client, "baton.test.Echo/Unary", "UNAVAILABLE"),
        (SpanKind::Server, "GET /orders/{id}", "503"),
    ];
    for (kind, name, error) in expected {
        let span = of_kind(&spans, &kind, name);
        span.assert_attribute("error.type", error);
        assert!(span.is_error(), "{name}");
    }
    let http_client = of_kind(&spans, &SpanKind::Client, "GET");
    http_client.assert_attribute("http.response.status_code", 500_i64);
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    gateway.assert_attribute("http.response.status_code", 503_i64);
    assert_eq!(*one(&spans, "checkout").status(), Status::Unset);

    // A failing RPC: INTERNAL on both gRPC spans, a 500 from the gateway,
    // and no call to pricing.
    let root = self::root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/9/cancel"), &root_cx, "req-f2").await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "orders: Internal");
    drop(root);
    let spans = trace(t, root_cx.trace_id(), 4).await;
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}/cancel");
    let grpc_client = of_kind(&spans, &SpanKind::Client, "baton.test.Echo/Fail");
    let grpc_server = of_kind(&spans, &SpanKind::Server, "baton.test.Echo/Fail");
    assert_child(grpc_client, gateway, false);
    assert_child(grpc_server, grpc_client, true);
    for span in [grpc_client, grpc_server] {
        check_attrs(
            span,
            [
                ("rpc.response.status_code", "INTERNAL".into()),
                ("error.type", "INTERNAL".into()),
            ],
        );
        assert_eq!(*span.status(), Status::error("INTERNAL"));
    }
    check_attrs(
        gateway,
        [
            ("http.response.status_code", 500.into()),
            ("error.type", "500".into()),
        ],
    );
    assert!(gateway.is_error());
    let visit = chain.seen.visit("orders", "9");
    assert_eq!(visit.span_id, grpc_server.span_id());
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_not_traced_and_a_public_gateway_starts_a_new_trace() {
    let chain = Chain::start().await;
    let t = &chain.capture;
    let root = root(t);
    let root_cx = root.span_context().clone();

    let health = call(&chain.gateway.url(HEALTHZ), &root_cx, "req-h").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-request-id").is_none());
    assert_eq!(health.text().await.unwrap(), "ok");
    // Nothing has ended (the root is still open).
    let spans = t.spans_now();
    assert!(spans.is_empty(), "{spans}");

    // The public gateway: a new trace, linked to the caller's span; the
    // caller's baggage is dropped, its (safe) request id kept.
    let response = call(&chain.public_gateway.url("/orders/5"), &root_cx, "req-p").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-p");
    drop(root);

    let gateway = chain.seen.visit("gateway", "5");
    assert_ne!(gateway.trace_id, root_cx.trace_id());
    let spans = trace(t, gateway.trace_id, 5).await;
    let gateway_span = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    assert_eq!(gateway_span.parent_span_id(), SpanId::INVALID);
    let links = &gateway_span.data().links;
    let [link] = links.links.as_slice() else {
        panic!("one link: {links:?}")
    };
    assert_eq!(link.span_context.trace_id(), root_cx.trace_id());
    assert_eq!(link.span_context.span_id(), root_cx.span_id());
    let grpc_client = of_kind(&spans, &SpanKind::Client, "baton.test.Echo/Unary");
    assert_child(grpc_client, gateway_span, false);
    for hop in ["gateway", "orders", "pricing"] {
        let visit = chain.seen.visit(hop, "5");
        assert_eq!(visit.trace_id, gateway.trace_id, "{hop}");
        assert_eq!((visit.tenant, visit.user), (None, None), "{hop}");
        assert_eq!(visit.request_id.as_deref(), Some("req-p"), "{hop}");
    }
    // Only the root span is in the caller's trace.
    let caller_trace = trace(t, root_cx.trace_id(), 1).await;
    assert_eq!(caller_trace[0].name(), "checkout");
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_histograms_count_every_call_by_route_method_and_status() {
    let chain = Chain::start().await;
    let t = &chain.capture;
    let client = reqwest::Client::new();
    // A plain client: each request brings a new trace of the capture's.
    let get = |path: &str| {
        client
            .get(chain.gateway.url(path))
            .headers(t.caller())
            .send()
    };
    for i in 0..3 {
        assert_eq!(get(&format!("/orders/{i}")).await.unwrap().status(), 200);
    }
    for i in 0..2 {
        let path = format!("/orders/broken-{i}");
        assert_eq!(get(&path).await.unwrap().status(), 503);
        let path = format!("/orders/{i}/cancel");
        assert_eq!(get(&path).await.unwrap().status(), 500);
        assert_eq!(get(HEALTHZ).await.unwrap().status(), 200);
    }
    assert_eq!(get("/orders/h/history").await.unwrap().status(), 200);
    // Spans of 3 priced orders (5 each), 2 pricing failures (5 each), 2
    // failed RPCs (3 each), 1 stream (3 + 3 pricing calls of 2 spans): the
    // last ones may end just after the response, and are waited for.
    let expected_spans = 3 * 5 + 2 * 5 + 2 * 3 + (3 + 3 * 2);
    let spans = t.spans().await;
    assert_eq!(spans.len(), expected_spans, "{spans}");

    let orders = chain.orders.addr.port();
    let pricing = chain.pricing.addr.port();
    let http = |route: &str, status: u16, error: bool| {
        let mut a = vec![
            "http.request.method=GET".to_owned(),
            format!("http.response.status_code={status}"),
            format!("http.route={route}"),
            "network.protocol.version=1.1".to_owned(),
            "url.scheme=http".to_owned(),
        ];
        if error {
            a.push(format!("error.type={status}"));
        }
        a
    };
    let sorted = |mut points: Vec<(u64, Vec<String>)>| {
        for (_, a) in &mut points {
            a.sort();
        }
        points.sort();
        points
    };

    // Gateway and pricing record into the same capture: one histogram,
    // told apart by route. No point for the filtered health checks.
    assert_eq!(
        histogram(t, "http.server.request.duration"),
        sorted(vec![
            (3, http("/orders/{id}", 200, false)),
            (2, http("/orders/{id}", 503, true)),
            (2, http("/orders/{id}/cancel", 500, true)),
            (1, http("/orders/{id}/history", 200, false)),
            (6, http("/price/{sku}", 200, false)),
            (2, http("/price/{sku}", 500, true)),
        ])
    );

    let to_pricing = |status: u16, error: bool| {
        let mut a = vec![
            "http.request.method=GET".to_owned(),
            format!("http.response.status_code={status}"),
            "network.protocol.version=1.1".to_owned(),
            "server.address=127.0.0.1".to_owned(),
            format!("server.port={pricing}"),
        ];
        if error {
            a.push(format!("error.type={status}"));
        }
        a
    };
    assert_eq!(
        histogram(t, "http.client.request.duration"),
        sorted(vec![
            (6, to_pricing(200, false)),
            (2, to_pricing(500, true))
        ])
    );

    let rpc = |method: &str, code: &str, error: bool, client: bool| {
        let mut a = vec![
            format!("rpc.method=baton.test.Echo/{method}"),
            format!("rpc.response.status_code={code}"),
            "rpc.system.name=grpc".to_owned(),
        ];
        if error {
            a.push(format!("error.type={code}"));
        }
        if client {
            a.push("server.address=127.0.0.1".to_owned());
            a.push(format!("server.port={orders}"));
        }
        a
    };
    for (name, client) in [
        ("rpc.server.call.duration", false),
        ("rpc.client.call.duration", true),
    ] {
        assert_eq!(
            histogram(t, name),
            sorted(vec![
                (3, rpc("Unary", "OK", false, client)),
                (2, rpc("Unary", "UNAVAILABLE", true, client)),
                (2, rpc("Fail", "INTERNAL", true, client)),
                (1, rpc("Stream", "OK", false, client)),
            ]),
            "{name}"
        );
    }
    chain.stop().await;
}
