//! The process-wide tracer provider, meter provider and propagator that
//! every layer and middleware uses unless it was given its own.
//!
//! They are `opentelemetry::global`'s: [`set_tracer_provider`],
//! [`set_meter_provider`] and [`set_text_map_propagator`] install into
//! `opentelemetry::global` too (so `opentelemetry::global::get_text_map_propagator`
//! and Baton never disagree), and [`init`](crate::init) calls all three.
//!
//! Middleware looks them up per request, not when it is built: a router or
//! channel stack built before they are set (in a test helper, a `static`, a
//! builder that runs before telemetry) records to them once they are, and
//! follows every later change, a second [`init`](crate::init) included. Set
//! through this module, they are used directly: a request pays one atomic
//! load and a comparison to find them. Set directly through
//! `opentelemetry::global` instead (or replaced there later), they are still
//! followed, through OpenTelemetry's own global path (a read lock per
//! request, and `BoxedTracer`'s extra box per span).
//!
//! Until a propagator is set, it is the one `OTEL_PROPAGATORS` names (W3C
//! Trace Context and Baggage when unset), installed into
//! `opentelemetry::global` as well if that still has its no-op default, so
//! context flows before any setup.
//!
//! ```
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//!
//! // Built first: nothing is set yet.
//! let layer = baton::http::server::HttpServerLayer::new();
//! let spans = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder()
//!     .with_simple_exporter(spans.clone())
//!     .build();
//! // Set second: the layer records to it from its next request on.
//! baton::global::set_tracer_provider(provider);
//! # drop(layer);
//! ```

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use baton_propagators::{Dropped, Propagator};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanBuilder, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope};

use crate::tracer::{LayerTracer, StartSpan, scope};

/// Sets the tracer provider Baton's middleware records spans with, here and
/// in `opentelemetry::global`.
pub fn set_tracer_provider<P>(provider: P)
where
    P: TracerProvider + Send + Sync + 'static,
    P::Tracer: Send + Sync + 'static,
    <P::Tracer as Tracer>::Span: Send + Sync + 'static,
{
    let tracer = crate::tracer::from_provider(&provider);
    install(Signal::Traces, |state, id| {
        state.tracer = Some(tracer);
        opentelemetry::global::set_tracer_provider(Installed::new(provider, Signal::Traces, id));
    });
}

/// Sets the meter provider Baton's middleware records RED metrics with,
/// here and in `opentelemetry::global`.
pub fn set_meter_provider<P>(provider: P)
where
    P: MeterProvider + Send + Sync + 'static,
{
    let meter = provider.meter_with_scope(scope());
    install(Signal::Metrics, |state, id| {
        state.meter = Some(meter);
        opentelemetry::global::set_meter_provider(Installed::new(provider, Signal::Metrics, id));
    });
}

/// Sets the propagator Baton's middleware extracts and injects with, here
/// and in `opentelemetry::global`.
pub fn set_text_map_propagator<P: Propagator + 'static>(propagator: P) {
    install(Signal::Propagation, |state, id| {
        install_propagator(state, id, Arc::new(propagator));
    });
}

/// The propagator middleware uses now: the one set here, else whatever
/// `opentelemetry::global` has.
#[must_use]
pub fn propagator() -> Arc<dyn Propagator> {
    with(|snapshot| Arc::clone(&snapshot.propagator))
}

/// The signals Baton installs into `opentelemetry::global`.
#[derive(Clone, Copy, Debug)]
enum Signal {
    Traces = 0,
    Metrics = 1,
    Propagation = 2,
}

/// Per signal, the id of Baton's installation that `opentelemetry::global`
/// holds now; 0 when it holds something else (or nothing Baton set).
static INSTALLED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Changes whenever what a [`Snapshot`] was built from may have changed.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// What was set through this module.
struct State {
    tracer: Option<LayerTracer>,
    meter: Option<Meter>,
    propagator: Option<Arc<dyn Propagator>>,
    snapshot: Option<(u64, Arc<Snapshot>)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    tracer: None,
    meter: None,
    propagator: None,
    snapshot: None,
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `set` (which installs into `opentelemetry::global`) as Baton's
/// installation `id` of `signal`, then tells every thread to look again.
fn install(signal: Signal, set: impl FnOnce(&mut State, u64)) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut state = state();
        // Current before OpenTelemetry drops the installation it replaces,
        // so that one's drop knows it was replaced by Baton, not from outside.
        INSTALLED[signal as usize].store(id, Ordering::Release);
        set(&mut state, id);
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

fn install_propagator(state: &mut State, id: u64, propagator: Arc<dyn Propagator>) {
    state.propagator = Some(Arc::clone(&propagator));
    opentelemetry::global::set_text_map_propagator(Installed::new(
        propagator,
        Signal::Propagation,
        id,
    ));
}

/// What middleware records and propagates with, as of one generation.
#[cfg_attr(
    not(feature = "_middleware"),
    allow(dead_code, reason = "read by the middleware features")
)]
pub(crate) struct Snapshot {
    pub(crate) tracer: LayerTracer,
    pub(crate) propagator: Arc<dyn Propagator>,
    meter: Meter,
    /// The identity of the `opentelemetry::global` meter provider that
    /// `meter` comes from, when it is not one Baton installed (whose
    /// replacement Baton would hear of).
    foreign_meter: Option<usize>,
    #[cfg(feature = "http-server")]
    pub(crate) http_server: std::sync::OnceLock<crate::http::telemetry::Instruments>,
    #[cfg(feature = "_http-client")]
    pub(crate) http_client: std::sync::OnceLock<crate::http::telemetry::Instruments>,
    #[cfg(feature = "tonic")]
    pub(crate) grpc_server: std::sync::OnceLock<crate::grpc::Instruments>,
    #[cfg(feature = "tonic")]
    pub(crate) grpc_client: std::sync::OnceLock<crate::grpc::Instruments>,
}

impl Snapshot {
    /// The instruments of middleware kind `K`, made on first use.
    #[cfg(feature = "_middleware")]
    pub(crate) fn instruments<K: crate::instrumentation::Kind>(&self) -> &K::Instruments {
        if let Some(identity) = self.foreign_meter
            && identity != meter_identity(&opentelemetry::global::meter_provider())
        {
            // Replaced through `opentelemetry::global`: the next request
            // builds a new snapshot.
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
        K::slot(self).get_or_init(|| K::build(&self.meter))
    }
}

fn meter_identity(provider: &Arc<dyn MeterProvider + Send + Sync>) -> usize {
    Arc::as_ptr(provider).cast::<()>().addr()
}

thread_local! {
    /// Each thread's last snapshot, so that a request finds it without a lock.
    static CACHE: RefCell<Option<(u64, Arc<Snapshot>)>> = const { RefCell::new(None) };
}

/// Calls `f` with the current snapshot: once warm, an atomic load and a
/// comparison.
pub(crate) fn with<R>(f: impl FnOnce(&Snapshot) -> R) -> R {
    let generation = GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let cached = CACHE.try_with(|cache| {
        let f = f.take()?;
        if let Ok(cached) = cache.try_borrow()
            && let Some((seen, snapshot)) = &*cached
            && *seen == generation
        {
            return Some(f(snapshot));
        }
        let fresh = snapshot(generation);
        if let Ok(mut cached) = cache.try_borrow_mut() {
            *cached = Some((generation, Arc::clone(&fresh)));
        }
        Some(f(&fresh))
    });
    match (cached, f) {
        (Ok(Some(result)), _) => result,
        // The thread is being torn down: no cache.
        (_, Some(f)) => f(&snapshot(generation)),
        (_, None) => unreachable!("the cache takes `f` only to call it"),
    }
}

/// The snapshot of `generation`, built if no thread has yet.
fn snapshot(generation: u64) -> Arc<Snapshot> {
    let mut state = state();
    if let Some((built, snapshot)) = &state.snapshot
        && *built == generation
    {
        return Arc::clone(snapshot);
    }
    let snapshot = Arc::new(build(&mut state));
    state.snapshot = Some((generation, Arc::clone(&snapshot)));
    snapshot
}

fn build(state: &mut State) -> Snapshot {
    let current = |signal: Signal| INSTALLED[signal as usize].load(Ordering::Acquire) != 0;
    let tracer = match &state.tracer {
        Some(tracer) if current(Signal::Traces) => Arc::clone(tracer),
        _ => Arc::new(FollowGlobal),
    };
    let (meter, foreign_meter) = match &state.meter {
        Some(meter) if current(Signal::Metrics) => (meter.clone(), None),
        _ => {
            let provider = opentelemetry::global::meter_provider();
            let meter = provider.meter_with_scope(scope());
            (meter, Some(meter_identity(&provider)))
        }
    };
    let propagator = match &state.propagator {
        Some(propagator) if current(Signal::Propagation) => Arc::clone(propagator),
        // Nothing chose one yet, and OpenTelemetry's is its no-op default
        // (the only propagator with no fields): the environment's, in both.
        None if opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_none()) => {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            INSTALLED[Signal::Propagation as usize].store(id, Ordering::Release);
            let propagator: Arc<dyn Propagator> = Arc::new(baton_propagators::from_env());
            install_propagator(state, id, Arc::clone(&propagator));
            propagator
        }
        _ => Arc::new(FollowGlobal),
    };
    Snapshot {
        tracer,
        propagator,
        meter,
        foreign_meter,
        #[cfg(feature = "http-server")]
        http_server: std::sync::OnceLock::new(),
        #[cfg(feature = "_http-client")]
        http_client: std::sync::OnceLock::new(),
        #[cfg(feature = "tonic")]
        grpc_server: std::sync::OnceLock::new(),
        #[cfg(feature = "tonic")]
        grpc_client: std::sync::OnceLock::new(),
    }
}

/// What Baton puts into `opentelemetry::global`: the provider or propagator
/// itself, which tells Baton when OpenTelemetry drops it (replaced there
/// by someone else).
struct Installed<T> {
    inner: T,
    signal: Signal,
    id: u64,
}

impl<T> Installed<T> {
    fn new(inner: T, signal: Signal, id: u64) -> Self {
        Installed { inner, signal, id }
    }
}

impl<T> std::fmt::Debug for Installed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed")
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Installed<T> {
    fn drop(&mut self) {
        // Runs under OpenTelemetry's write lock: atomics only, no lookups.
        let replaced = INSTALLED[self.signal as usize].compare_exchange(
            self.id,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if replaced.is_ok() {
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl<P: TracerProvider> TracerProvider for Installed<P> {
    type Tracer = P::Tracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> Self::Tracer {
        self.inner.tracer_with_scope(scope)
    }
}

impl<P: MeterProvider> MeterProvider for Installed<P> {
    fn meter_with_scope(&self, scope: InstrumentationScope) -> Meter {
        self.inner.meter_with_scope(scope)
    }
}

impl TextMapPropagator for Installed<Arc<dyn Propagator>> {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let mut dropped = Vec::new();
        self.inner.inject_reporting(cx, injector, &mut dropped);
        crate::propagation::log_dropped("inject", &dropped);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut dropped = Vec::new();
        let cx = self.inner.extract_reporting(cx, extractor, &mut dropped);
        crate::propagation::log_dropped("extract", &dropped);
        cx
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.inner.field_names())
    }
}

/// Whatever `opentelemetry::global` holds, looked up on every use: for
/// providers and propagators set there by someone other than Baton, whose
/// replacement Baton cannot hear of.
#[derive(Debug)]
struct FollowGlobal;

impl StartSpan for FollowGlobal {
    fn start_in(&self, builder: SpanBuilder, parent: &Context, base: &Context) -> Context {
        let tracer = opentelemetry::global::tracer_with_scope(scope());
        crate::tracer::in_context(builder.start_with_context(&tracer, parent), parent, base)
    }
}

impl Propagator for FollowGlobal {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        _dropped: &mut Vec<Dropped>,
    ) -> Context {
        opentelemetry::global::get_text_map_propagator(|p| p.extract_with_context(cx, extractor))
    }

    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        _dropped: &mut Vec<Dropped>,
    ) {
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, injector));
    }

    fn field_names(&self) -> &[String] {
        &[]
    }
}
