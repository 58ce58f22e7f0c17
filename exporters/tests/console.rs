//! Snapshot tests of the console exporters' output.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, SystemTime};

use baton_exporters::{ConsoleMetricExporter, ConsoleSpanExporter};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanEvents, SpanExporter, SpanLinks};

/// A writer the test keeps a handle to after giving it to an exporter.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs an exporter future, which the console exporters complete at once.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut TaskContext::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("console exporters complete synchronously"),
    }
}

const TRACE: TraceId = TraceId::from_bytes([0x0a; 16]);
const T0: Duration = Duration::from_secs(1_700_000_000);

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + T0 + Duration::from_millis(ms)
}

fn resource(service: &'static str) -> Resource {
    Resource::builder_empty().with_service_name(service).build()
}

/// The bar between the `│` frames of a rendered line.
fn bar_of(line: &str) -> &str {
    let start = line.find('│').unwrap() + '│'.len_utf8();
    let end = line.rfind('│').unwrap();
    &line[start..end]
}

#[test]
fn draws_a_three_level_trace_under_a_remote_parent() {
    let buffer = Buffer::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource("checkout"))
        .with_simple_exporter(ConsoleSpanExporter::new().with_writer(buffer.clone()))
        .build();
    let tracer = provider.tracer("test");
    let remote = SpanContext::new(
        TRACE,
        SpanId::from_bytes([1; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let parent = Context::new().with_remote_span_context(remote);

    let server = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_start_time(at(0))
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("http.response.status_code", 502),
            KeyValue::new("user_agent.original", "curl/8"),
            KeyValue::new("baggage.tenant", "acme"),
        ])
        .start_with_context(&tracer, &parent);
    let server_cx = parent.with_span(server);

    let mut load = tracer
        .span_builder("load order")
        .with_start_time(at(10))
        .start_with_context(&tracer, &server_cx);
    load.set_status(Status::Ok);
    let load_cx = server_cx.with_span(load);

    let mut query = tracer
        .span_builder("SELECT orders")
        .with_kind(SpanKind::Client)
        .with_start_time(at(20))
        .with_attributes([KeyValue::new("db.system.name", "postgresql")])
        .start_with_context(&tracer, &load_cx);
    query.end_with_timestamp(at(45));
    load_cx.span().end_with_timestamp(at(50));

    let mut charge = tracer
        .span_builder("POST payments")
        .with_kind(SpanKind::Client)
        .with_start_time(at(60))
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.full", "http://payments/charge"),
            KeyValue::new("http.response.status_code", 503),
            KeyValue::new("error.type", "503"),
        ])
        .start_with_context(&tracer, &server_cx);
    charge.set_status(Status::error("payments unavailable"));
    charge.end_with_timestamp(at(90));

    server_cx.span().set_status(Status::error(""));
    server_cx.span().end_with_timestamp(at(120));

    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        "trace 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a · checkout · GET /orders/{id} · 120.00 ms · 4 spans",
        "checkout  GET /orders/{id}                             SRV │██████████████████████████████│   120.00 ms  ERROR  http.request.method=GET http.route=/orders/{id} http.response.status_code=502 baggage.tenant=acme",
        "checkout    load order                                 INT │  ██████████▌                 │    40.00 ms  OK",
        "checkout      SELECT orders                            CLI │     ██████▎                  │    25.00 ms  -  db.system.name=postgresql",
        "checkout    POST payments                              CLI │               ███████▌       │    30.00 ms  ERROR: payments unavailable  http.request.method=POST http.response.status_code=503 error.type=503 url.full=http://payments/charge",
    ];
    assert_eq!(lines, expected, "rendered:\n{text}");
    for line in &lines[1..] {
        assert_eq!(bar_of(line).chars().count(), 30, "{line}");
    }
}

/// A finished span of trace [`TRACE`] with explicit ids and times.
fn span(id: u8, parent: u8, name: &'static str, start: u64, end: u64) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TRACE,
            SpanId::from_bytes([id; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes([parent; 8]),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: at(start),
        end_time: at(end),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

fn exporter(buffer: &Buffer) -> ConsoleSpanExporter {
    let mut exporter = ConsoleSpanExporter::new().with_writer(buffer.clone());
    exporter.set_resource(&resource("orders"));
    exporter
}

#[test]
fn waits_for_the_root_across_batches_and_orders_children_by_start() {
    let buffer = Buffer::default();
    let exporter = exporter(&buffer);
    ready(exporter.export(vec![
        span(3, 1, "second", 50, 100),
        span(2, 1, "first", 0, 40),
    ]))
    .unwrap();
    assert_eq!(buffer.text(), "", "nothing is drawn before the root");

    ready(exporter.export(vec![span(1, 0, "root", 0, 100)])).unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].ends_with("· orders · root · 100.00 ms · 3 spans"),
        "{text}"
    );
    assert!(lines[1].starts_with("orders  root "), "{text}");
    assert!(lines[2].starts_with("orders    first "), "{text}");
    assert!(lines[3].starts_with("orders    second "), "{text}");
    assert_eq!(bar_of(lines[2]), "████████████                  ");
    assert_eq!(bar_of(lines[3]), "               ███████████████");
    assert_eq!(exporter.dropped_spans(), 0);
}

/// Two services in one process, each exporting through its own handle: one
/// tree, each line naming the service that recorded its span, the names in
/// one column; shutting one handle down leaves the other's wait intact.
#[test]
fn shared_exporters_draw_one_tree_naming_each_spans_service() {
    let buffer = Buffer::default();
    let mut gateway = ConsoleSpanExporter::new().with_writer(buffer.clone());
    let mut inventory = gateway.share();
    gateway.set_resource(&resource("gateway"));
    inventory.set_resource(&resource("inventory"));

    ready(inventory.export(vec![span(3, 2, "reserve", 20, 60)])).unwrap();
    // The child's service shuts down first: its span still waits for the root.
    inventory
        .shutdown_with_timeout(Duration::from_secs(1))
        .unwrap();
    assert_eq!(buffer.text(), "", "nothing is drawn before the root");
    ready(gateway.export(vec![
        span(2, 1, "call inventory", 10, 70),
        span(1, 0, "checkout", 0, 100),
    ]))
    .unwrap();

    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].ends_with("· gateway · checkout · 100.00 ms · 3 spans"),
        "{text}"
    );
    assert!(lines[1].starts_with("gateway    checkout "), "{text}");
    assert!(
        lines[2].starts_with("gateway      call inventory "),
        "{text}"
    );
    assert!(lines[3].starts_with("inventory      reserve "), "{text}");
    assert!(
        ready(inventory.export(vec![span(4, 0, "late", 0, 1)])).is_err(),
        "a handle shut down refuses spans"
    );
}

/// The last open handle to shut down draws what still waits.
#[test]
fn the_last_shared_exporter_to_shut_down_draws_what_waits() {
    let buffer = Buffer::default();
    let first = ConsoleSpanExporter::new().with_writer(buffer.clone());
    let mut second = first.share();
    second.set_resource(&resource("orders"));
    ready(second.export(vec![span(2, 1, "orphan", 0, 10)])).unwrap();
    drop(first);
    assert_eq!(
        buffer.text(),
        "",
        "the open handle may still bring the root"
    );
    second
        .shutdown_with_timeout(Duration::from_secs(1))
        .unwrap();
    let text = buffer.text();
    assert!(text.contains("incomplete"), "{text}");
    assert!(text.contains("orders  orphan "), "{text}");
}

#[test]
fn orphans_past_their_max_age_are_drawn_as_incomplete_trees() {
    let buffer = Buffer::default();
    let exporter = exporter(&buffer).with_max_age(Duration::ZERO);
    ready(exporter.export(vec![
        span(3, 2, "child", 10, 20),
        span(2, 9, "parent", 0, 30),
    ]))
    .unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with("· orders · parent · 30.00 ms · 2 spans · incomplete: parent 0909090909090909 not exported"),
        "{text}"
    );
    assert!(lines[1].starts_with("orders  parent "), "{text}");
    assert!(lines[2].starts_with("orders    child "), "{text}");
}

#[test]
fn a_full_buffer_drops_the_oldest_trace_and_reports_it() {
    let buffer = Buffer::default();
    let exporter = exporter(&buffer).with_max_buffered_spans(2);
    let orphan = |trace: u8| {
        let mut span = span(2, 1, "orphan", 0, 10);
        span.span_context = SpanContext::new(
            TraceId::from_bytes([trace; 16]),
            SpanId::from_bytes([2; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        span
    };
    ready(exporter.export(vec![orphan(1), orphan(2)])).unwrap();
    ready(exporter.export(vec![orphan(3)])).unwrap();
    assert_eq!(exporter.dropped_spans(), 1);
    assert_eq!(
        buffer.text(),
        "console exporter: dropped 1 span(s) waiting for their root (1 in total; buffer holds 2)\n"
    );

    // Shutdown draws what still waits, then refuses further exports.
    exporter.shutdown().unwrap();
    let text = buffer.text();
    assert_eq!(
        text.matches("incomplete: parent 0101010101010101").count(),
        2,
        "{text}"
    );
    assert!(ready(exporter.export(vec![orphan(4)])).is_err());
}

#[test]
fn odd_times_never_panic_and_bars_stay_within_width() {
    let buffer = Buffer::default();
    let exporter = exporter(&buffer).with_bar_width(12);
    let mut backwards = span(2, 1, "ends before it starts", 30, 10);
    backwards.status = Status::error("x".repeat(500));
    let batch = vec![
        backwards,
        span(3, 1, "starts before the root", 0, 5),
        span(4, 1, "outlives the root", 0, 1_000),
        span(1, 0, "instant root", 10, 10),
    ];
    ready(exporter.export(batch)).unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for line in &lines[1..] {
        assert_eq!(bar_of(line).chars().count(), 12, "{line}");
    }
    assert!(lines[0].contains("· instant root · 0.00 ms ·"), "{text}");
    assert!(
        text.contains(&format!("ERROR: {}…", "x".repeat(63))),
        "{text}"
    );
}

#[test]
fn huge_traces_are_capped() {
    let buffer = Buffer::default();
    let exporter = exporter(&buffer).with_max_lines(10);
    let mut batch: Vec<SpanData> = (2..=201).map(|id| span(id, 1, "child", 0, 1)).collect();
    batch.push(span(1, 0, "root", 0, 10));
    ready(exporter.export(batch)).unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    assert_eq!(lines[11], "  … 191 more spans not shown");
}

#[test]
fn color_is_opt_in_for_custom_writers() {
    let plain = Buffer::default();
    let mut errored = span(1, 0, "root", 0, 10);
    errored.status = Status::error("boom");
    ready(exporter(&plain).export(vec![errored.clone()])).unwrap();
    assert!(!plain.text().contains('\x1b'));

    let colored = Buffer::default();
    ready(exporter(&colored).with_color(true).export(vec![errored])).unwrap();
    assert!(
        colored.text().contains("\x1b[31mERROR: boom\x1b[0m"),
        "{}",
        colored.text()
    );
}

/// The conventions' duration boundaries, in seconds, as Baton's middleware uses.
const BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Records a known distribution: 50 × 4 ms and 45 × 20 ms that succeed on
/// `GET /orders/{id}`, 5 × 300 ms failing with `error.type`, and 2 gRPC calls.
fn record(provider: &SdkMeterProvider) {
    let meter = provider.meter("test");
    let server = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_boundaries(BOUNDARIES.to_vec())
        .build();
    let ok = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/orders/{id}"),
        KeyValue::new("http.response.status_code", 200),
    ];
    let failed = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/orders/{id}"),
        KeyValue::new("http.response.status_code", 500),
        KeyValue::new("error.type", "500"),
    ];
    for _ in 0..50 {
        server.record(0.004, &ok);
    }
    for _ in 0..45 {
        server.record(0.020, &ok);
    }
    for _ in 0..5 {
        server.record(0.300, &failed);
    }
    let rpc = meter
        .f64_histogram("rpc.client.call.duration")
        .with_unit("s")
        .with_boundaries(BOUNDARIES.to_vec())
        .build();
    rpc.record(
        0.010,
        &[KeyValue::new("rpc.method", "payments.Payments/Charge")],
    );
    rpc.record(
        0.030,
        &[KeyValue::new("rpc.method", "payments.Payments/Charge")],
    );
    // Not a RED histogram: ignored.
    meter.u64_counter("orders.created").build().add(3, &[]);
}

/// The table's cells: columns are separated by at least two spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn collect(temporality: Temporality) -> ResourceMetrics {
    let reader = ManualReaderWrapper::new(temporality);
    let provider = SdkMeterProvider::builder()
        .with_resource(resource("checkout"))
        .with_reader(reader.clone())
        .build();
    record(&provider);
    let mut metrics = ResourceMetrics::default();
    reader.0.collect(&mut metrics).unwrap();
    metrics
}

/// A `ManualReader` shared between the provider and the test.
#[derive(Clone, Debug)]
struct ManualReaderWrapper(Arc<ManualReader>);

impl ManualReaderWrapper {
    fn new(temporality: Temporality) -> Self {
        Self(Arc::new(
            ManualReader::builder()
                .with_temporality(temporality)
                .build(),
        ))
    }
}

impl MetricReader for ManualReaderWrapper {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

#[test]
fn red_table_counts_errors_and_estimates_percentiles_from_buckets() {
    let buffer = Buffer::default();
    let exporter = ConsoleMetricExporter::new().with_writer(buffer.clone());
    assert_eq!(exporter.temporality(), Temporality::Delta);
    ready(exporter.export(&collect(Temporality::Delta))).unwrap();

    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("RED · interval "), "{text}");
    assert_eq!(
        cells(lines[1]),
        [
            "SERVICE", "KIND", "ROUTE", "REQS", "REQ/S", "ERRORS", "ERR%", "P50 ms", "P95 ms",
            "P99 ms", "MEAN ms"
        ]
    );
    // Rows sort by service, kind, route; the rate depends on the real interval.
    let http = cells(lines[2]);
    assert_eq!(
        http[..4],
        ["checkout", "http server", "GET /orders/{id}", "100"],
        "{text}"
    );
    assert!(http[4].parse::<f64>().unwrap() > 0.0, "{text}");
    // p50 ends the 4 ms bucket at its 5 ms bound, p95 ends the 10–25 ms bucket,
    // p99 falls in the 250–500 ms bucket and is clamped to the 300 ms maximum.
    assert_eq!(
        http[5..],
        ["5", "5.0", "5.00", "25.00", "300.00", "26.00"],
        "{text}"
    );
    let rpc = cells(lines[3]);
    assert_eq!(
        rpc[..4],
        ["checkout", "rpc client", "payments.Payments/Charge", "2"],
        "{text}"
    );
    // Interpolated inside 5–10 ms and 25–50 ms, clamped to the 10–30 ms range.
    assert_eq!(
        rpc[5..],
        ["0", "0.0", "10.00", "30.00", "30.00", "20.00"],
        "{text}"
    );
    // Header columns line up with the cells below them.
    let p99 = lines[1].find("P99 ms").unwrap() + "P99 ms".len();
    assert_eq!(&lines[2][p99 - "300.00".len()..p99], "300.00", "{text}");
}

#[test]
fn red_table_of_cumulative_data_has_no_rate() {
    let buffer = Buffer::default();
    let exporter = ConsoleMetricExporter::new().with_writer(buffer.clone());
    ready(exporter.export(&collect(Temporality::Cumulative))).unwrap();
    let text = buffer.text();
    assert!(text.starts_with("RED · cumulative\n"), "{text}");
    let http = text.lines().find(|l| l.contains("http server")).unwrap();
    assert_eq!(cells(http)[3..6], ["100", "-", "5"], "{text}");
}

#[test]
fn periodic_reader_prints_a_table_per_interval_and_nothing_when_idle() {
    let buffer = Buffer::default();
    let reader = PeriodicReader::builder(ConsoleMetricExporter::new().with_writer(buffer.clone()))
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource("checkout"))
        .with_reader(reader)
        .build();
    record(&provider);
    provider.force_flush().unwrap();
    let first = buffer.text();
    assert_eq!(first.matches("RED · interval").count(), 1, "{first}");
    assert!(first.contains("GET /orders/{id}"), "{first}");

    provider.force_flush().unwrap();
    assert_eq!(buffer.text(), first, "an idle interval prints nothing");
    provider.shutdown().unwrap();
}
