//! The SDK configuration the standard `OTEL_*` environment variables
//! describe, parsed as the OpenTelemetry specification says: empty means
//! unset, enums are case-insensitive, a malformed value is warned about and
//! ignored (the default applies), and nothing panics.

mod batch;
mod env;
mod exporters;
mod keyvalue;
mod limits;
mod otlp;
mod resource;
mod sampler;
mod signal;
mod warning;

use std::env::VarError;
use std::fmt;

pub use batch::{Batch, MetricExport};
pub use exporters::{ExporterKind, Exporters};
pub use limits::SpanLimits;
pub use otlp::{Compression, Headers, Otlp, OtlpSignal, Protocol};
pub use resource::Resource;
pub use sampler::Sampler;
pub use warning::ConfigWarning;

use baton_propagators::{CompositePropagator, env::OTEL_PROPAGATORS};
use env::Env;

/// The effective configuration: every setting with its default or fallback
/// applied, plus the warnings about values that were not used as given.
///
/// `Display` prints it for humans, one setting per line, header values
/// replaced by `***`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `OTEL_SDK_DISABLED`: when true, set up no-op providers.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Resource,
    /// `OTEL_PROPAGATORS` as given (`tracecontext,baggage` when unset);
    /// [`propagator`](Self::propagator) builds it.
    pub propagators: String,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: Sampler,
    /// `OTEL_{TRACES,METRICS,LOGS}_EXPORTER`.
    pub exporters: Exporters,
    /// `OTEL_EXPORTER_OTLP_*`, resolved per signal.
    pub otlp: Otlp,
    /// `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` and
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`.
    pub span_limits: SpanLimits,
    /// `OTEL_BSP_*`, and Baton's `BATON_BSP_*`.
    pub bsp: Batch,
    /// `OTEL_BLRP_*`, and Baton's `BATON_BLRP_*`.
    pub blrp: Batch,
    /// `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_METRIC_EXPORT_TIMEOUT`.
    pub metric_export: MetricExport,
    /// One warning per value that was malformed or unsupported, in the order
    /// read; each was also logged with `tracing::warn!`.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Every variable read, for documentation and tests.
    pub const VARIABLES: &[&str] = &[
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "BATON_BSP_MAX_QUEUE_BYTES",
        "BATON_BSP_MAX_REQUEST_BYTES",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "BATON_BLRP_MAX_QUEUE_BYTES",
        "BATON_BLRP_MAX_REQUEST_BYTES",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
    ];

    /// The configuration of the process environment. A value that is not
    /// valid Unicode is warned about and treated as unset.
    pub fn from_env() -> Self {
        Self::load(&|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(raw)) => Err(raw),
        })
    }

    /// The configuration `vars` describes: it is asked for each variable by
    /// name and returns its value, or `None` when unset. Tests and embedders
    /// use it instead of mutating the process environment.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use baton_exporters::config::{Config, Sampler};
    ///
    /// let vars = HashMap::from([("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]);
    /// let config = Config::from_vars(|name| vars.get(name).map(|v| v.to_string()));
    /// assert_eq!(config.sampler, Sampler::TraceIdRatio(0.25));
    /// ```
    pub fn from_vars(vars: impl Fn(&str) -> Option<String>) -> Self {
        Self::load(&|name| Ok(vars(name)))
    }

    fn load(source: env::Source<'_>) -> Self {
        let mut env = Env::new(source);
        let sdk_disabled = env.flag("OTEL_SDK_DISABLED");
        let resource = Resource::read(&mut env);
        let propagators = propagators(&mut env);
        let sampler = Sampler::read(&mut env);
        let exporters = Exporters::read(&mut env);
        let otlp = Otlp::read(&mut env);
        let span_limits = SpanLimits::read(&mut env);
        let bsp = Batch::read(&mut env, &batch::SPANS);
        let blrp = Batch::read(&mut env, &batch::LOGS);
        let metric_export = MetricExport::read(&mut env);
        Self {
            sdk_disabled,
            resource,
            propagators,
            sampler,
            exporters,
            otlp,
            span_limits,
            bsp,
            blrp,
            metric_export,
            warnings: env.into_warnings(),
        }
    }

    /// The propagators [`propagators`](Self::propagators) lists, built by
    /// `baton_propagators::env::parse` (unknown names were already warned
    /// about when the configuration was read).
    pub fn propagator(&self) -> CompositePropagator {
        baton_propagators::env::parse(&self.propagators).0
    }
}

impl Default for Config {
    /// The configuration of an empty environment: the specification's
    /// defaults.
    fn default() -> Self {
        Self::from_vars(|_| None)
    }
}

/// Parsed here only to collect its warnings; `Config::propagator` builds the
/// propagator from the same string with the same function.
fn propagators(env: &mut Env<'_>) -> String {
    let Some(raw) = env.get(OTEL_PROPAGATORS) else {
        return baton_propagators::env::DEFAULT.to_owned();
    };
    for ignored in baton_propagators::env::parse(&raw).1 {
        env.warn(OTEL_PROPAGATORS, &raw, ignored.to_string());
    }
    raw
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sdk_disabled: {}", self.sdk_disabled)?;
        writeln!(f, "resource: {}", self.resource)?;
        writeln!(f, "propagators: {}", self.propagators)?;
        writeln!(f, "sampler: {}", self.sampler)?;
        let signals = [
            (&self.exporters.traces, &self.otlp.traces),
            (&self.exporters.metrics, &self.otlp.metrics),
            (&self.exporters.logs, &self.otlp.logs),
        ];
        for (vars, (exporters, otlp)) in signal::ALL.iter().zip(signals) {
            writeln!(
                f,
                "{}: exporters={} {otlp}",
                vars.name,
                exporters::ListDisplay(exporters)
            )?;
        }
        writeln!(f, "span_limits: {}", self.span_limits)?;
        writeln!(f, "bsp: {}", self.bsp)?;
        writeln!(f, "blrp: {}", self.blrp)?;
        write!(f, "metric_export: {}", self.metric_export)?;
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}
