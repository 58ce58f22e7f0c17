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
#[cfg(feature = "_middleware")]
pub(crate) use instruments::*;

#[cfg(feature = "_middleware")]
mod instruments {
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::{Arc, RwLock};

    use foldhash::fast::RandomState;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{
        BoundHistogram, BoundUpDownCounter, Histogram, Meter, UpDownCounter,
    };

    use super::DURATION_BOUNDARIES;

    /// Whether durations are recorded with their request's context current.
    /// Only `baton::testing` needs it (it tells measurements apart by
    /// context), so everyone else is spared the attach per request.
    pub(crate) static RECORD_IN_CONTEXT: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Whether [`RECORD_IN_CONTEXT`] asks for it.
    pub(crate) fn records_in_context() -> bool {
        RECORD_IN_CONTEXT.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `record` in `cx` when [`RECORD_IN_CONTEXT`] asks for it.
    pub(crate) fn in_context<R>(cx: &opentelemetry::Context, record: impl FnOnce() -> R) -> R {
        if records_in_context() {
            let _attached = cx.clone().attach();
            record()
        } else {
            record()
        }
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
    #[cfg(feature = "_http")]
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
    #[cfg(feature = "_http")]
    pub(crate) type Active = Bound<UpDownCounter<i64>>;

    /// Attribute sets bound to an instrument beyond which records go unbound
    /// (and meet the SDK's own cardinality limit, 2,000 by default).
    const BOUND_SETS: usize = 1_000;

    /// An instrument bound to each attribute set it has recorded, up to
    /// [`BOUND_SETS`]. A record through the SDK's instrument hashes every
    /// attribute with SipHash under a lock to find its aggregate (about 1,600
    /// instructions each, five per gateway request); bound, it updates the
    /// aggregate directly. Sets are found by a [`SetKey`] where the layer can
    /// name one (no attribute is built or hashed then), else by the
    /// attributes, hashed with foldhash. Middleware attribute sets are few
    /// (method, route, status...), so nearly every record hits.
    ///
    /// Binding is experimental in `opentelemetry` 0.33 (pinned); the SDK's
    /// instruments implement it when its `experimental_metrics_bound_instruments`
    /// feature is on, which this crate turns on.
    pub(crate) struct Bound<I: Bind> {
        instrument: I,
        cache: Arc<RwLock<Cache<I::Bound>>>,
    }

    /// A layer's name for an attribute set, made without building it: equal
    /// keys must mean equal sets. Layers make them from the addresses of
    /// `'static` strings (literals and interned names, which are never
    /// freed, so an address never comes to mean other text) and from small
    /// numbers, packed without loss.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub(crate) struct SetKey {
        pub(crate) names: [usize; 4],
        pub(crate) bits: u64,
    }

    impl SetKey {
        /// The part of a key that stands for `text` (0 stands for none).
        #[cfg(any(feature = "http-server", feature = "tonic"))]
        pub(crate) fn name(text: Option<&'static str>) -> usize {
            text.map_or(0, |text| text.as_ptr() as usize)
        }

        /// Up to 7 bytes of `text` and its length, as a number; 0 for none;
        /// `None` for a longer text.
        #[cfg(feature = "http-server")]
        pub(crate) fn short(text: Option<&str>) -> Option<u64> {
            let Some(text) = text else { return Some(0) };
            let mut packed = [0; 8];
            packed
                .get_mut(..text.len())?
                .copy_from_slice(text.as_bytes());
            // The length plus one: "" is not none.
            packed[7] = u8::try_from(text.len() + 1).ok().filter(|&n| n <= 8)?;
            Some(u64::from_le_bytes(packed))
        }
    }

    /// Bound instruments by key and by attribute set.
    struct Cache<B> {
        by_key: HashMap<SetKey, B, RandomState>,
        by_set: HashMap<Box<[KeyValue]>, B, RandomState>,
    }

    impl<B> Default for Cache<B> {
        fn default() -> Self {
            Cache {
                by_key: HashMap::default(),
                by_set: HashMap::default(),
            }
        }
    }

    impl<B> Cache<B> {
        fn full(&self) -> bool {
            self.by_key.len() + self.by_set.len() >= BOUND_SETS
        }
    }

    impl<I: Bind> Bound<I> {
        fn new(instrument: I) -> Self {
            Bound {
                instrument,
                cache: Arc::default(),
            }
        }

        /// Records `value` with `attributes`.
        pub(crate) fn record(&self, value: I::Value, attributes: &[KeyValue]) {
            self.record_in(
                value,
                attributes,
                |cache| &cache.by_set,
                |cache| &mut cache.by_set,
                || attributes,
                |attributes| (*attributes).into(),
            );
        }

        /// Records `value` with the set `key` names; `attributes` builds the
        /// set only the first time. Without a key, with `attributes()`.
        pub(crate) fn record_keyed<A: AsRef<[KeyValue]>>(
            &self,
            value: I::Value,
            key: Option<SetKey>,
            attributes: impl FnOnce() -> A,
        ) {
            let Some(key) = key else {
                return self.record(value, attributes().as_ref());
            };
            self.record_in(
                value,
                &key,
                |cache| &cache.by_key,
                |cache| &mut cache.by_key,
                attributes,
                |_| key,
            );
        }

        /// Records through the instrument bound under `key` in `table`,
        /// binding it to `attributes()` first if there is room.
        fn record_in<K, Q, A>(
            &self,
            value: I::Value,
            key: &Q,
            table: impl Fn(&Cache<I::Bound>) -> &HashMap<K, I::Bound, RandomState>,
            table_mut: impl Fn(&mut Cache<I::Bound>) -> &mut HashMap<K, I::Bound, RandomState>,
            attributes: impl FnOnce() -> A,
            owned: impl FnOnce(&A) -> K,
        ) where
            K: Borrow<Q> + Hash + Eq,
            Q: Hash + Eq + ?Sized,
            A: AsRef<[KeyValue]>,
        {
            if let Ok(cache) = self.cache.read() {
                if let Some(bound) = table(&cache).get(key) {
                    return I::record_bound(bound, value);
                }
                if cache.full() {
                    return self.instrument.record(value, attributes().as_ref());
                }
            }
            let attributes = attributes();
            if let Ok(mut cache) = self.cache.write() {
                // Another thread may have bound it meanwhile.
                if let Some(bound) = table(&cache).get(key) {
                    return I::record_bound(bound, value);
                }
                if !cache.full() {
                    let bound = self.instrument.bind(attributes.as_ref());
                    I::record_bound(&bound, value);
                    table_mut(&mut cache).insert(owned(&attributes), bound);
                    return;
                }
            }
            self.instrument.record(value, attributes.as_ref());
        }
    }

    impl<I: Bind> Clone for Bound<I> {
        fn clone(&self) -> Self {
            Bound {
                instrument: self.instrument.clone(),
                cache: Arc::clone(&self.cache),
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

    #[cfg(test)]
    mod tests {
        use opentelemetry::metrics::MeterProvider as _;
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        use opentelemetry_sdk::metrics::{
            InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        };

        use super::*;

        #[test]
        fn every_record_lands_in_its_set_bound_keyed_or_past_the_limit() {
            let exporter = InMemoryMetricExporter::default();
            let provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(exporter.clone()).build())
                .build();
            let duration = duration(&provider.meter("test"), "d", "test");
            let set = |name: &'static str| [KeyValue::new("set", name)];
            let key = |n| {
                Some(SetKey {
                    names: [n, 0, 0, 0],
                    bits: 0,
                })
            };
            duration.record_keyed(1.0, key(1), || set("a"));
            duration.record_keyed(1.0, key(1), || set("a"));
            duration.record_keyed(1.0, key(2), || set("b"));
            duration.record_keyed(1.0, None, || set("b"));
            // Past the bound sets, records go through the SDK's lookup.
            for i in 0..BOUND_SETS + 10 {
                duration.record(1.0, &[KeyValue::new("i", i as i64)]);
            }
            duration.record_keyed(1.0, key(3), || set("c"));
            duration.record(1.0, &set("c"));

            provider.force_flush().expect("flush");
            let metrics = exporter.get_finished_metrics().expect("metrics");
            let mut counts = HashMap::<String, u64>::new();
            for metric in metrics
                .iter()
                .flat_map(|m| m.scope_metrics())
                .flat_map(|s| s.metrics())
            {
                let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                    panic!("not a histogram");
                };
                for point in h.data_points() {
                    for kv in point.attributes() {
                        *counts.entry(kv.value.to_string()).or_default() += point.count();
                    }
                }
            }
            assert_eq!(counts.get("a"), Some(&2));
            assert_eq!(counts.get("b"), Some(&2));
            assert_eq!(counts.get("c"), Some(&2));
            assert_eq!(counts.len(), 3 + BOUND_SETS + 10, "one point per set");
        }

        #[cfg(feature = "http-server")]
        #[test]
        fn short_texts_pack_without_loss() {
            let texts = [
                None,
                Some(""),
                Some("1.1"),
                Some("2"),
                Some("https"),
                Some("1234567"),
            ];
            let packed: Vec<_> = texts.iter().map(|t| SetKey::short(*t)).collect();
            for (i, a) in packed.iter().enumerate() {
                assert!(a.is_some(), "{:?}", texts[i]);
                for b in &packed[i + 1..] {
                    assert_ne!(a, b);
                }
            }
            assert_eq!(SetKey::short(Some("12345678")), None, "too long");
        }
    }
}
