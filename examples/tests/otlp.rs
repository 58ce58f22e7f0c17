//! The demo services as four separate processes, each set up by
//! `baton::init()` from `OTEL_*` as `docker-compose.yml` configures them,
//! exporting to a real OTLP collector (rotel, installed by
//! `scripts/setup-peers`): one checkout is one trace with the right parents,
//! and RED metrics and log records arrive.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

// The collector helper the exporter tests use, not a copy of it.
#[path = "../../exporters/tests/rotel/mod.rs"]
#[allow(dead_code, reason = "shared helper, partly used here")]
mod rotel;
mod services;

use std::time::Duration;

use rotel::Rotel;
use serde_json::Value;
use services::Services;

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_checkout_across_four_processes_is_one_trace_at_the_collector() {
    let collector = Rotel::start("demo-services");
    let services = Services::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
    ]);
    let status = services.checkout("widget", "acme", "ann");
    assert!(status.is_success(), "checkout answered {status}");

    // Every span of the checkout, from four processes: find the trace by its
    // root, then wait for the rest.
    let expected = [
        "GET /checkout/{sku}",
        "shop.Orders/PlaceOrder",
        "shop.Inventory/Reserve",
        "GET /price/{sku}",
    ];
    let spans = collector.wait_for("spans", DEADLINE, |lines| {
        let Some(root) = lines.iter().find(|s| s["name"] == expected[0]) else {
            return false;
        };
        let trace = lines.iter().filter(|s| s["trace_id"] == root["trace_id"]);
        trace.count() >= 9
    });
    let root = spans
        .iter()
        .find(|s| s["name"] == expected[0])
        .unwrap_or_else(|| panic!("no gateway span arrived: {spans:?}"));
    let trace: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == root["trace_id"])
        .collect();
    let parent_of = |span: &Value| {
        trace
            .iter()
            .find(|p| p["span_id"] == span["parent_id"])
            .copied()
    };
    // Each hop's server span is the child of a client span of the same
    // name, itself under the caller's server span: the chain is unbroken.
    let server = |name: &str| {
        trace
            .iter()
            .find(|s| s["name"] == name && parent_of(s).is_some_and(|p| p["name"] == name))
            .copied()
            .unwrap_or_else(|| {
                panic!("no {name} server span under a {name} client span: {trace:#?}")
            })
    };
    let place_order = server("shop.Orders/PlaceOrder");
    let reserve = server("shop.Inventory/Reserve");
    let watch = server("shop.Inventory/WatchStock");
    let price = trace
        .iter()
        .find(|s| s["name"] == "GET /price/{sku}")
        .unwrap_or_else(|| panic!("no pricing span: {trace:#?}"));
    let grandparent = |span: &Value| parent_of(span).and_then(parent_of);
    assert_eq!(
        grandparent(place_order).unwrap()["span_id"],
        root["span_id"]
    );
    assert_eq!(
        grandparent(reserve).unwrap()["span_id"],
        place_order["span_id"]
    );
    assert_eq!(
        grandparent(watch).unwrap()["span_id"],
        place_order["span_id"]
    );
    assert_eq!(grandparent(price).unwrap()["span_id"], root["span_id"]);
    assert!(
        root["parent_id"]
            .as_str()
            .unwrap_or_default()
            .trim_matches('0')
            .is_empty()
    );

    let metrics = collector.wait_for("metrics", DEADLINE, |lines| {
        [
            "http.server.request.duration",
            "rpc.server.call.duration",
            "rpc.client.call.duration",
        ]
        .iter()
        .all(|m| lines.iter().any(|l| l["name"] == *m))
    });
    for name in [
        "http.server.request.duration",
        "rpc.server.call.duration",
        "rpc.client.call.duration",
    ] {
        assert!(
            metrics.iter().any(|l| l["name"] == name),
            "no {name}: {metrics:?}"
        );
    }
    let logs = collector.wait_for("logs", DEADLINE, |lines| {
        lines
            .iter()
            .any(|l| l["body"].as_str().is_some_and(|b| b.contains("reserved")))
    });
    assert!(
        logs.iter()
            .any(|l| l["body"].as_str().is_some_and(|b| b.contains("reserved"))),
        "inventory's log record did not arrive: {logs:?}"
    );
}

/// Stopped with SIGTERM right after their last request (what `docker
/// compose down` does), the services flush what they hold: every span of
/// every checkout reaches the collector, and each says what it delivered.
#[test]
fn sigterm_right_after_the_last_request_loses_no_span() {
    const CHECKOUTS: usize = 5;
    let collector = Rotel::start("demo-sigterm");
    let mut services = Services::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        // Nothing is exported on schedule before the signal: only the
        // shutdown can deliver these spans.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ]);
    for _ in 0..CHECKOUTS {
        let status = services.checkout("widget", "acme", "ann");
        assert!(status.is_success(), "checkout answered {status}");
    }
    assert!(
        collector.lines("spans").is_empty(),
        "exported before the signal"
    );
    let said = services.terminate(Duration::from_secs(20));
    // "gateway: telemetry delivered: spans: 15 exported, 0 dropped, ..."
    let mut exported = 0;
    for line in &said {
        let counts = line
            .split_once("telemetry delivered: spans: ")
            .unwrap_or_else(|| panic!("{said:#?}"))
            .1;
        exported += counts.split(' ').next().unwrap().parse::<usize>().unwrap();
    }
    assert_eq!(exported, 9 * CHECKOUTS, "what the services say: {said:#?}");
    let spans = collector.wait_for("spans", DEADLINE, |lines| lines.len() >= 9 * CHECKOUTS);
    let roots = spans
        .iter()
        .filter(|s| s["name"] == "GET /checkout/{sku}")
        .count();
    assert_eq!(roots, CHECKOUTS, "{spans:#?}");
    assert_eq!(spans.len(), 9 * CHECKOUTS, "{spans:#?}");
}
