//! The export path under hostile or failing conditions, against a real
//! rotel collector: attribute values capped, requests kept under the
//! collector's message limit, the queue bounded in bytes with the collector
//! hung, nothing lost across a collector restart, and a shutdown report that
//! names only the signals that are on.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]
#![allow(unsafe_code, reason = "the counting global allocator in `heap`")]

mod common;
mod heap;
#[allow(dead_code, reason = "shared with the other export tests")]
mod rotel;

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_exporters::Config;
use baton_exporters::pipeline::{BatchSpanProcessor, Pipeline};
use common::{config, serial};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use rotel::Rotel;
use serde_json::Value as Json;

const ARRIVAL: Duration = Duration::from_secs(30);
const MIB: usize = 1024 * 1024;

/// Spans only, over gRPC to `endpoint`.
fn grpc_config(endpoint: String, extra: &[(&str, String)]) -> Config {
    let mut vars = vec![
        ("OTEL_SERVICE_NAME", "hardening-test".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
    ];
    vars.extend(extra.iter().cloned());
    config(&vars)
}

/// The names rotel received starting with `prefix`, each once.
fn names(lines: &[Json], prefix: &str) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l["name"].as_str())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Keeps the spans it is given, for the test to look at.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A string attribute value as long as the limit allows, by default 4096
/// characters, cut at a character boundary; arrays element by element, on
/// the span and its events; other values untouched. The span variable wins
/// over the generic one.
#[test]
fn attribute_values_are_capped_before_queueing() {
    let _serial = serial();
    // (vars, the limit they set)
    let rows: [(&[(&str, &str)], usize); 3] = [
        (&[], 4096),
        (&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100")], 100),
        (
            &[
                ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
                ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10"),
            ],
            10,
        ),
    ];
    for (vars, limit) in rows {
        let vars: Vec<(&str, String)> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let config = config(&vars);
        let kept = Keep::default();
        let processor = BatchSpanProcessor::new(kept.clone(), &config.bsp)
            .unwrap()
            .with_span_limits(&config.span_limits);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("limits");
        // A 300 KB user agent, in two-byte characters so that a cut by
        // bytes would split one.
        let agent = "é".repeat(150_000);
        let mut span = tracer.start("hostile");
        span.set_attribute(KeyValue::new("user_agent.original", agent.clone()));
        span.set_attribute(KeyValue::new(
            "list",
            Value::Array(Array::String(vec![
                StringValue::from(agent.clone()),
                StringValue::from("short"),
            ])),
        ));
        span.set_attribute(KeyValue::new("count", 7_i64));
        span.add_event("event", vec![KeyValue::new("body", agent.clone())]);
        span.end();
        provider.force_flush().unwrap();
        let spans = kept.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1, "limit {limit}");
        let span = &spans[0];
        let value = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
                .unwrap()
        };
        let cut = "é".repeat(limit);
        assert_eq!(
            value("user_agent.original"),
            Value::String(cut.clone().into()),
            "limit {limit}"
        );
        assert_eq!(
            value("list"),
            Value::Array(Array::String(vec![
                StringValue::from(cut.clone()),
                StringValue::from("short".chars().take(limit).collect::<String>()),
            ]))
        );
        assert_eq!(value("count"), Value::I64(7));
        assert_eq!(
            span.events.events[0].attributes[0].value,
            Value::String(cut.into())
        );
        provider.shutdown().unwrap();
    }
}

/// Spans carrying megabyte attributes (the limit raised to let them
/// through) never cost the ordinary spans around them: batches are cut by
/// encoded size under the collector's 4 MiB message limit, and a span too
/// large even alone is dropped and counted, not the batch holding it.
#[test]
fn megabyte_attributes_never_cost_the_ordinary_spans() {
    let _serial = serial();
    const ORDINARY: usize = 1_000;
    const BIG: usize = 10;
    const HUGE: usize = 2;
    let rotel = Rotel::start("hostile");
    let config = grpc_config(
        rotel.grpc_endpoint(),
        &[
            (
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                (8 * MIB).to_string(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let provider = pipeline.tracer_provider();
    let tracer = provider.tracer("hostile");
    for i in 0..ORDINARY {
        let mut span = tracer.start(format!("ok-{i}"));
        span.set_attribute(KeyValue::new("http.route", "/users/{id}"));
        span.end();
        // Spread through the batches: each big span would put its batch
        // over the collector's limit, each huge one over it alone.
        if i % (ORDINARY / BIG) == 7 {
            let mut span = tracer.start(format!("big-{i}"));
            span.set_attribute(KeyValue::new(
                "user_agent.original",
                "a".repeat(3 * MIB / 2),
            ));
            span.end();
        }
        if i % (ORDINARY / HUGE) == 11 {
            let mut span = tracer.start(format!("huge-{i}"));
            span.set_attribute(KeyValue::new("user_agent.original", "a".repeat(5 * MIB)));
            span.end();
        }
    }
    let lines = rotel.wait_for("spans", ARRIVAL, |l| {
        names(l, "ok-").len() == ORDINARY && names(l, "big-").len() == BIG
    });
    let report = pipeline.shutdown(Duration::from_secs(5));
    eprintln!("hostile attributes: {report}");
    assert_eq!(
        names(&lines, "ok-").len(),
        ORDINARY,
        "every ordinary span arrived: {report}"
    );
    assert_eq!(
        names(&lines, "big-").len(),
        BIG,
        "the big spans too: {report}"
    );
    assert!(names(&lines, "huge-").is_empty(), "{report}");
    assert_eq!(report.spans.exported, (ORDINARY + BIG) as u64, "{report}");
    assert_eq!(report.spans.failed, 0, "no request refused: {report}");
    assert_eq!(report.spans.oversized, HUGE as u64, "{report}");
    assert_eq!(report.spans.dropped, HUGE as u64, "{report}");
}

/// With the collector hung (stopped, its port still accepting) and every
/// span carrying a 16 KiB header, the heap stays under the queue's byte
/// bound plus a fixed overhead (the request being sent and its copy in the
/// transport), however many spans end; the rest are dropped and counted.
#[test]
fn a_hung_collector_holds_the_queue_to_its_byte_bound() {
    let _serial = serial();
    const BOUND: usize = 8 * MIB;
    const SPANS: usize = 5_000;
    // One request in flight, encoded and copied by the transport, plus
    // room for the allocator's and runtime's own.
    const OVERHEAD: usize = 2 * 4 * MIB + 2 * MIB;
    let rotel = Rotel::start("bytes");
    let config = grpc_config(
        rotel.grpc_endpoint(),
        &[
            ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "20000".to_owned()),
            ("BATON_BSP_MAX_QUEUE_BYTES", BOUND.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000".to_owned()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let stats = pipeline.span_stats();
    let tracer = pipeline.tracer_provider().tracer("bytes");
    // Connected and warm before the baseline.
    tracer.in_span("warm-up", |_| {});
    pipeline.tracer_provider().force_flush().unwrap();
    rotel.freeze();
    let baseline = heap::reset_peak();
    for i in 0..SPANS {
        let mut span = tracer.start(format!("held-{i}"));
        // A fresh string per span, as each request's header would be.
        span.set_attribute(KeyValue::new(
            "http.request.header.cookie",
            "c".repeat(16 * 1024),
        ));
        span.end();
    }
    let peak = heap::peak().saturating_sub(baseline);
    let held = stats.snapshot();
    rotel.thaw();
    let report = pipeline.shutdown(Duration::from_secs(3));
    eprintln!(
        "hung collector, 16 KiB headers: {SPANS} spans ended, heap peak {peak} B over the baseline \
         (bound {BOUND} B + {OVERHEAD} B), held {held:?}; {report}"
    );
    assert!(held.max_queued_bytes <= BOUND, "{held:?}");
    assert!(peak <= BOUND + OVERHEAD, "heap grew {peak} B");
    // The queue filled by bytes long before its 65,536 spans.
    let room = BOUND / (16 * 1024);
    assert!(held.max_queued < room, "{held:?}");
    assert!(
        held.dropped >= (SPANS - room) as u64,
        "the rest dropped, counted: {held:?}"
    );
}

/// The collector is killed under a steady load and restarted within 10 s:
/// the exports failing meanwhile are retried with backoff, every span is
/// delivered, and the report's counts are what the collector received.
#[test]
fn a_collector_restarted_within_10_s_loses_nothing() {
    let _serial = serial();
    let mut rotel = Rotel::start("restart");
    let config = grpc_config(
        rotel.grpc_endpoint(),
        &[("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned())],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (provider, stop, sent) = (
            pipeline.tracer_provider(),
            Arc::clone(&stop),
            Arc::clone(&sent),
        );
        std::thread::spawn(move || {
            let tracer = provider.tracer("steady");
            while !stop.load(Ordering::Relaxed) {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                tracer.in_span(format!("steady-{n}"), |_| {});
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    rotel.kill();
    std::thread::sleep(Duration::from_secs(8));
    rotel.restart();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    let report = pipeline.shutdown(Duration::from_secs(20));
    let lines = rotel.wait_for("spans", ARRIVAL, |l| names(l, "steady-").len() >= sent);
    let received = names(&lines, "steady-");
    eprintln!(
        "collector restarted: {sent} spans sent, {} received; {report}",
        received.len()
    );
    assert!(report.delivered(), "{report}");
    assert_eq!(report.spans.exported, sent as u64, "{report}");
    let expected: BTreeSet<String> = (0..sent).map(|n| format!("steady-{n}")).collect();
    assert_eq!(received.len(), sent, "every span reached the collector");
    assert_eq!(received, expected);
}

/// The shutdown report names only the signals that are on: spans stuck on
/// a hung collector are reported, logs and metrics (off) are not, however
/// short the deadline.
#[test]
fn the_shutdown_report_names_only_the_signals_that_are_on() {
    let _serial = serial();
    let rotel = Rotel::start("shutdown");
    let config = grpc_config(rotel.grpc_endpoint(), &[]);
    let pipeline = Pipeline::new(&config).unwrap();
    pipeline
        .tracer_provider()
        .tracer("shutdown")
        .in_span("stuck", |_| {});
    rotel.freeze();
    let report = pipeline.shutdown(Duration::from_millis(300));
    rotel.thaw();
    eprintln!("spans only, collector hung: {report}");
    assert!(!report.errors.is_empty(), "{report}");
    assert!(
        report.errors.iter().all(|e| e.starts_with("spans: ")),
        "{report}"
    );

    let off = config_with_everything_off();
    let report = Pipeline::new(&off).unwrap().shutdown(Duration::ZERO);
    assert!(report.errors.is_empty(), "{report}");
    assert!(report.delivered(), "{report}");
}

fn config_with_everything_off() -> Config {
    config(&[
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
    ])
}
