//! Captured metric points: a shared meter provider whose instruments hand
//! each measurement to the meter provider of the capture whose context is
//! current, so points keep exactly the attributes the code gave them.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::metrics::{
    BoundSyncInstrument, Counter, Gauge, Histogram, HistogramBuilder, InstrumentBuilder,
    InstrumentProvider, Meter, MeterProvider, SyncInstrument, UpDownCounter,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};

use super::{lock, owner, text};

/// The meter provider installed globally: its instruments route.
#[derive(Clone, Copy, Debug)]
pub(super) struct RoutingMeterProvider;

impl MeterProvider for RoutingMeterProvider {
    fn meter_with_scope(&self, scope: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(Routing { scope }))
    }
}

/// What an instrument was created with, to create it again per capture.
struct Spec<T> {
    scope: InstrumentationScope,
    name: Cow<'static, str>,
    description: Option<Cow<'static, str>>,
    unit: Option<Cow<'static, str>>,
    boundaries: Option<Vec<f64>>,
    build: fn(&Meter, &Spec<T>) -> Arc<dyn Record<T>>,
}

/// One recording method for every kind of synchronous instrument.
trait Record<T>: Send + Sync {
    fn record(&self, value: T, attributes: &[KeyValue]);
}

macro_rules! record {
    ($($instrument:ident => $method:ident),*) => {$(
        impl<T> Record<T> for $instrument<T> where $instrument<T>: Send + Sync {
            fn record(&self, value: T, attributes: &[KeyValue]) {
                self.$method(value, attributes);
            }
        }
    )*};
}
record!(Counter => add, UpDownCounter => add, Gauge => record, Histogram => record);

/// The instruments of one scope of [`RoutingMeterProvider`].
struct Routing {
    scope: InstrumentationScope,
}

/// An instrument that records into the current capture's copy of itself.
struct Routed<T> {
    spec: Arc<Spec<T>>,
}

impl<T: Copy + Send + Sync + 'static> SyncInstrument<T> for Routed<T> {
    fn measure(&self, value: T, attributes: &[KeyValue]) {
        record(&self.spec, value, attributes);
    }

    fn bind(&self, attributes: &[KeyValue]) -> Box<dyn BoundSyncInstrument<T> + Send + Sync> {
        Box::new(BoundRouted {
            spec: Arc::clone(&self.spec),
            attributes: attributes.to_vec(),
        })
    }
}

/// Bound: the capture is still chosen per measurement.
struct BoundRouted<T> {
    spec: Arc<Spec<T>>,
    attributes: Vec<KeyValue>,
}

impl<T: Copy + Send + Sync + 'static> BoundSyncInstrument<T> for BoundRouted<T> {
    fn measure(&self, value: T) {
        record(&self.spec, value, &self.attributes);
    }
}

fn record<T: Send + Sync + 'static>(spec: &Arc<Spec<T>>, value: T, attributes: &[KeyValue]) {
    if let Some(owner) = Context::map_current(owner) {
        owner.metrics.instrument(spec).record(value, attributes);
    }
}

macro_rules! routed {
    ($($method:ident: $builder:ident<$instrument:ident<$t:ty>> $(, $bounds:ident)?;)*) => {
        impl InstrumentProvider for Routing {
            $(fn $method(&self, builder: $builder<'_, $instrument<$t>>) -> $instrument<$t> {
                let spec = Spec {
                    scope: self.scope.clone(),
                    name: builder.name,
                    description: builder.description,
                    unit: builder.unit,
                    boundaries: routed!(@bounds builder $($bounds)?),
                    build: |meter, spec| {
                        let builder = meter.$method(spec.name.clone());
                        let builder = match &spec.description {
                            Some(d) => builder.with_description(d.clone()),
                            None => builder,
                        };
                        let builder = match &spec.unit {
                            Some(u) => builder.with_unit(u.clone()),
                            None => builder,
                        };
                        $(let builder = match &spec.$bounds {
                            Some(b) => builder.with_boundaries(b.clone()),
                            None => builder,
                        };)?
                        Arc::new(builder.build())
                    },
                };
                $instrument::new(Arc::new(Routed { spec: Arc::new(spec) }))
            })*
        }
    };
    (@bounds $builder:ident boundaries) => { $builder.boundaries };
    (@bounds $builder:ident) => { None };
}

routed! {
    u64_counter: InstrumentBuilder<Counter<u64>>;
    f64_counter: InstrumentBuilder<Counter<f64>>;
    i64_up_down_counter: InstrumentBuilder<UpDownCounter<i64>>;
    f64_up_down_counter: InstrumentBuilder<UpDownCounter<f64>>;
    u64_gauge: InstrumentBuilder<Gauge<u64>>;
    i64_gauge: InstrumentBuilder<Gauge<i64>>;
    f64_gauge: InstrumentBuilder<Gauge<f64>>;
    f64_histogram: HistogramBuilder<Histogram<f64>>, boundaries;
    u64_histogram: HistogramBuilder<Histogram<u64>>, boundaries;
}

/// One capture's meter provider and the instruments made in it.
pub(super) struct PerCapture {
    provider: SdkMeterProvider,
    reader: Arc<ManualReader>,
    /// Per routed instrument (by the address of its spec, kept alive here so
    /// the address is not reused), this capture's copy of it.
    instruments: Mutex<HashMap<usize, Box<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for PerCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerCapture").finish_non_exhaustive()
    }
}

type Made<T> = (Arc<Spec<T>>, Arc<dyn Record<T>>);

impl PerCapture {
    pub(super) fn new() -> Self {
        let reader = Arc::new(ManualReader::builder().build());
        PerCapture {
            provider: SdkMeterProvider::builder()
                .with_reader(SharedReader(Arc::clone(&reader)))
                .build(),
            reader,
            instruments: Mutex::new(HashMap::new()),
        }
    }

    fn instrument<T: Send + Sync + 'static>(&self, spec: &Arc<Spec<T>>) -> Arc<dyn Record<T>> {
        let key = Arc::as_ptr(spec).addr();
        let mut instruments = lock(&self.instruments);
        if let Some(made) = instruments
            .get(&key)
            .and_then(|made| made.downcast_ref::<Made<T>>())
        {
            return Arc::clone(&made.1);
        }
        let meter = self.provider.meter_with_scope(spec.scope.clone());
        let made = (spec.build)(&meter, spec);
        instruments.insert(key, Box::new((Arc::clone(spec), Arc::clone(&made))));
        made
    }

    pub(super) fn collect(&self) -> Metrics {
        let mut rm = ResourceMetrics::default();
        // Only fails once shut down, which a live capture's reader never is.
        let _ = self.reader.collect(&mut rm);
        let mut points = Vec::new();
        for metric in rm.scope_metrics().flat_map(|s| s.metrics()) {
            let name = metric.name().to_owned();
            let unit = metric.unit().to_owned();
            let mut push = |attributes: Vec<KeyValue>, value: PointValue| {
                let mut attributes = attributes;
                attributes.sort_by(|a, b| a.key.cmp(&b.key));
                points.push(Point {
                    instrument: name.clone(),
                    unit: unit.clone(),
                    attributes,
                    value,
                });
            };
            match metric.data() {
                AggregatedMetrics::F64(data) => each(data, &mut push, |v| v),
                #[allow(clippy::cast_precision_loss, reason = "test values are small")]
                AggregatedMetrics::U64(data) => each(data, &mut push, |v| v as f64),
                #[allow(clippy::cast_precision_loss, reason = "test values are small")]
                AggregatedMetrics::I64(data) => each(data, &mut push, |v| v as f64),
            }
        }
        points.sort_by(|a, b| a.instrument.cmp(&b.instrument));
        Metrics { points }
    }
}

fn each<T: Copy>(
    data: &MetricData<T>,
    push: &mut impl FnMut(Vec<KeyValue>, PointValue),
    number: impl Fn(T) -> f64,
) {
    match data {
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                push(
                    p.attributes().cloned().collect(),
                    PointValue::Histogram {
                        count: p.count(),
                        sum: number(p.sum()),
                        bounds: p.bounds().collect(),
                        bucket_counts: p.bucket_counts().collect(),
                    },
                );
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                push(
                    p.attributes().cloned().collect(),
                    PointValue::Sum(number(p.value())),
                );
            }
        }
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                push(
                    p.attributes().cloned().collect(),
                    PointValue::Gauge(number(p.value())),
                );
            }
        }
        // Only made by a view asking for it, and captures have none.
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// A [`ManualReader`] the capture keeps a handle on after giving it to its
/// provider.
#[derive(Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The metric points of a capture, sorted by instrument name.
#[derive(Clone, Debug)]
pub struct Metrics {
    points: Vec<Point>,
}

impl Metrics {
    /// Every point.
    #[must_use]
    pub fn all(&self) -> &[Point] {
        &self.points
    }

    /// The points of instrument `name`.
    pub fn points<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Point> {
        self.points.iter().filter(move |p| p.instrument == name)
    }

    /// The one point of instrument `name`.
    ///
    /// # Panics
    ///
    /// When there is none or more than one, listing what there is.
    #[track_caller]
    #[must_use]
    pub fn one(&self, name: &str) -> &Point {
        let found: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.instrument == name)
            .collect();
        match found.as_slice() {
            [one] => one,
            _ => panic!(
                "expected one point of `{name}`, found {}; points:\n{self}",
                found.len()
            ),
        }
    }
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for point in &self.points {
            writeln!(f, "{point}")?;
        }
        Ok(())
    }
}

/// One data point: an instrument's aggregate for one attribute set.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Point {
    /// The instrument's name.
    pub instrument: String,
    /// The instrument's unit.
    pub unit: String,
    /// The attributes, sorted by key.
    pub attributes: Vec<KeyValue>,
    /// The aggregate.
    pub value: PointValue,
}

/// What a [`Point`] aggregates.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A histogram's measurements.
    Histogram {
        /// How many.
        count: u64,
        /// Their sum.
        sum: f64,
        /// The bucket boundaries.
        bounds: Vec<f64>,
        /// Measurements per bucket (one more than `bounds`).
        bucket_counts: Vec<u64>,
    },
    /// A counter's or up-down counter's sum.
    Sum(f64),
    /// A gauge's last value.
    Gauge(f64),
}

impl Point {
    /// The value of attribute `key`.
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The attributes as sorted `key=value` texts, to compare in one line.
    #[must_use]
    pub fn attribute_texts(&self) -> Vec<String> {
        self.attributes
            .iter()
            .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
            .collect()
    }

    /// A histogram's count of measurements; `None` for other points.
    #[must_use]
    pub fn count(&self) -> Option<u64> {
        match self.value {
            PointValue::Histogram { count, .. } => Some(count),
            _ => None,
        }
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match &self.value {
            PointValue::Histogram { count, .. } => format!("count={count}"),
            PointValue::Sum(sum) => format!("sum={sum}"),
            PointValue::Gauge(last) => format!("last={last}"),
        };
        write!(
            f,
            "{} {{{}}} {value}",
            self.instrument,
            self.attribute_texts().join(", ")
        )
    }
}
