//! Baton's batch span and log processors with in-process exporters that
//! succeed, fail or hang: batching, losses counted, one warning, deadlines
//! kept.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_exporters::Config;
use baton_exporters::pipeline::{
    BatchExporter, BatchLogProcessor, BatchProcessor, BatchSpanProcessor, Item, PipelineStats,
};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Deliver,
    Fail,
    Hang,
}

#[derive(Debug)]
struct Fake {
    behaviour: Behaviour,
    /// Sizes of the batches exported successfully.
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Fake {
    async fn export(&self, len: usize) -> OTelSdkResult {
        match self.behaviour {
            Behaviour::Deliver => {
                self.batches.lock().unwrap().push(len);
                Ok(())
            }
            Behaviour::Fail => {
                // Refusing takes a round trip: a burst of spans outruns it
                // and overflows the queue, as the test of losses needs
                // (an instant refusal let the export thread keep up).
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(OTelSdkError::InternalFailure("collector said no".into()))
            }
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

impl SpanExporter for Fake {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        Fake::export(self, batch.len()).await
    }
}

impl LogExporter for Fake {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        Fake::export(self, batch.iter().count()).await
    }
}

fn bsp(vars: &[(&str, &str)]) -> baton_exporters::config::Batch {
    let config = Config::from_vars(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    });
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config.bsp
}

type Batches = Arc<Mutex<Vec<usize>>>;

/// A processor of `T`s exporting to a fake exporter that behaves so.
fn processor<T: Item>(
    behaviour: Behaviour,
    vars: &[(&str, &str)],
) -> (BatchProcessor<T>, PipelineStats, Batches)
where
    Fake: BatchExporter<T>,
{
    let batches = Arc::new(Mutex::new(Vec::new()));
    let exporter = Fake {
        behaviour,
        batches: Arc::clone(&batches),
    };
    let processor = BatchProcessor::new(exporter, &bsp(vars)).unwrap();
    let stats = processor.stats();
    (processor, stats, batches)
}

fn setup(
    behaviour: Behaviour,
    vars: &[(&str, &str)],
) -> (SdkTracerProvider, PipelineStats, Batches) {
    let (processor, stats, batches) = processor(behaviour, vars);
    let provider = SdkTracerProvider::builder()
        .with_span_processor::<BatchSpanProcessor>(processor)
        .build();
    (provider, stats, batches)
}

fn spans(provider: &SdkTracerProvider, count: usize) {
    let tracer = provider.tracer("batch-test");
    for i in 0..count {
        drop(tracer.start(format!("span-{i}")));
    }
}

fn eventually(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_full_batch_is_exported_at_once_and_the_rest_on_flush() {
    let (provider, stats, batches) = setup(
        Behaviour::Deliver,
        &[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ],
    );
    spans(&provider, 25);
    eventually("two full batches", || stats.snapshot().exported == 20);
    assert_eq!(*batches.lock().unwrap(), [10, 10]);
    provider.force_flush().unwrap();
    assert_eq!(stats.snapshot().exported, 25);
    assert_eq!(*batches.lock().unwrap(), [10, 10, 5]);
    provider.shutdown().unwrap();
}

#[test]
fn a_partial_batch_is_exported_after_the_schedule_delay() {
    let (provider, stats, _) = setup(Behaviour::Deliver, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    spans(&provider, 3);
    eventually("exported without a flush", || {
        stats.snapshot().exported == 3
    });
    provider.shutdown().unwrap();
}

const FULL_QUEUE: &[(&str, &str)] = &[
    ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
];

/// Records 10,000 items with `record` behind a 100-item queue whose
/// exporter hangs, then shuts down with `shutdown`: recording must not
/// wait, the overflow is counted as dropped, and shutdown keeps its deadline
/// and reports failure.
fn full_queue(
    record: impl FnOnce(usize),
    stats: &PipelineStats,
    shutdown: impl FnOnce(Duration) -> OTelSdkResult,
) {
    let started = Instant::now();
    record(10_000);
    // Generous: a blocking queue would take an hour.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let s = stats.snapshot();
    assert!(s.dropped >= 10_000 - 100 - 10, "{s:?}");
    assert!(s.max_queued <= 100, "{s:?}");

    let started = Instant::now();
    let result = shutdown(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let (provider, stats, _) = setup(Behaviour::Hang, FULL_QUEUE);
    full_queue(
        |n| spans(&provider, n),
        &stats,
        |timeout| provider.shutdown_with_timeout(timeout),
    );
}

/// Collects what `tracing` prints, from every thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn failures_are_counted_reported_and_warned_about_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // Global: the warning comes from the export thread too.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (provider, stats, _) = setup(
        Behaviour::Fail,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "50"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ],
    );
    for _ in 0..5 {
        spans(&provider, 200);
        assert!(
            provider.force_flush().is_err(),
            "a failed export is a failed flush"
        );
    }
    let s = stats.snapshot();
    assert!(s.failed > 0 && s.dropped > 0, "{s:?}");
    assert_eq!(s.exported, 0);
    assert!(provider.shutdown().is_err(), "losses make shutdown fail");

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The log tests in this binary warn about their own losses.
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("telemetry logs"))
        .count();
    assert_eq!(
        warnings, 1,
        "one rate-limited warning, not one per loss:\n{text}"
    );
}

#[test]
fn absurd_sizes_from_the_environment_do_not_panic_or_allocate_up_front() {
    let (provider, stats, batches) = setup(
        Behaviour::Deliver,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2147483647"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2147483647"),
        ],
    );
    spans(&provider, 3);
    provider.force_flush().unwrap();
    assert_eq!(stats.snapshot().exported, 3);
    assert_eq!(*batches.lock().unwrap(), [3]);
    provider.shutdown().unwrap();
}

fn setup_logs(
    behaviour: Behaviour,
    vars: &[(&str, &str)],
) -> (SdkLoggerProvider, PipelineStats, Batches) {
    let (processor, stats, batches) = processor(behaviour, vars);
    let provider = SdkLoggerProvider::builder()
        .with_log_processor::<BatchLogProcessor>(processor)
        .build();
    (provider, stats, batches)
}

fn log_records(provider: &SdkLoggerProvider, count: usize) {
    let logger = provider.logger("batch-test");
    for i in 0..count {
        let mut record = logger.create_log_record();
        record.set_body(format!("record-{i}").into());
        logger.emit(record);
    }
}

#[test]
fn log_records_are_batched_like_spans() {
    let (provider, stats, batches) = setup_logs(
        Behaviour::Deliver,
        &[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ],
    );
    log_records(&provider, 25);
    eventually("two full batches", || stats.snapshot().exported == 20);
    provider.force_flush().unwrap();
    assert_eq!(*batches.lock().unwrap(), [10, 10, 5]);
    provider.shutdown().unwrap();
    assert_eq!(stats.snapshot().exported, 25);
}

#[test]
fn a_full_log_queue_drops_and_counts_without_blocking() {
    let (provider, stats, _) = setup_logs(Behaviour::Hang, FULL_QUEUE);
    full_queue(
        |n| log_records(&provider, n),
        &stats,
        |timeout| provider.shutdown_with_timeout(timeout),
    );
}

#[test]
fn a_failing_log_exporter_is_counted_and_reported() {
    let (provider, stats, _) =
        setup_logs(Behaviour::Fail, &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")]);
    log_records(&provider, 25);
    assert!(provider.force_flush().is_err(), "a failed export");
    let s = stats.snapshot();
    assert_eq!((s.exported, s.dropped, s.failed), (0, 0, 25), "{s:?}");
    assert!(provider.shutdown().is_err(), "losses make shutdown fail");
}
