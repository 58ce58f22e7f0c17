//! Baton's batch span processor with in-process exporters that succeed,
//! fail or hang: batching, losses counted, one warning, deadlines kept.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_exporters::Config;
use baton_exporters::pipeline::BatchSpanProcessor;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
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

impl SpanExporter for Fake {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self.behaviour {
            Behaviour::Deliver => {
                self.batches.lock().unwrap().push(batch.len());
                Ok(())
            }
            Behaviour::Fail => Err(OTelSdkError::InternalFailure("collector said no".into())),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

fn bsp(vars: &[(&str, &str)]) -> baton_exporters::config::Bsp {
    let config = Config::from_vars(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    });
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config.bsp
}

fn setup(
    behaviour: Behaviour,
    vars: &[(&str, &str)],
) -> (
    SdkTracerProvider,
    baton_exporters::pipeline::PipelineStats,
    Arc<Mutex<Vec<usize>>>,
) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let exporter = Fake {
        behaviour,
        batches: Arc::clone(&batches),
    };
    let processor = BatchSpanProcessor::new(exporter, &bsp(vars)).unwrap();
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
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

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let (provider, stats, _) = setup(
        Behaviour::Hang,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ],
    );
    let started = Instant::now();
    spans(&provider, 10_000);
    // Generous: ending 10,000 spans against a hung exporter must not wait
    // for it (a blocking queue would take an hour).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let s = stats.snapshot();
    assert!(s.dropped >= 10_000 - 100 - 10, "{s:?}");
    assert!(s.max_queued <= 100, "{s:?}");

    // A hung collector: shutdown keeps its deadline and reports failure.
    let started = Instant::now();
    let result = provider.shutdown_with_timeout(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(result.is_err(), "{result:?}");
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
    let warnings = text.lines().filter(|l| l.contains("WARN")).count();
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
