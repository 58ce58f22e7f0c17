//! The instrumentation scope, tracers and RED metrics instruments shared by
//! the HTTP and gRPC middleware.
//!
//! Names, units and bucket boundaries follow the OpenTelemetry semantic
//! conventions as tracked by `opentelemetry-semantic-conventions` 0.33.1.
//! The SDK's default buckets are shaped for milliseconds; durations here are
//! seconds, so every histogram states the conventions' boundaries explicitly.

/// The semantic conventions' advisory boundaries for request durations, in seconds.
pub const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

// Only the middleware builds instruments and tracers.
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) use instruments::*;

#[cfg(any(feature = "http", feature = "grpc"))]
mod instruments {
    use opentelemetry::InstrumentationScope;
    use opentelemetry::global::BoxedTracer;
    use opentelemetry::metrics::{Histogram, Meter, MeterProvider, UpDownCounter};
    use opentelemetry::trace::{Tracer, TracerProvider};

    use super::DURATION_BOUNDARIES;

    /// The instrumentation scope of every span and metric Baton's middleware makes.
    fn scope() -> InstrumentationScope {
        InstrumentationScope::builder("baton")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(opentelemetry_semantic_conventions::SCHEMA_URL)
            .build()
    }

    /// Baton's meter from the global meter provider.
    pub(crate) fn meter() -> Meter {
        opentelemetry::global::meter_with_scope(scope())
    }

    /// Baton's meter from `provider`.
    pub(crate) fn meter_from(provider: &impl MeterProvider) -> Meter {
        provider.meter_with_scope(scope())
    }

    /// Baton's tracer from the global tracer provider.
    pub(crate) fn global_tracer() -> BoxedTracer {
        opentelemetry::global::tracer_with_scope(scope())
    }

    /// Baton's tracer from `provider`, boxed so layers need no type parameter for it.
    pub(crate) fn tracer<P>(provider: &P) -> BoxedTracer
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        BoxedTracer::new(Box::new(provider.tracer_with_scope(scope())))
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
}
