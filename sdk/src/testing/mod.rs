//! Capturing what the code under test produced (spans, RED metric points,
//! log records) and asserting on it, in ordinary parallel tests.
//!
//! Add Baton with the `testing` feature to your dev-dependencies, then:
//!
//! ```
//! use baton::opentelemetry::trace::{Tracer, TracerProvider};
//!
//! # #[tokio::main] async fn main() {
//! let capture = baton::testing::Capture::start();
//! capture
//!     .run(async {
//!         // The code under test, using the global providers.
//!         let tracer = baton::opentelemetry::global::tracer("checkout");
//!         tracer.in_span("checkout", |_| tracer.in_span("load cart", |_| {}));
//!     })
//!     .await;
//! capture.spans().await.assert_tree(
//!     "
//!     trace · checkout · 2 spans
//!     INT checkout  -
//!       INT load cart  -
//!     ",
//! );
//! # }
//! ```
//!
//! # How tests stay apart
//!
//! [`Capture::start`] installs, through [`crate::global`], a tracer provider,
//! a meter provider and (when no other `tracing` subscriber is set) a log
//! bridge that all tests of the binary share, and returns a capture of its
//! own. What they record is routed by Baton's context, not by time:
//!
//! - **Spans**: a span started while the capture's context is current (inside
//!   [`Capture::run`], [`Capture::enter`], or any context made from
//!   [`Capture::context`]) claims its trace for the capture. Every span of a
//!   claimed trace belongs to it, wherever it is started and ended: in tasks
//!   the code spawns, in a server on the other side of an instrumented HTTP
//!   or gRPC call, after the response. A new root linked to a claimed trace
//!   (what a public endpoint starts) belongs to it too.
//! - **Metric points**: each capture has its own meter provider. A
//!   measurement goes to the capture whose context is current where it is
//!   recorded (its context entry, or a span of a trace it claimed), so a
//!   point has exactly the attributes the code gave it.
//! - **Log records**: `tracing` events at `INFO` and above, bridged to
//!   OpenTelemetry log records, go to the capture whose context is current
//!   when they are emitted. When the test binary sets its own subscriber,
//!   add [`log_layer`] to it.
//!
//! Spans, points and records that belong to no capture are dropped.
//!
//! # Limits
//!
//! - A request that carries no trace context into a server whose tasks do not
//!   run in the capture's context starts a trace no capture owns. Send test
//!   requests through Baton's client middleware inside [`Capture::run`], or
//!   with the headers of [`Capture::caller`], or serve them through
//!   [`Capture::layer`] (what a test of requests without trace headers does).
//! - Measurements made outside any request's context are not captured:
//!   observable (callback) instruments. (Baton's `*.active_requests` counts
//!   are recorded in their request's context, both up and down.)
//! - Setting other global providers in the same test binary takes the
//!   capture's away; each [`Capture::start`] installs them again.

mod diff;
mod layer;
mod logs;
mod metrics;
mod spans;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};

pub use layer::{CaptureLayer, CaptureService};
pub use logs::{LogRecord, log_layer};
pub use metrics::{Metrics, Point, PointValue};
pub use spans::{CapturedSpan, Spans};

/// How long [`Capture::spans`] waits for spans still open.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// What one test captured: the spans of the traces it started, the metric
/// points and log records recorded in its context.
///
/// Dropping it releases its traces: spans of them that end later go nowhere.
#[derive(Debug)]
pub struct Capture {
    inner: Arc<Inner>,
}

/// The capture as the context entry and the routes refer to it.
#[derive(Debug)]
struct Inner {
    traces: Mutex<HashSet<TraceId>>,
    /// Spans started and not yet ended, with the baggage they started with.
    open: Mutex<HashMap<SpanId, spans::Started>>,
    finished: Mutex<Vec<CapturedSpan>>,
    metrics: metrics::PerCapture,
    logs: Mutex<Vec<LogRecord>>,
}

/// The context entry naming the capture the context belongs to.
#[derive(Debug, Clone)]
struct Entry(Arc<Inner>);

/// Which capture claimed which trace.
static ROUTES: LazyLock<Mutex<HashMap<TraceId, Weak<Inner>>>> = LazyLock::new(Mutex::default);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test must not take the others' captures with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared providers, made once per process.
struct Providers {
    tracer: SdkTracerProvider,
}

fn providers() -> &'static Providers {
    static PROVIDERS: OnceLock<Providers> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        logs::install();
        Providers {
            tracer: SdkTracerProvider::builder()
                .with_span_processor(spans::Router)
                .build(),
        }
    })
}

impl Capture {
    /// Starts capturing, installing the shared global providers first.
    #[must_use]
    pub fn start() -> Self {
        let providers = providers();
        #[cfg(feature = "_middleware")]
        crate::metrics::RECORD_IN_CONTEXT.store(true, std::sync::atomic::Ordering::Relaxed);
        crate::global::set_tracer_provider(providers.tracer.clone());
        crate::global::set_meter_provider(metrics::RoutingMeterProvider);
        Capture {
            inner: Arc::new(Inner {
                traces: Mutex::new(HashSet::new()),
                open: Mutex::new(HashMap::new()),
                finished: Mutex::new(Vec::new()),
                metrics: metrics::PerCapture::new(),
                logs: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current context, marked as this capture's: traces started in it
    /// are captured.
    #[must_use]
    pub fn context(&self) -> Context {
        Context::current().with_value(Entry(Arc::clone(&self.inner)))
    }

    /// Runs `future` in [`context`](Self::context).
    pub fn run<F: Future>(&self, future: F) -> crate::Run<F> {
        crate::run(self.context(), future)
    }

    /// Makes [`context`](Self::context) current until the guard drops, for
    /// synchronous code.
    pub fn enter(&self) -> crate::EnterGuard {
        crate::enter(self.context())
    }

    /// A tower layer handling each request of a test server in this
    /// capture's context, so that the traces requests without trace context
    /// start are this capture's: put it outside Baton's server layer.
    #[must_use]
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer::new(Arc::downgrade(&self.inner))
    }

    /// Claims trace `trace_id`: its spans belong to this capture from now on,
    /// wherever they start (say, a trace id the test sends in a header).
    pub fn adopt(&self, trace_id: TraceId) {
        self.inner.claim(trace_id);
    }

    /// Headers a caller outside the process would send: a sampled remote
    /// parent whose trace this capture owns, with the current baggage,
    /// injected by the global propagator.
    #[must_use]
    pub fn caller(&self) -> http::HeaderMap {
        let parent = self.remote_parent();
        let cx = Context::current().with_remote_span_context(parent);
        let mut headers = http::HeaderMap::new();
        crate::global::propagator().inject_reporting(
            &cx,
            &mut baton_propagators::HeaderCarrierMut(&mut headers),
            &mut Vec::new(),
        );
        headers
    }

    /// A new remote span context (a caller's) whose trace this capture owns.
    #[must_use]
    pub fn remote_parent(&self) -> SpanContext {
        let ids = RandomIdGenerator::default();
        let trace_id = ids.new_trace_id();
        self.adopt(trace_id);
        SpanContext::new(
            trace_id,
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        )
    }

    /// The captured spans, once every span started in a captured trace has
    /// ended: what a request leaves running after its response (a gRPC
    /// server span ending with its trailers, a spawned task) is waited for.
    ///
    /// # Panics
    ///
    /// When spans are still open after 10 seconds, naming them.
    pub async fn spans(&self) -> Spans {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let open: Vec<String> = lock(&self.inner.open)
                .values()
                .map(|s| s.name.clone())
                .collect();
            if open.is_empty() {
                return self.spans_now();
            }
            assert!(
                Instant::now() < deadline,
                "spans still open after {SETTLE_DEADLINE:?}: {open:?}; finished:\n{}",
                self.spans_now().tree()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The spans captured so far, without waiting for open ones.
    #[must_use]
    pub fn spans_now(&self) -> Spans {
        Spans::new(lock(&self.inner.finished).clone())
    }

    /// The metric points recorded in this capture's context so far
    /// (cumulative since it started).
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics.collect()
    }

    /// The log records emitted in this capture's context so far.
    #[must_use]
    pub fn logs(&self) -> Vec<LogRecord> {
        lock(&self.inner.logs).clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let traces = std::mem::take(&mut *lock(&self.inner.traces));
        let mut routes = lock(&ROUTES);
        for trace in traces {
            routes.remove(&trace);
        }
    }
}

impl Inner {
    fn claim(self: &Arc<Self>, trace_id: TraceId) {
        if trace_id == TraceId::INVALID {
            return;
        }
        let mut routes = lock(&ROUTES);
        let owner = routes.entry(trace_id).or_default();
        if owner.strong_count() == 0 {
            *owner = Arc::downgrade(self);
            lock(&self.traces).insert(trace_id);
        }
    }
}

/// The capture owning trace `trace_id`.
fn owner_of(trace_id: TraceId) -> Option<Arc<Inner>> {
    lock(&ROUTES).get(&trace_id).and_then(Weak::upgrade)
}

/// The capture `cx` belongs to: its entry, else its span's trace's owner.
fn owner(cx: &Context) -> Option<Arc<Inner>> {
    if let Some(Entry(inner)) = cx.get::<Entry>() {
        return Some(Arc::clone(inner));
    }
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        return owner_of(sc.trace_id());
    }
    None
}

/// `value` as text, for messages and comparisons.
fn text(value: &Value) -> String {
    value.as_str().into_owned()
}
