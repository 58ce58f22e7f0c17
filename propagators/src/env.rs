//! Choosing propagators from `OTEL_PROPAGATORS`, as the OpenTelemetry SDK
//! environment-variable specification defines it.

use std::fmt;

use crate::{
    B3Encoding, B3Propagator, BaggagePropagator, CompositePropagator, JaegerPropagator,
    TraceContextPropagator,
};

/// The variable's name.
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// The specification's default: W3C Trace Context, then W3C Baggage.
pub const DEFAULT: &str = "tracecontext,baggage";

/// A name in `OTEL_PROPAGATORS` that was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredPropagator {
    /// Not a propagator name the specification defines.
    Unknown(String),
    /// Defined by the specification (`xray`, `ottrace`) but not provided by Baton.
    Unsupported(&'static str),
    /// Listed together with `none`, which wins.
    OverriddenByNone(String),
}

impl fmt::Display for IgnoredPropagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(f, "unknown propagator {name:?} ignored"),
            Self::Unsupported(name) => write!(f, "propagator {name:?} is not supported, ignored"),
            Self::OverriddenByNone(name) => {
                write!(
                    f,
                    "propagator {name:?} ignored because \"none\" is also listed"
                )
            }
        }
    }
}

impl std::error::Error for IgnoredPropagator {}

/// Builds the propagators `value` lists (comma-separated, case-insensitive,
/// whitespace ignored, duplicates once), in order, and says which names were
/// ignored. An empty value means the default, as for an unset variable.
///
/// ```
/// use baton_propagators::env::{parse, IgnoredPropagator};
/// use opentelemetry::propagation::TextMapPropagator;
///
/// let (propagator, ignored) = parse("tracecontext, baggage, b3multi, zipkin");
/// assert!(propagator.fields().any(|f| f == "x-b3-traceid"));
/// assert_eq!(ignored, vec![IgnoredPropagator::Unknown("zipkin".into())]);
/// ```
pub fn parse(value: &str) -> (CompositePropagator, Vec<IgnoredPropagator>) {
    let value = if value.trim().is_empty() {
        DEFAULT
    } else {
        value
    };
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(|n| n.trim().to_ascii_lowercase()) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut ignored = Vec::new();
    if names.iter().any(|n| n == "none") {
        ignored.extend(
            names
                .into_iter()
                .filter(|n| n != "none")
                .map(IgnoredPropagator::OverriddenByNone),
        );
        return (CompositePropagator::default(), ignored);
    }
    let mut composite = CompositePropagator::default();
    for name in names {
        composite = match name.as_str() {
            "tracecontext" => composite.push(TraceContextPropagator::new()),
            "baggage" => composite.push(BaggagePropagator::new()),
            "b3" => composite.push(B3Propagator::with_encoding(B3Encoding::Single)),
            "b3multi" => composite.push(B3Propagator::with_encoding(B3Encoding::Multi)),
            "jaeger" => composite.push(JaegerPropagator::new()),
            "xray" => {
                ignored.push(IgnoredPropagator::Unsupported("xray"));
                composite
            }
            "ottrace" => {
                ignored.push(IgnoredPropagator::Unsupported("ottrace"));
                composite
            }
            _ => {
                ignored.push(IgnoredPropagator::Unknown(name));
                composite
            }
        };
    }
    (composite, ignored)
}

/// The propagators `OTEL_PROPAGATORS` selects (the default when it is unset
/// or not valid Unicode), logging a warning for each ignored name.
pub fn from_env() -> CompositePropagator {
    let value = std::env::var(OTEL_PROPAGATORS).unwrap_or_default();
    let (propagator, ignored) = parse(&value);
    for i in ignored {
        tracing::warn!("{OTEL_PROPAGATORS}: {i}");
    }
    propagator
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;

    fn fields(value: &str) -> Vec<String> {
        parse(value).0.fields().map(str::to_owned).collect()
    }

    #[test]
    fn table() {
        // (value, fields, ignored, why)
        let rows: [(&str, &[&str], Vec<IgnoredPropagator>, &str); 7] = [
            (
                "",
                &["traceparent", "tracestate", "baggage"],
                vec![],
                "empty means the default",
            ),
            (
                "tracecontext,baggage",
                &["traceparent", "tracestate", "baggage"],
                vec![],
                "the default",
            ),
            (
                " Jaeger , b3 ",
                &["uber-trace-id", "b3"],
                vec![],
                "trimmed, case-insensitive, in order",
            ),
            ("b3,b3", &["b3"], vec![], "duplicates once"),
            ("none", &[], vec![], "none: no propagation"),
            (
                "none,b3",
                &[],
                vec![IgnoredPropagator::OverriddenByNone("b3".into())],
                "none wins",
            ),
            (
                "xray,foo,baggage",
                &["baggage"],
                vec![
                    IgnoredPropagator::Unsupported("xray"),
                    IgnoredPropagator::Unknown("foo".into()),
                ],
                "unknown and unsupported names are ignored, the rest kept",
            ),
        ];
        for (value, want_fields, want_ignored, why) in rows {
            assert_eq!(fields(value), want_fields, "{why}");
            assert_eq!(parse(value).1, want_ignored, "{why}");
        }
    }

    #[test]
    fn b3multi_uses_the_multi_headers() {
        assert!(fields("b3multi").contains(&"x-b3-traceid".to_owned()));
    }
}
