//! A real three-hop chain on 127.0.0.1, in one process: a test client calls
//! the gateway (axum, HTTP), which calls orders (tonic, gRPC), which calls
//! pricing (axum, HTTP) with reqwest. Every hop is instrumented with
//! Baton's layers; spans and metrics go to memory, log lines to a buffer.
//! See `chain_support` for the services.

#![allow(clippy::unwrap_used, reason = "tests")]

mod chain_support;

use chain_support::{Chain, HEALTHZ, Telemetry, attr, logs, names, one};
use opentelemetry::Value;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, Tracer as _, TracerProvider as _,
};
use opentelemetry_sdk::trace::SpanData;
use serde_json::json;

const BAGGAGE: &str = "tenant=acme,user=ada";

/// The test client's own span: the root of the trace, ended by the caller.
fn root(telemetry: &Telemetry) -> opentelemetry_sdk::trace::Span {
    let tracer = telemetry.tracer_provider.tracer("test-client");
    tracer
        .span_builder("checkout")
        .with_kind(SpanKind::Client)
        .start_with_context(&tracer, &opentelemetry::Context::new())
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

fn check_attrs<const N: usize>(span: &SpanData, expected: [(&'static str, Value); N]) {
    for (key, value) in expected {
        assert_eq!(attr(span, key), Some(value), "{} {key}", span.name);
    }
}

fn port(server: &chain_support::Server) -> Value {
    Value::I64(i64::from(server.addr.port()))
}

/// `child` is a child of `parent` in the same trace; `remote` when the
/// parent's context came over the wire.
#[track_caller]
fn assert_child(child: &SpanData, parent: &SpanData, remote: bool) {
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id(),
        "{} in {}'s trace",
        child.name,
        parent.name
    );
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{} child of {}",
        child.name,
        parent.name
    );
    assert_eq!(child.parent_span_is_remote, remote, "{} remote", child.name);
}

/// The one span of `spans` with `kind` and `name`.
fn of_kind<'a>(spans: &'a [SpanData], kind: &SpanKind, name: &str) -> &'a SpanData {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| &s.span_kind == kind && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind:?} {name:?} in {:#?}", names(spans));
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_chain_is_one_trace_carrying_baggage_and_request_id() {
    let chain = Chain::start().await;
    let t = &chain.telemetry;
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/42"), &root_cx, "chain-req-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "chain-req-1");
    assert_eq!(response.text().await.unwrap(), "42=9.99");
    drop(root);

    let spans = t.trace(root_cx.trace_id(), 6).await;
    let root = one(&spans, "checkout");
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    let grpc_client = of_kind(&spans, &SpanKind::Client, "baton.test.Echo/Unary");
    let grpc_server = of_kind(&spans, &SpanKind::Server, "baton.test.Echo/Unary");
    let http_client = of_kind(&spans, &SpanKind::Client, "GET");
    let pricing = of_kind(&spans, &SpanKind::Server, "GET /price/{sku}");

    // One trace, each hop the child of the one before.
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_child(gateway, root, true);
    assert_child(grpc_client, gateway, false);
    assert_child(grpc_server, grpc_client, true);
    assert_child(http_client, grpc_server, false);
    assert_child(pricing, http_client, true);
    for span in &spans {
        assert_eq!(span.status, Status::Unset, "{}", span.name);
        assert_eq!(attr(span, "error.type"), None, "{}", span.name);
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
        assert_eq!(visit.span_id, span.span_context.span_id(), "{hop}");
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
        assert_eq!(line["span_id"], span.span_context.span_id().to_string());
        assert_eq!(line["request_id"], "chain-req-1", "{line}");
        assert_eq!(line["baggage"], json!({"tenant": "acme", "user": "ada"}));
    }
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_through_the_chain_ends_after_its_last_message() {
    let chain = Chain::start().await;
    let t = &chain.telemetry;
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/7/history"), &root_cx, "req-s").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "7-0=9.99,7-1=9.99,7-2=9.99");
    drop(root);

    // root, gateway, gRPC client and server, three HTTP clients and servers.
    let spans = t.trace(root_cx.trace_id(), 10).await;
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
        assert_eq!(span.status, Status::Unset);
    }
    // The pricing calls were made from a task the handler spawned, while
    // the stream was being sent: still children of the gRPC server span.
    for i in 0..3 {
        let sku = format!("7-{i}");
        let pricing = spans
            .iter()
            .find(|s| attr(s, "url.path") == Some(format!("/price/{sku}").into()))
            .unwrap_or_else(|| panic!("pricing span for {sku}"));
        assert_eq!(pricing.span_kind, SpanKind::Server);
        let client = spans
            .iter()
            .find(|s| s.span_context.span_id() == pricing.parent_span_id)
            .unwrap();
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(client.name, "GET");
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
    assert!(grpc_server.end_time >= last_sent);
    assert!(grpc_client.end_time >= grpc_server.end_time);
    assert!(gateway.end_time >= grpc_client.end_time);
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_errors_on_the_spans_of_the_hops_that_failed() {
    let chain = Chain::start().await;
    let t = &chain.telemetry;

    // A 500 at pricing: an error at every hop, each in its own terms, and
    // the gateway answers 503 (orders said UNAVAILABLE).
    let root = root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/broken-1"), &root_cx, "req-f1").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "orders: Unavailable");
    drop(root);
    let spans = t.trace(root_cx.trace_id(), 6).await;
    let expected = [
        (SpanKind::Server, "GET /price/{sku}", "500"),
        (SpanKind::Client, "GET", "500"),
        (SpanKind::Server, "baton.test.Echo/Unary", "UNAVAILABLE"),
        (SpanKind::Client, "baton.test.Echo/Unary", "UNAVAILABLE"),
        (SpanKind::Server, "GET /orders/{id}", "503"),
    ];
    for (kind, name, error) in expected {
        let span = of_kind(&spans, &kind, name);
        assert_eq!(attr(span, "error.type"), Some(error.into()), "{name}");
        assert!(matches!(span.status, Status::Error { .. }), "{name}");
    }
    let http_client = of_kind(&spans, &SpanKind::Client, "GET");
    assert_eq!(
        attr(http_client, "http.response.status_code"),
        Some(500.into())
    );
    let gateway = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    assert_eq!(attr(gateway, "http.response.status_code"), Some(503.into()));
    assert_eq!(one(&spans, "checkout").status, Status::Unset);

    // A failing RPC: INTERNAL on both gRPC spans, a 500 from the gateway,
    // and no call to pricing.
    let root = self::root(t);
    let root_cx = root.span_context().clone();
    let response = call(&chain.gateway.url("/orders/9/cancel"), &root_cx, "req-f2").await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "orders: Internal");
    drop(root);
    let spans = t.trace(root_cx.trace_id(), 4).await;
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
        assert_eq!(span.status, Status::error("INTERNAL"));
    }
    check_attrs(
        gateway,
        [
            ("http.response.status_code", 500.into()),
            ("error.type", "500".into()),
        ],
    );
    assert!(matches!(gateway.status, Status::Error { .. }));
    let visit = chain.seen.visit("orders", "9");
    assert_eq!(visit.span_id, grpc_server.span_context.span_id());
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_not_traced_and_a_public_gateway_starts_a_new_trace() {
    let chain = Chain::start().await;
    let t = &chain.telemetry;
    let root = root(t);
    let root_cx = root.span_context().clone();

    let health = call(&chain.gateway.url(HEALTHZ), &root_cx, "req-h").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-request-id").is_none());
    assert_eq!(health.text().await.unwrap(), "ok");
    assert_eq!(names(&t.spans()), Vec::<String>::new());

    // The public gateway: a new trace, linked to the caller's span; the
    // caller's baggage is dropped, its (safe) request id kept.
    let response = call(&chain.public_gateway.url("/orders/5"), &root_cx, "req-p").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-p");
    drop(root);

    let gateway = chain.seen.visit("gateway", "5");
    assert_ne!(gateway.trace_id, root_cx.trace_id());
    let spans = t.trace(gateway.trace_id, 5).await;
    let gateway_span = of_kind(&spans, &SpanKind::Server, "GET /orders/{id}");
    assert_eq!(gateway_span.parent_span_id, SpanId::INVALID);
    let [link] = gateway_span.links.links.as_slice() else {
        panic!("one link: {:?}", gateway_span.links)
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
    let caller_trace = t.trace(root_cx.trace_id(), 1).await;
    assert_eq!(caller_trace[0].name, "checkout");
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_histograms_count_every_call_by_route_method_and_status() {
    let chain = Chain::start().await;
    let t = &chain.telemetry;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(chain.gateway.url(path)).send();
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
    // last ones may end just after the response.
    let expected_spans = 3 * 5 + 2 * 5 + 2 * 3 + (3 + 3 * 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.spans().len() < expected_spans && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(t.spans().len(), expected_spans, "{:#?}", names(&t.spans()));

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

    // Gateway and pricing record into the same provider: one histogram,
    // told apart by route. No point for the filtered health checks.
    assert_eq!(
        t.histogram("http.server.request.duration"),
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
        t.histogram("http.client.request.duration"),
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
            t.histogram(name),
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
