//! The export pipeline: OTLP (gRPC or HTTP/protobuf) or console exporters for
//! spans, metrics and logs, built from a [`Config`] in one call, that never
//! slow the application down and never lose telemetry without counting it.
//!
//! - Spans go through Baton's [`BatchSpanProcessor`] and log records through
//!   its [`BatchLogProcessor`], the same batching code for both: recording
//!   only tries to enqueue into a queue bounded in items (65,536 by default)
//!   and in estimated bytes (32 MiB), a dedicated thread with its own
//!   runtime exports batches, cut so that no request exceeds the receiver's
//!   limit (4 MiB), and every item ends up counted as exported, dropped
//!   (queue full, or oversized) or failed in [`PipelineStats`],
//!   published as `baton.exporter.spans.*` and `baton.exporter.logs.*`
//!   metrics and summed up in one warning per 30 s.
//! - Span string attribute values are cut to the configured length (4096
//!   characters by default; see [`SpanLimits`](crate::config::SpanLimits))
//!   before they are queued.
//! - Transient export failures (the OTLP specification's retryable gRPC
//!   codes and HTTP statuses) are retried with exponential backoff and
//!   jitter, honouring the server's retry delay, within the export timeout
//!   and the shutdown deadline; permanent ones are not retried.
//! - Spans over OTLP/gRPC are encoded by Baton ([`GrpcSpanExporter`]),
//!   straight from `SpanData` to protobuf: 3.5x fewer instructions per span
//!   than `opentelemetry-otlp`'s conversion through generated structs. Logs,
//!   metrics and OTLP/HTTP use `opentelemetry-otlp`.
//! - Metrics go through `opentelemetry_sdk`'s `PeriodicReader` (on its own
//!   thread), its OTLP exporter on a private runtime so that shutdown never
//!   needs the application's.
//! - [`Pipeline::shutdown`] flushes everything within a deadline and returns
//!   a [`ShutdownReport`] that says whether everything was delivered.
//!
//! Start-up never waits for the collector: connections are opened lazily by
//! the first export.

mod batch;
mod otlp;
mod runtime;
mod size;
mod stats;

pub use batch::{BatchExporter, BatchLogProcessor, BatchProcessor, BatchSpanProcessor};
pub use otlp::{
    GrpcSpanExporter, HTTP_RETRIES, OtlpSpanExporter, log_exporter, metric_exporter, span_exporter,
};
pub use size::Item;
pub use stats::{PipelineStats, StatsSnapshot};

use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

use tokio::runtime::Runtime;

use crate::config::{Config, ExporterKind};
use crate::{ConsoleMetricExporter, ConsoleSpanExporter};
use runtime::OwnRuntime;

/// Why a [`Pipeline`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// An OTLP exporter rejected its configuration.
    Exporter(ExporterBuildError),
    /// The operating system refused an export thread or runtime.
    Io(std::io::Error),
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exporter(error) => write!(f, "cannot build an OTLP exporter: {error}"),
            Self::Io(error) => write!(f, "cannot start an export thread: {error}"),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Exporter(error) => Some(error),
            Self::Io(error) => Some(error),
        }
    }
}

impl From<ExporterBuildError> for PipelineError {
    fn from(error: ExporterBuildError) -> Self {
        Self::Exporter(error)
    }
}

impl From<std::io::Error> for PipelineError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// The tracer, meter and logger providers of one configuration, and what is
/// needed to shut them down honestly.
///
/// ```no_run
/// use baton_exporters::Config;
/// use baton_exporters::pipeline::Pipeline;
/// use std::time::Duration;
///
/// let pipeline = Pipeline::new(&Config::from_env())?;
/// opentelemetry::global::set_tracer_provider(pipeline.tracer_provider());
/// // ... run the application ...
/// let report = pipeline.shutdown(Duration::from_secs(5));
/// if !report.delivered() {
///     eprintln!("telemetry lost: {report}");
/// }
/// # Ok::<(), baton_exporters::pipeline::PipelineError>(())
/// ```
#[derive(Debug)]
pub struct Pipeline {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    logger_provider: SdkLoggerProvider,
    spans: PipelineStats,
    metrics: PipelineStats,
    logs: PipelineStats,
    on: Signals,
}

impl Pipeline {
    /// Builds the providers `config` describes: for each signal, its
    /// exporters (`otlp`, `console`, or none), the sampler and the resource.
    /// Returns without contacting the collector. Logs have no console
    /// exporter; `console` for logs is ignored (Baton's `tracing` output
    /// already reaches the terminal).
    pub fn new(config: &Config) -> Result<Self, PipelineError> {
        let resource = opentelemetry_sdk::Resource::from(&config.resource);
        let spans = PipelineStats::new("spans");
        let metrics = PipelineStats::new("metrics");
        let logs = PipelineStats::new("logs");

        let mut tracer = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::from(&config.sampler))
            .with_resource(resource.clone());
        let mut span_stats = spans;
        for kind in &config.exporters.traces {
            tracer = match kind {
                ExporterKind::Otlp => {
                    let (runtime, exporter) =
                        built_on_runtime(|| span_exporter(&config.otlp.traces))?;
                    let exporter = exporter.retrying_for(config.bsp.export_timeout);
                    let processor = BatchSpanProcessor::on_runtime(runtime, exporter, &config.bsp)?
                        .with_span_limits(&config.span_limits);
                    span_stats = processor.stats();
                    tracer.with_span_processor(processor)
                }
                ExporterKind::Console => tracer.with_simple_exporter(ConsoleSpanExporter::new()),
            };
        }

        let mut meter = SdkMeterProvider::builder().with_resource(resource.clone());
        for kind in &config.exporters.metrics {
            meter = match kind {
                ExporterKind::Otlp => {
                    let (runtime, exporter) =
                        built_on_runtime(|| metric_exporter(&config.otlp.metrics))?;
                    let exporter = OwnRuntime::new(runtime, exporter, metrics.clone());
                    meter.with_reader(
                        PeriodicReader::builder(exporter)
                            .with_interval(config.metric_export.interval)
                            .build(),
                    )
                }
                ExporterKind::Console => meter.with_reader(
                    PeriodicReader::builder(ConsoleMetricExporter::new())
                        .with_interval(config.metric_export.interval)
                        .build(),
                ),
            };
        }
        let meter_provider = meter.build();

        let mut logger = SdkLoggerProvider::builder().with_resource(resource);
        let mut log_stats = logs;
        if config.exporters.logs.contains(&ExporterKind::Otlp) {
            let (runtime, exporter) = built_on_runtime(|| log_exporter(&config.otlp.logs))?;
            let processor = BatchLogProcessor::on_runtime(runtime, exporter, &config.blrp)?;
            log_stats = processor.stats();
            logger = logger.with_log_processor(processor);
        }
        let meter = meter_provider.meter("baton.exporter");
        span_stats.register(&meter);
        log_stats.register(&meter);

        Ok(Self {
            tracer_provider: tracer.build(),
            meter_provider,
            logger_provider: logger.build(),
            spans: span_stats,
            metrics,
            logs: log_stats,
            on: Signals {
                spans: !config.exporters.traces.is_empty(),
                logs: config.exporters.logs.contains(&ExporterKind::Otlp),
                metrics: !config.exporters.metrics.is_empty(),
            },
        })
    }

    /// The tracer provider (a cheap handle).
    pub fn tracer_provider(&self) -> SdkTracerProvider {
        self.tracer_provider.clone()
    }

    /// The meter provider (a cheap handle).
    pub fn meter_provider(&self) -> SdkMeterProvider {
        self.meter_provider.clone()
    }

    /// The logger provider (a cheap handle).
    pub fn logger_provider(&self) -> SdkLoggerProvider {
        self.logger_provider.clone()
    }

    /// Counters of the OTLP span pipeline.
    pub fn span_stats(&self) -> PipelineStats {
        self.spans.clone()
    }

    /// Flushes and shuts down spans, then logs, then metrics (last, so the
    /// final export carries the span counters), skipping the signals that
    /// have no exporter; returns at the latest when `deadline` has passed.
    ///
    /// Each signal gets its share of what is left: the first of three at most
    /// a third of `deadline`, the next half of what remains, the last all of
    /// it. So a collector that hangs on spans cannot take the time the log
    /// and metric flushes need, and time a signal does not use goes to the
    /// next.
    pub fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        let tracer = self.tracer_provider;
        let logger = self.logger_provider;
        let meter = self.meter_provider;
        let steps: Vec<(&'static str, Step)> = [
            (
                "spans",
                self.on.spans,
                Box::new(move |timeout| tracer.shutdown_with_timeout(timeout)) as Step,
            ),
            (
                "logs",
                self.on.logs,
                Box::new(move |timeout| logger.shutdown_with_timeout(timeout)),
            ),
            (
                "metrics",
                self.on.metrics,
                Box::new(move |timeout| meter.shutdown_with_timeout(timeout)),
            ),
        ]
        .into_iter()
        .filter(|(_, on, _)| *on)
        .map(|(signal, _, step)| (signal, step))
        .collect();
        let errors = run_steps(started, deadline, steps);
        ShutdownReport {
            spans: self.spans.snapshot(),
            logs: self.logs.snapshot(),
            metric_exports: self.metrics.snapshot(),
            errors,
            elapsed: started.elapsed(),
        }
    }
}

/// Which signals have an exporter, and so a shutdown step.
#[derive(Debug, Clone, Copy)]
struct Signals {
    spans: bool,
    logs: bool,
    metrics: bool,
}

/// Runs `steps` in order, each within its share of what is left of
/// `deadline` since `started` (see [`Pipeline::shutdown`]); returns the
/// errors, each prefixed by its signal.
fn run_steps(
    started: Instant,
    deadline: Duration,
    steps: Vec<(&'static str, Step)>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let count = steps.len();
    for (done, (signal, step)) in steps.into_iter().enumerate() {
        let left = deadline.saturating_sub(started.elapsed());
        let share = left / u32::try_from(count - done).unwrap_or(u32::MAX);
        if let Err(error) = within(share, step) {
            errors.push(format!("{signal}: {error}"));
        }
    }
    errors
}

/// A new export runtime and the exporter `build` makes in its context: gRPC
/// exporters spawn their channel there, and that runtime later drives them.
fn built_on_runtime<E>(
    build: impl FnOnce() -> Result<E, ExporterBuildError>,
) -> Result<(Runtime, E), PipelineError> {
    let runtime = batch::runtime()?;
    let exporter = {
        let _entered = runtime.enter();
        build()?
    };
    Ok((runtime, exporter))
}

/// One provider's shutdown, given the time it may take.
type Step = Box<dyn FnOnce(Duration) -> OTelSdkResult + Send>;

/// Runs `step` on a helper thread and waits at most `timeout` for it: some
/// upstream shutdowns ignore their timeout, and the deadline must hold.
fn within(timeout: Duration, step: Step) -> Result<(), String> {
    let (done, result) = mpsc::channel();
    std::thread::Builder::new()
        .name("baton-shutdown".to_owned())
        .spawn(move || {
            // The receiver is gone only if the deadline passed already.
            let _sent = done.send(step(timeout));
        })
        .map_err(|error| format!("cannot start a shutdown thread: {error}"))?;
    match result.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("not done within the {timeout:?} deadline")),
    }
}

/// What [`Pipeline::shutdown`] achieved. The default is the report of a
/// pipeline that never existed: nothing sent, nothing lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Span counters at the end.
    pub spans: StatsSnapshot,
    /// Log record counters at the end.
    pub logs: StatsSnapshot,
    /// Metric exports (each carrying all metric streams) at the end.
    pub metric_exports: StatsSnapshot,
    /// Every shutdown step that failed or missed the deadline.
    pub errors: Vec<String>,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Whether everything was delivered: no step failed, and nothing was
    /// dropped or failed during the pipeline's life.
    pub fn delivered(&self) -> bool {
        self.errors.is_empty()
            && self.spans.lost_nothing()
            && self.logs.lost_nothing()
            && self.metric_exports.lost_nothing()
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = |s: &StatsSnapshot| {
            format!(
                "{} exported, {} dropped, {} failed",
                s.exported, s.dropped, s.failed
            )
        };
        write!(
            f,
            "spans: {}; logs: {}; metric exports: {}; took {:?}",
            counts(&self.spans),
            counts(&self.logs),
            counts(&self.metric_exports),
            self.elapsed
        )?;
        for error in &self.errors {
            write!(f, "; {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    /// What a fake shutdown step does with the time it is given.
    #[derive(Clone, Copy)]
    enum Does {
        Succeed,
        Fail,
        /// Ignores its timeout, as some upstream shutdowns do.
        Hang,
    }

    #[test]
    fn each_signal_gets_its_share_and_absent_signals_report_nothing() {
        let ms = Duration::from_millis;
        // (steps, deadline, signals expected in the errors, the least time
        // each step must have been given)
        type Row = (
            &'static [(&'static str, Does)],
            u64,
            &'static [&'static str],
            &'static [u64],
        );
        let rows: [Row; 6] = [
            // A hung span flush leaves the logs and metrics their shares.
            (
                &[
                    ("spans", Does::Hang),
                    ("logs", Does::Succeed),
                    ("metrics", Does::Succeed),
                ],
                600,
                &["spans"],
                &[190, 190, 190],
            ),
            // Time a quick step does not use goes to the next ones.
            (
                &[("spans", Does::Succeed), ("metrics", Does::Hang)],
                400,
                &["metrics"],
                &[190, 350],
            ),
            (&[("spans", Does::Succeed)], 300, &[], &[290]),
            (
                &[("logs", Does::Fail), ("metrics", Does::Succeed)],
                300,
                &["logs"],
                &[140, 140],
            ),
            // Signals that are off have no step, so nothing to report even
            // with no time at all.
            (&[], 0, &[], &[]),
            // With no time, the step is not waited for (it may not even have
            // started), and reported.
            (&[("spans", Does::Hang)], 0, &["spans"], &[]),
        ];
        for (steps, deadline, failed, least) in rows {
            let given = Arc::new(Mutex::new(Vec::new()));
            let planned: Vec<(&'static str, Step)> = steps
                .iter()
                .map(|&(signal, does)| {
                    let given = Arc::clone(&given);
                    let step: Step = Box::new(move |timeout: Duration| {
                        given
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(timeout);
                        match does {
                            Does::Succeed => Ok(()),
                            Does::Fail => Err(OTelSdkError::InternalFailure("refused".to_owned())),
                            Does::Hang => {
                                std::thread::sleep(timeout + ms(300));
                                Ok(())
                            }
                        }
                    });
                    (signal, step)
                })
                .collect();
            let started = Instant::now();
            let errors = run_steps(started, ms(deadline), planned);
            let elapsed = started.elapsed();
            let signals: Vec<&str> = errors
                .iter()
                .map(|e| e.split(':').next().unwrap_or_default())
                .collect();
            assert_eq!(
                signals,
                failed,
                "{steps:?}: {errors:?}",
                steps = steps.iter().map(|s| s.0).collect::<Vec<_>>()
            );
            let given = given
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if deadline > 0 {
                assert_eq!(given.len(), least.len(), "every step ran once");
            }
            for (timeout, least) in given.iter().zip(least) {
                assert!(*timeout >= ms(*least), "{given:?} for {least} ms");
            }
            assert!(
                elapsed < ms(deadline) + ms(150),
                "the deadline held: {elapsed:?}"
            );
        }
    }
}
