//! RED metrics instruments shared by the HTTP and gRPC middleware.
//!
//! Names, units and bucket boundaries follow the OpenTelemetry semantic
//! conventions as tracked by `opentelemetry-semantic-conventions` 0.33.1.
//! The SDK's default buckets are shaped for milliseconds; durations here are
//! seconds, so every histogram states the conventions' boundaries explicitly.

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};

/// The semantic conventions' advisory boundaries for request durations, in seconds.
pub const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The meter Baton's middleware records with, from the global meter provider.
pub(crate) fn meter() -> Meter {
    opentelemetry::global::meter_with_scope(
        InstrumentationScope::builder("baton")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

/// A request-duration histogram in seconds with [`DURATION_BOUNDARIES`].
pub(crate) fn duration(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BOUNDARIES.to_vec())
        .build()
}

/// An in-flight request counter.
pub(crate) fn active(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> UpDownCounter<i64> {
    meter
        .i64_up_down_counter(name)
        .with_unit("{request}")
        .with_description(description)
        .build()
}
