//! `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`, `OTEL_LOGS_EXPORTER`.

use std::fmt;

use super::env::Env;
use super::signal::{ALL, SignalVars};

/// An exporter a signal can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// `otlp`, the default.
    Otlp,
    /// `console`: human-readable lines on standard output.
    Console,
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Otlp => "otlp",
            Self::Console => "console",
        })
    }
}

/// The exporters of each signal, in the order listed; empty means `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exporters {
    /// `OTEL_TRACES_EXPORTER`.
    pub traces: Vec<ExporterKind>,
    /// `OTEL_METRICS_EXPORTER`.
    pub metrics: Vec<ExporterKind>,
    /// `OTEL_LOGS_EXPORTER`.
    pub logs: Vec<ExporterKind>,
}

impl Default for Exporters {
    fn default() -> Self {
        Self {
            traces: vec![ExporterKind::Otlp],
            metrics: vec![ExporterKind::Otlp],
            logs: vec![ExporterKind::Otlp],
        }
    }
}

impl Exporters {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let [traces, metrics, logs] = ALL.map(|vars| list(env, &vars));
        Self {
            traces,
            metrics,
            logs,
        }
    }
}

/// A comma-separated list (the specification allows several exporters),
/// case-insensitive, duplicates once. Unknown names are warned about and
/// skipped; if nothing usable is left the setting is ignored, so the default
/// applies. `none` wins over anything listed with it, as for propagators.
fn list(env: &mut Env<'_>, vars: &SignalVars) -> Vec<ExporterKind> {
    let Some(raw) = env.get(vars.exporter) else {
        return vec![ExporterKind::Otlp];
    };
    let mut kinds = Vec::new();
    let mut none = false;
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name.to_ascii_lowercase().as_str() {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "none" => {
                none = true;
                continue;
            }
            _ => {
                env.warn(
                    vars.exporter,
                    &raw,
                    format!("unsupported exporter {name:?} ignored"),
                );
                continue;
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if none {
        if !kinds.is_empty() {
            env.warn(
                vars.exporter,
                &raw,
                "exporters listed with \"none\" ignored",
            );
        }
        return Vec::new();
    }
    if kinds.is_empty() {
        return vec![ExporterKind::Otlp];
    }
    kinds
}

/// `otlp,console`, or `none`.
pub(crate) struct ListDisplay<'a>(pub(crate) &'a [ExporterKind]);

impl fmt::Display for ListDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, kind) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{kind}")?;
        }
        Ok(())
    }
}
