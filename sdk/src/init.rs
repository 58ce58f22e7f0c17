//! One-call setup.

use std::fmt;
use std::time::Duration;

use baton_exporters::Config;
use baton_exporters::config::ExporterKind;
use baton_exporters::pipeline::{Pipeline, PipelineError, PipelineStats, ShutdownReport};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::logs::{CorrelationLayer, Format};

/// One-call setup: [`init`] configures tracing, metrics, logs and
/// propagation from the standard `OTEL_*` environment variables.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() {
///     let telemetry = baton::init().expect("telemetry");
///     // ... serve requests with Baton's middleware ...
///     let report = telemetry.shutdown(std::time::Duration::from_secs(5));
///     if !report.delivered() {
///         eprintln!("telemetry lost: {report:?}");
///     }
/// }
/// ```
///
/// With no collector endpoint in the environment (`OTEL_EXPORTER_OTLP_*ENDPOINT`)
/// and no exporter chosen (`OTEL_{TRACES,METRICS}_EXPORTER`), traces and
/// metrics go to the console exporters: each finished trace drawn as a tree,
/// and a periodic RED table. Export never blocks a request: see
/// `baton_exporters::pipeline` for the bounded queue and the drop counters.
///
/// See [`Init`] to adjust it.
pub fn init() -> Result<Telemetry, InitError> {
    Init::from_env().install()
}

/// The one-call setup, adjustable before [`install`](Init::install).
#[derive(Debug)]
#[must_use = "nothing is set up until `install` is called"]
pub struct Init {
    config: Config,
    subscriber: bool,
    format: Format,
    baggage_keys: Vec<String>,
    max_level: LevelFilter,
}

impl Init {
    /// The configuration the process environment describes, with console
    /// export where no collector is configured.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`
    /// (tests use this rather than changing the process environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Config::from_vars(&var);
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let endpoint = |signal: &str| {
            set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))
        };
        // The console is the embedded default: a developer sees traces with
        // no collector running, and an explicit choice always wins.
        if !set("OTEL_TRACES_EXPORTER") && !endpoint("TRACES") {
            config.exporters.traces = vec![ExporterKind::Console];
        }
        if !set("OTEL_METRICS_EXPORTER") && !endpoint("METRICS") {
            config.exporters.metrics = vec![ExporterKind::Console];
        }
        if !set("OTEL_LOGS_EXPORTER") && !endpoint("LOGS") {
            config.exporters.logs = Vec::new();
        }
        Self::with_config(config)
    }

    /// Exactly `config`, with no console default applied.
    pub fn with_config(config: Config) -> Self {
        Init {
            config,
            subscriber: true,
            format: Format::Human,
            baggage_keys: Vec::new(),
            max_level: LevelFilter::INFO,
        }
    }

    /// The service name to use when `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` name none (instead of `unknown_service`).
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        let named = self.config.resource.service_name.is_some()
            || self
                .config
                .resource
                .attributes
                .iter()
                .any(|(k, _)| k == "service.name");
        if !named {
            self.config.resource.service_name = Some(name.into());
        }
        self
    }

    /// The most verbose `tracing` level recorded, as log lines and as spans
    /// (default `INFO`). It applies to the whole subscriber: below it, the
    /// debug spans of HTTP/2 and gRPC libraries would become spans in every
    /// trace.
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level;
        self
    }

    /// Does not install a global `tracing` subscriber (for applications
    /// that build their own from [`crate::logs`]).
    pub fn without_subscriber(mut self) -> Self {
        self.subscriber = false;
        self
    }

    /// The format of the log lines the installed subscriber writes.
    pub fn log_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Baggage keys the log lines include.
    pub fn baggage_keys<I>(mut self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.baggage_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The configuration that will be installed; printing it redacts headers.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Installs the propagators, the global tracer, meter and logger
    /// providers, and (unless turned off) a `tracing` subscriber with
    /// correlated log lines, `tracing` span bridging and log export.
    /// Never waits for a collector. With `OTEL_SDK_DISABLED=true` only the
    /// propagators are installed: context still flows, nothing is recorded.
    pub fn install(self) -> Result<Telemetry, InitError> {
        // Propagation is not an SDK signal: it stays on even when disabled.
        crate::global::set_text_map_propagator(self.config.propagator());
        if self.config.sdk_disabled {
            return Ok(Telemetry {
                pipeline: None,
                config: self.config,
            });
        }
        let pipeline = Pipeline::new(&self.config).map_err(InitError::Pipeline)?;
        let tracer_provider = pipeline.tracer_provider();
        crate::global::set_tracer_provider(tracer_provider.clone());
        crate::global::set_meter_provider(pipeline.meter_provider());
        if self.subscriber {
            let tracer = tracer_provider.tracer("baton");
            let subscriber = tracing_subscriber::registry()
                .with(
                    CorrelationLayer::new()
                        .format(self.format)
                        .baggage_keys(self.baggage_keys),
                )
                .with(crate::logs::otel_layer(tracer))
                .with(
                    opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                        &pipeline.logger_provider(),
                    ),
                )
                .with(self.max_level);
            tracing::subscriber::set_global_default(subscriber)
                .map_err(|_| InitError::SubscriberAlreadySet)?;
            // Libraries that log through `log` reach the same subscriber;
            // another logger already installed is not an error.
            let _ = tracing_log::LogTracer::init();
        }
        Ok(Telemetry {
            pipeline: Some(pipeline),
            config: self.config,
        })
    }
}

/// Why [`Init::install`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InitError {
    /// An exporter or its export thread could not be built.
    Pipeline(PipelineError),
    /// A global `tracing` subscriber was already installed; use
    /// [`Init::without_subscriber`] and add Baton's layers to yours.
    SubscriberAlreadySet,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pipeline(e) => write!(f, "cannot set up export: {e}"),
            Self::SubscriberAlreadySet => f.write_str("a global tracing subscriber is already set"),
        }
    }
}

impl std::error::Error for InitError {}

/// What [`init`] set up. Dropping it flushes and shuts down with a 5 s
/// deadline; call [`shutdown`](Self::shutdown) to choose the deadline and
/// see whether everything was delivered.
#[derive(Debug)]
#[must_use = "dropping it shuts telemetry down"]
pub struct Telemetry {
    pipeline: Option<Pipeline>,
    config: Config,
}

impl Telemetry {
    /// The configuration in effect (its `Display` redacts header values).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tracer provider installed, to hand to code that wants one
    /// (Baton's middleware finds it by itself); `None` when the SDK is
    /// disabled.
    #[must_use]
    pub fn tracer_provider(&self) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
        self.pipeline.as_ref().map(Pipeline::tracer_provider)
    }

    /// The meter provider installed; `None` when the SDK is disabled.
    #[must_use]
    pub fn meter_provider(&self) -> Option<opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.pipeline.as_ref().map(Pipeline::meter_provider)
    }

    /// Span export counters (exported, dropped, failed, queued); `None`
    /// when the SDK is disabled.
    pub fn span_stats(&self) -> Option<PipelineStats> {
        self.pipeline.as_ref().map(Pipeline::span_stats)
    }

    /// Flushes what is queued and shuts down within `deadline`, reporting
    /// honestly what was delivered.
    pub fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        match self.pipeline.take() {
            Some(pipeline) => pipeline.shutdown(deadline),
            None => ShutdownReport::default(),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(pipeline) = self.pipeline.take() {
            let report = pipeline.shutdown(Duration::from_secs(5));
            if !report.delivered() {
                tracing::warn!("telemetry shutdown did not deliver everything: {report:?}");
            }
        }
    }
}
