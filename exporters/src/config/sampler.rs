//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.

use std::fmt;

use super::env::Env;

const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// The probability a ratio sampler uses when `OTEL_TRACES_SAMPLER_ARG` is
/// unset or invalid.
const DEFAULT_RATIO: f64 = 1.0;

/// The head sampler, one of the specification's built-in samplers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Sampler {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`, with a probability in [0, 1].
    TraceIdRatio(f64),
    /// `parentbased_always_on`, the default.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`, with a probability in [0, 1].
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let Some(raw) = env.get(SAMPLER) else {
            ignore_arg(env, "OTEL_TRACES_SAMPLER is not set");
            return Self::default();
        };
        let sampler = match raw.to_ascii_lowercase().as_str() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio(env)),
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio(env)),
            // Named by the specification, but they need a remote service.
            "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
                env.warn(SAMPLER, &raw, "sampler not supported; ignored");
                return Self::default();
            }
            _ => {
                env.warn(SAMPLER, &raw, "unknown sampler; ignored");
                return Self::default();
            }
        };
        if !matches!(
            sampler,
            Self::TraceIdRatio(_) | Self::ParentBasedTraceIdRatio(_)
        ) {
            ignore_arg(env, &format!("{raw} takes no argument"));
        }
        sampler
    }
}

/// The argument is only meaningful to ratio samplers; saying so when it is
/// set otherwise catches a forgotten or misspelt `OTEL_TRACES_SAMPLER`.
fn ignore_arg(env: &mut Env<'_>, why: &str) {
    if let Some(raw) = env.get(SAMPLER_ARG) {
        env.warn(SAMPLER_ARG, &raw, format!("ignored: {why}"));
    }
}

fn ratio(env: &mut Env<'_>) -> f64 {
    env.parsed(SAMPLER_ARG, |raw| {
        raw.parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| "not a probability between 0 and 1".to_owned())
    })
    .unwrap_or(DEFAULT_RATIO)
}

impl From<&Sampler> for opentelemetry_sdk::trace::Sampler {
    fn from(sampler: &Sampler) -> Self {
        use opentelemetry_sdk::trace::Sampler as Sdk;
        match *sampler {
            Sampler::AlwaysOn => Sdk::AlwaysOn,
            Sampler::AlwaysOff => Sdk::AlwaysOff,
            Sampler::TraceIdRatio(p) => Sdk::TraceIdRatioBased(p),
            Sampler::ParentBasedAlwaysOn => Sdk::ParentBased(Box::new(Sdk::AlwaysOn)),
            Sampler::ParentBasedAlwaysOff => Sdk::ParentBased(Box::new(Sdk::AlwaysOff)),
            Sampler::ParentBasedTraceIdRatio(p) => {
                Sdk::ParentBased(Box::new(Sdk::TraceIdRatioBased(p)))
            }
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlwaysOn => f.write_str("always_on"),
            Self::AlwaysOff => f.write_str("always_off"),
            Self::TraceIdRatio(p) => write!(f, "traceidratio({p})"),
            Self::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Self::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Self::ParentBasedTraceIdRatio(p) => write!(f, "parentbased_traceidratio({p})"),
        }
    }
}
