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
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};

    use foldhash::fast::RandomState;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{
        BoundHistogram, BoundUpDownCounter, Histogram, Meter, MeterProvider, UpDownCounter,
    };
    use opentelemetry::trace::{SpanBuilder, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::{Context, InstrumentationScope};

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

    /// Starts spans for the layers, which need no type parameter for the
    /// tracer. Not `opentelemetry::global::BoxedTracer`: it boxes every span
    /// it starts, and the context boxes it again; this boxes it once.
    pub(crate) trait StartSpan: Send + Sync {
        /// `base` with a span from `builder`, a child of `parent`'s span.
        fn start_in(&self, builder: SpanBuilder, parent: &Context, base: &Context) -> Context;

        /// `parent` with a span from `builder`, a child of its span.
        fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
            self.start_in(builder, parent, parent)
        }
    }

    impl<T> StartSpan for T
    where
        T: Tracer + Send + Sync,
        T::Span: Send + Sync + 'static,
    {
        fn start_in(&self, builder: SpanBuilder, parent: &Context, base: &Context) -> Context {
            base.with_span(builder.start_with_context(self, parent))
        }
    }

    impl std::fmt::Debug for dyn StartSpan {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Tracer")
        }
    }

    /// A layer's tracer.
    pub(crate) type LayerTracer = Arc<dyn StartSpan>;

    /// Baton's tracer from the global tracer provider.
    pub(crate) fn global_tracer() -> LayerTracer {
        Arc::new(opentelemetry::global::tracer_with_scope(scope()))
    }

    /// Baton's tracer from `provider`.
    pub(crate) fn tracer<P>(provider: &P) -> LayerTracer
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        Arc::new(provider.tracer_with_scope(scope()))
    }

    /// A request-duration histogram in seconds with [`DURATION_BOUNDARIES`].
    pub(crate) fn duration(
        meter: &Meter,
        name: &'static str,
        description: &'static str,
    ) -> Duration {
        Bound::new(
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
        )
    }

    /// An in-flight request counter (only HTTP has them in the conventions).
    #[cfg(feature = "http")]
    pub(crate) fn active(meter: &Meter, name: &'static str, description: &'static str) -> Active {
        Bound::new(
            meter
                .i64_up_down_counter(name)
                .with_unit("{request}")
                .with_description(description)
                .build(),
        )
    }

    /// The request-duration histogram.
    pub(crate) type Duration = Bound<Histogram<f64>>;
    /// The active-requests counter.
    #[cfg(feature = "http")]
    pub(crate) type Active = Bound<UpDownCounter<i64>>;

    /// Attribute sets bound to an instrument beyond which records go unbound
    /// (and meet the SDK's own cardinality limit, 2,000 by default).
    const BOUND_SETS: usize = 1_000;

    /// An instrument bound to each attribute set it has recorded, up to
    /// [`BOUND_SETS`]. A record through the SDK's instrument hashes every
    /// attribute with SipHash under a lock to find its aggregate (about 1,600
    /// instructions each, five per gateway request); bound, it hashes them
    /// with foldhash and updates the aggregate directly (a quarter of that).
    /// Middleware attribute sets are few (method, route, status...), so
    /// nearly every record hits.
    ///
    /// Binding is experimental in `opentelemetry` 0.33 (pinned); the SDK's
    /// instruments implement it when its `experimental_metrics_bound_instruments`
    /// feature is on, which this crate turns on.
    pub(crate) struct Bound<I: Bind> {
        instrument: I,
        sets: Arc<RwLock<Sets<I::Bound>>>,
    }

    /// Bound instruments by attribute set.
    type Sets<B> = HashMap<Box<[KeyValue]>, B, RandomState>;

    impl<I: Bind> Bound<I> {
        fn new(instrument: I) -> Self {
            Bound {
                instrument,
                sets: Arc::default(),
            }
        }

        /// Records `value` with `attributes`.
        pub(crate) fn record(&self, value: I::Value, attributes: &[KeyValue]) {
            if let Ok(sets) = self.sets.read() {
                if let Some(bound) = sets.get(attributes) {
                    return I::record_bound(bound, value);
                }
                if sets.len() >= BOUND_SETS {
                    return self.instrument.record(value, attributes);
                }
            }
            if let Ok(mut sets) = self.sets.write() {
                // Another thread may have bound it meanwhile.
                if let Some(bound) = sets.get(attributes) {
                    return I::record_bound(bound, value);
                }
                if sets.len() < BOUND_SETS {
                    let bound = self.instrument.bind(attributes);
                    I::record_bound(&bound, value);
                    sets.insert(attributes.into(), bound);
                    return;
                }
            }
            self.instrument.record(value, attributes);
        }
    }

    impl<I: Bind> Clone for Bound<I> {
        fn clone(&self) -> Self {
            Bound {
                instrument: self.instrument.clone(),
                sets: Arc::clone(&self.sets),
            }
        }
    }

    impl<I: Bind> std::fmt::Debug for Bound<I> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Bound")
                .field("instrument", &self.instrument)
                .finish_non_exhaustive()
        }
    }

    /// A synchronous instrument that can be bound to an attribute set.
    pub(crate) trait Bind: Clone + std::fmt::Debug {
        type Value: Copy;
        type Bound: Send + Sync;
        fn bind(&self, attributes: &[KeyValue]) -> Self::Bound;
        fn record(&self, value: Self::Value, attributes: &[KeyValue]);
        fn record_bound(bound: &Self::Bound, value: Self::Value);
    }

    impl Bind for Histogram<f64> {
        type Value = f64;
        type Bound = BoundHistogram<f64>;

        fn bind(&self, attributes: &[KeyValue]) -> Self::Bound {
            Histogram::bind(self, attributes)
        }

        fn record(&self, value: f64, attributes: &[KeyValue]) {
            Histogram::record(self, value, attributes);
        }

        fn record_bound(bound: &Self::Bound, value: f64) {
            bound.record(value);
        }
    }

    impl Bind for UpDownCounter<i64> {
        type Value = i64;
        type Bound = BoundUpDownCounter<i64>;

        fn bind(&self, attributes: &[KeyValue]) -> Self::Bound {
            UpDownCounter::bind(self, attributes)
        }

        fn record(&self, value: i64, attributes: &[KeyValue]) {
            self.add(value, attributes);
        }

        fn record_bound(bound: &Self::Bound, value: i64) {
            bound.add(value);
        }
    }
}
