//! One-call setup.

use std::fmt;
use std::time::Duration;

use baton_exporters::Config;
use baton_exporters::config::ExporterKind;
use baton_exporters::pipeline::{Pipeline, PipelineError, PipelineStats, ShutdownReport};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, ParseError};
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::{Registry, fmt::format};

use crate::logs::{CorrelatedFormat, Format};

/// A layer of the application's, added to the installed subscriber.
type UserLayer = Box<dyn Layer<Registry> + Send + Sync>;

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
#[must_use = "nothing is set up until `install` is called"]
pub struct Init {
    config: Config,
    subscriber: bool,
    log_lines: bool,
    format: Format,
    baggage_keys: Vec<String>,
    max_level: LevelFilter,
    /// `RUST_LOG`-style directives.
    directives: Option<String>,
    layers: Vec<UserLayer>,
}

impl fmt::Debug for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Init")
            .field("config", &self.config)
            .field("subscriber", &self.subscriber)
            .field("log_lines", &self.log_lines)
            .field("format", &self.format)
            .field("baggage_keys", &self.baggage_keys)
            .field("max_level", &self.max_level)
            .field("directives", &self.directives)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl Init {
    /// The configuration the process environment describes, with console
    /// export where no collector is configured.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`
    /// (tests use this rather than changing the process environment).
    /// `RUST_LOG`, when set, gives the [log directives](Self::log_directives).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Config::from_vars(&var);
        let directives = var("RUST_LOG").filter(|v| !v.trim().is_empty());
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
        Self {
            directives,
            ..Self::with_config(config)
        }
    }

    /// Exactly `config`, with no console default applied.
    pub fn with_config(config: Config) -> Self {
        Init {
            config,
            subscriber: true,
            log_lines: true,
            format: Format::Human,
            baggage_keys: Vec::new(),
            max_level: LevelFilter::INFO,
            directives: None,
            layers: Vec::new(),
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
    /// (default `INFO`), where no [directive](Self::log_directives) says
    /// otherwise. It applies to the whole subscriber: below it, the debug
    /// spans of HTTP/2 and gRPC libraries would become spans in every trace.
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level;
        self
    }

    /// What is recorded, as `RUST_LOG` directives (`info,shop=debug,h2=warn`;
    /// see `tracing_subscriber::EnvFilter`), on top of
    /// [`max_level`](Self::max_level). [`from_env`](Self::from_env) takes
    /// them from `RUST_LOG`; this replaces them. Invalid directives make
    /// [`install`](Self::install) fail with [`InitError::Filter`].
    pub fn log_directives(mut self, directives: impl Into<String>) -> Self {
        self.directives = Some(directives.into());
        self
    }

    /// Adds `layer` to the installed subscriber (a layer of your own, a
    /// `tracing_subscriber::fmt` layer configured your way with
    /// [`CorrelatedFormat`], ...). The [directives](Self::log_directives)
    /// filter what it sees too.
    pub fn with_layer(mut self, layer: impl Layer<Registry> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Installs no log lines of Baton's (for an application that adds its
    /// own fmt layer with [`with_layer`](Self::with_layer)); spans are still
    /// bridged and logs still exported.
    pub fn without_log_lines(mut self) -> Self {
        self.log_lines = false;
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
        let filter = EnvFilter::builder()
            .with_default_directive(self.max_level.into())
            .parse(self.directives.as_deref().unwrap_or_default())
            .map_err(InitError::Filter)?;
        let pipeline = Pipeline::new(&self.config).map_err(InitError::Pipeline)?;
        let tracer_provider = pipeline.tracer_provider();
        crate::global::set_tracer_provider(tracer_provider.clone());
        crate::global::set_meter_provider(pipeline.meter_provider());
        if self.subscriber {
            let tracer = tracer_provider.tracer("baton");
            let lines = self.log_lines.then(|| {
                let keys = self.baggage_keys;
                // Colours for a person at a terminal, not for a collector's pipe.
                let layer = tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
                match self.format {
                    Format::Json => layer
                        .json()
                        .map_event_format(|f| CorrelatedFormat::new(f).baggage_keys(keys))
                        .boxed(),
                    Format::Human => layer
                        .event_format(CorrelatedFormat::new(format()).baggage_keys(keys))
                        .boxed(),
                }
            });
            let subscriber = tracing_subscriber::registry()
                // An empty `Vec` of layers would disable every callsite.
                .with((!self.layers.is_empty()).then_some(self.layers))
                .with(lines)
                .with(crate::logs::otel_layer(tracer))
                .with(
                    opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                        &pipeline.logger_provider(),
                    ),
                )
                .with(filter);
            tracing::subscriber::set_global_default(subscriber).map_err(InitError::Subscriber)?;
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
    Subscriber(tracing::subscriber::SetGlobalDefaultError),
    /// The [log directives](Init::log_directives) (`RUST_LOG`) are invalid.
    Filter(ParseError),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pipeline(_) => f.write_str("cannot set up export"),
            Self::Subscriber(_) => f.write_str("cannot install the tracing subscriber"),
            Self::Filter(_) => f.write_str("invalid log directives"),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pipeline(e) => Some(e),
            Self::Subscriber(e) => Some(e),
            Self::Filter(e) => Some(e),
        }
    }
}

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
