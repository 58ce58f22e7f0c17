//! The export pipeline against a real OTLP collector (rotel, installed by
//! `scripts/setup-peers`): delivery over both protocols, bursts, shutdown on
//! a `current_thread` runtime, a refusing collector and a collector killed
//! mid-run.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]
#![allow(unsafe_code, reason = "the counting global allocator in `heap`")]

mod common;
mod heap;
mod rotel;

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton_exporters::Config;
use baton_exporters::pipeline::{BatchSpanProcessor, Pipeline, span_exporter};
use common::{config, serial};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use rotel::Rotel;
use serde_json::Value;

const ARRIVAL: Duration = Duration::from_secs(30);

fn otlp_config(endpoint: String, protocol: &str, extra: &[(&str, String)]) -> Config {
    let mut vars = vec![
        ("OTEL_SERVICE_NAME", "export-test".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
    ];
    vars.extend(extra.iter().cloned());
    config(&vars)
}

fn named<'a>(lines: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// A root span with a child and a grandchild, all named `prefix-…`.
fn three_spans(provider: &SdkTracerProvider, prefix: &str) {
    let tracer = provider.tracer("export-test");
    tracer.in_span(format!("{prefix}-root"), |cx| {
        let _child = cx.span();
        tracer.in_span(format!("{prefix}-child"), |_| {
            tracer.in_span(format!("{prefix}-grandchild"), |_| {});
        });
    });
}

fn assert_one_trace(lines: &[Value], prefix: &str) {
    let spans = named(lines, prefix);
    assert_eq!(spans.len(), 3, "{prefix}: {spans:?}");
    let by_name = |suffix: &str| {
        spans
            .iter()
            .find(|s| s["name"] == format!("{prefix}-{suffix}"))
            .copied()
            .unwrap()
    };
    let (root, child, grandchild) = (by_name("root"), by_name("child"), by_name("grandchild"));
    assert!(
        spans.iter().all(|s| s["trace_id"] == root["trace_id"]),
        "one trace: {spans:?}"
    );
    assert_eq!(root["parent_id"], "", "the root has no parent");
    assert_eq!(child["parent_id"], root["span_id"]);
    assert_eq!(grandchild["parent_id"], child["span_id"]);
}

/// (1) and (2): spans, RED metrics and logs over gRPC and HTTP/protobuf, each
/// with and without gzip.
#[test]
fn spans_metrics_and_logs_arrive_over_both_protocols() {
    let _serial = serial();
    let rotel = Rotel::start("protocols");
    for (protocol, endpoint, gzip) in [
        ("grpc", rotel.grpc_endpoint(), "gzip"),
        ("grpc", rotel.grpc_endpoint(), "none"),
        ("http/protobuf", rotel.http_endpoint(), "gzip"),
        ("http/protobuf", rotel.http_endpoint(), "none"),
    ] {
        let prefix = format!("{}-{gzip}", protocol.replace('/', "-"));
        let config = otlp_config(
            endpoint,
            protocol,
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", gzip.to_owned())],
        );
        let pipeline = Pipeline::new(&config).unwrap();
        three_spans(&pipeline.tracer_provider(), &prefix);

        let meter = pipeline.meter_provider().meter("red");
        let requests = meter.u64_counter(format!("{prefix}.requests")).build();
        let duration = meter.f64_histogram(format!("{prefix}.duration")).build();
        requests.add(1, &[KeyValue::new("http.route", "/checkout")]);
        duration.record(0.012, &[KeyValue::new("http.route", "/checkout")]);

        let logger = pipeline.logger_provider().logger("export-test");
        let mut record = logger.create_log_record();
        record.set_body(format!("{prefix} log record").into());
        logger.emit(record);

        let report = pipeline.shutdown(Duration::from_secs(10));
        assert!(report.delivered(), "{protocol}: {report}");
        assert_eq!(report.spans.exported, 3, "{report}");
        assert_eq!(report.logs.exported, 1, "{report}");

        let spans = rotel.wait_for("spans", ARRIVAL, |l| named(l, &prefix).len() >= 3);
        assert_one_trace(&spans, &prefix);
        let metrics = rotel.wait_for("metrics", ARRIVAL, |l| {
            !named(l, &format!("{prefix}.duration")).is_empty()
        });
        for name in [
            format!("{prefix}.requests"),
            format!("{prefix}.duration"),
            "baton.exporter.spans.exported".to_owned(),
            "baton.exporter.spans.dropped".to_owned(),
            "baton.exporter.logs.exported".to_owned(),
            "baton.exporter.logs.dropped".to_owned(),
        ] {
            assert!(
                !named(&metrics, &name).is_empty(),
                "{protocol}: no {name} in {metrics:?}"
            );
        }
        let logs = rotel.wait_for("logs", ARRIVAL, |l| {
            l.iter()
                .any(|r| r["body"].as_str().is_some_and(|b| b.contains(&prefix)))
        });
        assert!(
            logs.iter()
                .any(|r| r["body"] == format!("{prefix} log record")),
            "{protocol}: {logs:?}"
        );
    }
}

/// The anchor the pipeline is measured against: `opentelemetry_sdk`'s own
/// `BatchSpanProcessor` with its defaults and the OTLP exporter `config`
/// describes, built in the current runtime's context.
fn upstream_provider(config: &Config) -> SdkTracerProvider {
    let exporter = span_exporter(&config.otlp.traces).unwrap();
    SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
        )
        .build()
}

fn burst(provider: &SdkTracerProvider, prefix: &str, count: usize) {
    let tracer = provider.tracer("burst");
    for i in 0..count {
        drop(tracer.start(format!("{prefix}-{i}")));
    }
}

/// (3): a 20,000-span burst arrives whole with Baton's defaults; upstream's
/// `BatchSpanProcessor` with its defaults drops most of it, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_spans_arrives_whole() {
    let _serial = serial();
    const BURST: usize = 20_000;
    let rotel = Rotel::start("burst");

    let config = otlp_config(rotel.grpc_endpoint(), "grpc", &[]);
    let pipeline = Pipeline::new(&config).unwrap();
    burst(&pipeline.tracer_provider(), "baton", BURST);
    let report = pipeline.shutdown(Duration::from_secs(20));
    assert!(report.delivered(), "{report}");
    let baton = named(
        &rotel.wait_for("spans", ARRIVAL, |l| named(l, "baton-").len() >= BURST),
        "baton-",
    )
    .len();

    // The anchor: upstream's processor and exporter, all defaults.
    let upstream = upstream_provider(&config);
    burst(&upstream, "upstream", BURST);
    let upstream_result = upstream.shutdown();
    let upstream_count = named(
        &rotel.wait_for("spans", Duration::from_secs(5), |l| {
            named(l, "upstream-").len() >= BURST
        }),
        "upstream-",
    )
    .len();
    eprintln!(
        "burst of {BURST}: Baton delivered {baton} ({report}); upstream delivered {upstream_count} (shutdown {upstream_result:?})"
    );
    assert_eq!(baton, BURST, "Baton delivers the whole burst");
    assert!(
        upstream_count < BURST,
        "upstream's 2048-span queue drops part of the burst"
    );
}

/// (4): shutdown on a `current_thread` runtime returns at once and delivers
/// everything. Upstream's `BatchSpanProcessor` with the tonic exporter
/// deadlocks there: its export thread waits for tonic, which waits for the
/// runtime, which is blocked in `shutdown()`; after 5 s it returns
/// `Err(Timeout)` with nothing delivered. (Measured: if the runtime then
/// runs on, the stuck export completes late; an application that exits
/// after shutdown loses it.)
#[tokio::test(flavor = "current_thread")]
async fn shutdown_on_a_current_thread_runtime_does_not_deadlock() {
    let _serial = serial();
    let rotel = Rotel::start("current-thread");
    for (protocol, endpoint) in [
        ("grpc", rotel.grpc_endpoint()),
        ("http/protobuf", rotel.http_endpoint()),
    ] {
        let prefix = format!("ct-{}", protocol.replace('/', "-"));
        let pipeline = Pipeline::new(&otlp_config(endpoint, protocol, &[])).unwrap();
        three_spans(&pipeline.tracer_provider(), &prefix);
        let started = Instant::now();
        let report = pipeline.shutdown(Duration::from_secs(5));
        let took = started.elapsed();
        eprintln!("{protocol}: shutdown on current_thread took {took:?}: {report}");
        // A deadlock check (it takes tens of milliseconds), not a speed
        // requirement.
        assert!(took < Duration::from_secs(1), "{protocol}: {took:?}");
        assert!(report.delivered(), "{protocol}: {report}");
        assert_one_trace(
            &rotel.wait_for("spans", ARRIVAL, |l| named(l, &prefix).len() >= 3),
            &prefix,
        );
    }

    // The anchor: upstream's processor with its defaults and the tonic
    // exporter, built on this runtime and shut down from inside it.
    let config = otlp_config(rotel.grpc_endpoint(), "grpc", &[]);
    let upstream = upstream_provider(&config);
    three_spans(&upstream, "ct-upstream");
    let started = Instant::now();
    let result = upstream.shutdown();
    let took = started.elapsed();
    // Still blocking the runtime, as an application that shuts down and
    // exits would.
    let arrived = named(
        &rotel.wait_for("spans", Duration::from_secs(3), |l| {
            !named(l, "ct-upstream").is_empty()
        }),
        "ct-upstream",
    )
    .len();
    eprintln!(
        "upstream on current_thread: shutdown took {took:?} ({result:?}), {arrived} of 3 spans arrived"
    );
    assert!(
        took >= Duration::from_secs(4) && result.is_err(),
        "upstream did not block: {took:?}, {result:?}"
    );
    assert_eq!(arrived, 0, "upstream delivered during its shutdown");
}

/// (5): a collector refusing connections makes shutdown report failure.
#[test]
fn a_refusing_collector_is_reported_as_a_failure() {
    let _serial = serial();
    let port = rotel::pick_free_port();
    for protocol in ["grpc", "http/protobuf"] {
        let config = otlp_config(format!("http://127.0.0.1:{port}"), protocol, &[]);
        let started = Instant::now();
        let pipeline = Pipeline::new(&config).unwrap();
        // Start-up does not wait for the collector (a generous bound: this
        // checks that no connection is attempted, not speed).
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let stats = pipeline.span_stats();
        three_spans(&pipeline.tracer_provider(), "refused");
        let report = pipeline.shutdown(Duration::from_secs(5));
        eprintln!("{protocol}, connection refused: {report}");
        assert!(!report.delivered(), "{protocol}: {report}");
        assert!(!report.errors.is_empty(), "{protocol}: {report}");
        assert_eq!(stats.snapshot().failed, 3, "{protocol}: {report}");
        assert_eq!(stats.snapshot().exported, 0, "{protocol}: {report}");
    }

    // The processor alone says so too, through the SDK's own shutdown.
    let config = otlp_config(format!("http://127.0.0.1:{port}"), "http/protobuf", &[]);
    let processor =
        BatchSpanProcessor::new(span_exporter(&config.otlp.traces).unwrap(), &config.bsp).unwrap();
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    three_spans(&provider, "refused");
    assert!(provider.shutdown().is_err());
    assert_eq!(stats.snapshot().failed, 3);

    // The anchor: upstream's processor says `Ok` although nothing arrived.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let config = otlp_config(format!("http://127.0.0.1:{port}"), "grpc", &[]);
    let upstream = upstream_provider(&config);
    three_spans(&upstream, "refused-upstream");
    let upstream_result = upstream.shutdown();
    eprintln!("upstream, connection refused: shutdown {upstream_result:?}");
    assert!(
        upstream_result.is_ok(),
        "upstream reports success: {upstream_result:?}"
    );
}

/// The log pipeline batches by `OTEL_BLRP_*`, not by the span processor's
/// `OTEL_BSP_*`: with a log queue of 10 (and a span queue of 1,000), records
/// poured at a collector that never answers are dropped beyond what the log
/// queue and one batch in flight hold.
#[test]
fn the_log_pipeline_is_configured_by_otel_blrp() {
    let _serial = serial();
    // Accepts connections and never answers: an export hangs until its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = otlp_config(
        format!("http://{}", silent.local_addr().unwrap()),
        "grpc",
        &[
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000".to_owned()),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "10".to_owned()),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "60000".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let logger = pipeline.logger_provider().logger("blrp");
    for i in 0..100 {
        let mut record = logger.create_log_record();
        record.set_body(format!("record-{i}").into());
        logger.emit(record);
    }
    let report = pipeline.shutdown(Duration::from_secs(2));
    eprintln!("log queue of 10: {report}");
    assert!(report.logs.max_queued <= 10, "{report}");
    assert!(report.logs.dropped >= 80, "{report}");
}

/// (6): the collector dies mid-run and comes back. Ending spans never
/// blocks, the queue stays within its bound, losses are counted, and
/// delivery resumes.
#[test]
fn a_collector_killed_mid_run_slows_nothing_and_delivery_resumes() {
    let _serial = serial();
    const QUEUE: usize = 1_000;
    let mut rotel = Rotel::start("killed");
    let config = otlp_config(
        rotel.grpc_endpoint(),
        "grpc",
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000".to_owned()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let provider = pipeline.tracer_provider();
    let stats = pipeline.span_stats();

    let load = Load::start(provider);
    std::thread::sleep(Duration::from_secs(1));
    let baseline = heap::reset_peak();
    rotel.kill();
    load.phase("dead");
    std::thread::sleep(Duration::from_secs(1));
    // Exports to a dead collector fail fast, so the queue need not fill:
    // only the bound is checked here (the hung-collector test fills it).
    let memory = pour(&pipeline.tracer_provider(), &stats, baseline, 20 * QUEUE);
    std::thread::sleep(Duration::from_secs(1));
    let while_dead = stats.snapshot();
    rotel.restart();
    load.phase("after");
    let resumed = rotel.wait_for("spans", ARRIVAL, |l| !named(l, "after-").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let ends = load.stop();
    let report = pipeline.shutdown(Duration::from_secs(5));
    eprintln!("killed collector: {ends}, while dead {while_dead:?}, final {report}");

    ends.check();
    memory.check_bound(QUEUE);
    assert!(
        report.spans.max_queued <= QUEUE,
        "queue grew to {}",
        report.spans.max_queued
    );
    assert!(
        while_dead.dropped + while_dead.failed > 0,
        "losses while the collector was down are counted: {while_dead:?}"
    );
    assert!(
        !named(&resumed, "after-").is_empty(),
        "delivery resumed after the restart"
    );
    assert!(report.spans.exported > while_dead.exported, "{report}");
    assert!(
        !report.delivered(),
        "the losses are reported at shutdown: {report}"
    );
}

/// (6b): the collector hangs (stopped, its ports still accepting) and comes
/// back: exports time out instead of failing fast. Ending spans never blocks,
/// the hung exports are counted, shutdown keeps its deadline, and delivery
/// resumes once the collector answers again.
#[test]
fn a_hung_collector_slows_nothing_and_delivery_resumes() {
    let _serial = serial();
    const QUEUE: usize = 1_000;
    let rotel = Rotel::start("hung");
    let config = otlp_config(
        rotel.grpc_endpoint(),
        "grpc",
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "500".to_owned()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    let stats = pipeline.span_stats();
    let load = Load::start(pipeline.tracer_provider());
    std::thread::sleep(Duration::from_secs(1));
    let before = stats.snapshot();

    // The heap is measured from here, with the queue near empty; the load
    // fills it within the first second of the hang.
    let baseline = heap::reset_peak();
    rotel.freeze();
    load.phase("hung");
    std::thread::sleep(Duration::from_secs(1));
    let memory = pour(&pipeline.tracer_provider(), &stats, baseline, 20 * QUEUE);
    std::thread::sleep(Duration::from_secs(2));
    let while_hung = stats.snapshot();
    rotel.thaw();
    load.phase("after");
    let resumed = rotel.wait_for("spans", ARRIVAL, |l| !named(l, "after-").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let ends = load.stop();
    let deadline = Duration::from_secs(3);
    let report = pipeline.shutdown(deadline);
    eprintln!(
        "hung collector: {ends}, before {before:?}, while hung {while_hung:?}, final {report}"
    );

    ends.check();
    memory.check(QUEUE);
    assert!(before.exported > 0, "delivery before the hang: {before:?}");
    assert!(
        while_hung.failed + while_hung.dropped > before.failed + before.dropped,
        "hung exports are counted as failed: {while_hung:?}"
    );
    assert!(
        report.spans.max_queued <= QUEUE,
        "queue grew to {}",
        report.spans.max_queued
    );
    assert!(
        !named(&resumed, "after-").is_empty(),
        "delivery resumed after the collector came back"
    );
    assert!(report.spans.exported > while_hung.exported, "{report}");
    assert!(
        report.elapsed < deadline + Duration::from_millis(500),
        "shutdown kept its deadline: {report}"
    );
    assert!(!report.delivered(), "the losses are reported: {report}");
}

/// A steady load of 2,000 spans a second on another thread, timing every
/// span end; the current phase goes into the span names.
struct Load {
    phase: Arc<std::sync::Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl Load {
    fn start(provider: SdkTracerProvider) -> Load {
        let phase = Arc::new(std::sync::Mutex::new("before"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (phase, stop) = (Arc::clone(&phase), Arc::clone(&stop));
            std::thread::spawn(move || {
                let tracer = provider.tracer("load");
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("{}-{}", *phase.lock().unwrap(), times.len());
                    let span = tracer.start(name);
                    let started = Instant::now();
                    drop(span);
                    times.push(started.elapsed());
                    std::thread::sleep(Duration::from_micros(500));
                }
                times
            })
        };
        Load {
            phase,
            stop,
            thread,
        }
    }

    fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap() = phase;
    }

    /// Stops the load; returns how long its span ends took.
    fn stop(self) -> Ends {
        self.stop.store(true, Ordering::Relaxed);
        let mut times = self.thread.join().unwrap();
        times.sort();
        Ends(times)
    }
}

/// The durations of the load's span ends, sorted.
struct Ends(Vec<Duration>);

impl Ends {
    fn slowest(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    /// No span end blocked on the export.
    fn check(&self) {
        let slowest = self.slowest();
        assert!(
            slowest < Duration::from_millis(50),
            "span end blocked for {slowest:?}"
        );
    }
}

impl std::fmt::Display for Ends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ended = self.0.len();
        let p99 = self.0.get(ended * 99 / 100).copied().unwrap_or_default();
        let over_10ms = self
            .0
            .iter()
            .filter(|t| **t > Duration::from_millis(10))
            .count();
        write!(
            f,
            "{ended} spans ended, slowest end {:?} (p99 {p99:?}, {over_10ms} over 10 ms)",
            self.slowest()
        )
    }
}

/// Heap bytes a queued span may cost, with room for the copy its export
/// makes (a generous bound: a span of this test is a few hundred bytes).
const SPAN_BUDGET: usize = 4096;

/// The live heap, measured from before the collector died, while spans far
/// beyond the queue bound are ended with the collector dead.
#[derive(Debug)]
struct Growth {
    /// Spans held (queued or being exported) once the queue had filled.
    held: usize,
    /// Heap growth then, and its peak so far.
    held_bytes: usize,
    filled: usize,
    /// Peak heap growth after `ended` more spans, of which `lost` were
    /// dropped or failed.
    poured: usize,
    ended: usize,
    lost: u64,
}

/// Measures the heap with the queue full, then ends `count` spans as fast
/// as possible and measures its peak again.
fn pour(
    provider: &SdkTracerProvider,
    stats: &baton_exporters::pipeline::PipelineStats,
    baseline: usize,
    count: usize,
) -> Growth {
    let full = stats.snapshot();
    let held_bytes = heap::live().saturating_sub(baseline);
    let filled = heap::peak().saturating_sub(baseline);
    let tracer = provider.tracer("pour");
    for i in 0..count {
        drop(tracer.start(format!("pour-{i}")));
    }
    let poured = heap::peak().saturating_sub(baseline);
    let after = stats.snapshot();
    Growth {
        held: full.queued,
        held_bytes,
        filled,
        poured,
        ended: count,
        lost: (after.dropped + after.failed) - (full.dropped + full.failed),
    }
}

impl Growth {
    /// The heap stayed within the queue's bound however many spans ended.
    fn check_bound(&self, queue: usize) {
        let bound = queue * SPAN_BUDGET;
        eprintln!("heap: {self:?}, bound {bound} B");
        assert!(self.poured <= bound, "{self:?}, bound {bound}");
    }

    /// With the queue full: the bound, the cost per queued span, and a heap
    /// that stays flat as spans beyond the queue are dropped.
    fn check(&self, queue: usize) {
        let bound = queue * SPAN_BUDGET;
        eprintln!(
            "heap with the collector hung: {} spans held, {} B over the baseline ({} B per held span), \
             peak {} B; after {} more spans ended ({} lost) peak {} B; bound {bound} B",
            self.held,
            self.held_bytes,
            self.held_bytes / self.held.max(1),
            self.filled,
            self.ended,
            self.lost,
            self.poured
        );
        assert!(self.held > queue / 2, "the queue filled: {self:?}");
        assert!(
            self.lost >= u64::try_from(self.ended - queue).unwrap(),
            "the spans beyond the queue are lost, and counted: {self:?}"
        );
        self.check_bound(queue);
        // Flat: 10x more spans than filled the queue do not grow the heap
        // beyond the full queue's peak (with room for noise from other
        // threads).
        assert!(
            self.poured <= self.filled + self.filled / 2 + 256 * 1024,
            "heap grows with spans ended: {self:?}"
        );
    }
}

/// `console` exporters need no collector: nothing is sent over OTLP even
/// with an endpoint that refuses connections.
#[test]
fn console_exporters_need_no_collector() {
    let _serial = serial();
    let port = rotel::pick_free_port();
    let config = otlp_config(
        format!("http://127.0.0.1:{port}"),
        "grpc",
        &[
            ("OTEL_TRACES_EXPORTER", "console".to_owned()),
            ("OTEL_METRICS_EXPORTER", "console".to_owned()),
            ("OTEL_LOGS_EXPORTER", "none".to_owned()),
        ],
    );
    let pipeline = Pipeline::new(&config).unwrap();
    three_spans(&pipeline.tracer_provider(), "console");
    let report = pipeline.shutdown(Duration::from_secs(5));
    assert!(report.delivered(), "{report}");
    assert_eq!(
        report.spans.exported + report.spans.failed,
        0,
        "no OTLP span export"
    );
}
