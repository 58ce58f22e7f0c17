//! Counters of what a pipeline did with its telemetry, shared between the
//! code that records spans, the export thread and whoever reads them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::metrics::Meter;

/// How often at most the "telemetry lost" warning is logged: one line tells
/// the operator; a line per dropped span would flood the very logs that the
/// pipeline is exporting.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A cheap, cloneable view of one pipeline's counters.
///
/// `exported` counts items the collector acknowledged, `dropped` items
/// refused because the queue was full (in items or bytes) or because they
/// were too large to export even alone (those also counted in `oversized`),
/// `failed` items whose export returned an error or timed out, after its
/// retries. Nothing is lost without being counted in `dropped`
/// or `failed`.
#[derive(Debug, Clone)]
pub struct PipelineStats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    signal: &'static str,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    oversized: AtomicU64,
    queued: AtomicUsize,
    max_queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_queued_bytes: AtomicUsize,
    created: Instant,
    /// Milliseconds since `created` of the last warning, plus one (0: never).
    last_warning: AtomicU64,
}

/// The counters of a [`PipelineStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Items delivered to the collector.
    pub exported: u64,
    /// Items dropped because the queue was full or because they were
    /// oversized.
    pub dropped: u64,
    /// Items whose export failed or timed out, after any retries.
    pub failed: u64,
    /// Of `dropped`, the items too large for an export request even alone.
    pub oversized: u64,
    /// Items waiting in the queue now.
    pub queued: usize,
    /// The largest number of items ever waiting in the queue at once.
    pub max_queued: usize,
    /// The estimated bytes of the items held now (queued or being exported).
    pub queued_bytes: usize,
    /// The most estimated bytes ever held at once.
    pub max_queued_bytes: usize,
}

impl StatsSnapshot {
    /// Whether every item handed to the pipeline so far was delivered.
    pub fn lost_nothing(&self) -> bool {
        self.dropped == 0 && self.failed == 0
    }
}

impl PipelineStats {
    /// Counters for one signal (`"spans"`, `"logs"`, `"metrics"`), the name
    /// used in metric names and warnings.
    pub(crate) fn new(signal: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                signal,
                exported: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                oversized: AtomicU64::new(0),
                queued: AtomicUsize::new(0),
                max_queued: AtomicUsize::new(0),
                queued_bytes: AtomicUsize::new(0),
                max_queued_bytes: AtomicUsize::new(0),
                created: Instant::now(),
                last_warning: AtomicU64::new(0),
            }),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = &self.inner;
        StatsSnapshot {
            exported: inner.exported.load(Ordering::Relaxed),
            dropped: inner.dropped.load(Ordering::Relaxed),
            failed: inner.failed.load(Ordering::Relaxed),
            oversized: inner.oversized.load(Ordering::Relaxed),
            queued: inner.queued.load(Ordering::Relaxed),
            max_queued: inner.max_queued.load(Ordering::Relaxed),
            queued_bytes: inner.queued_bytes.load(Ordering::Relaxed),
            max_queued_bytes: inner.max_queued_bytes.load(Ordering::Relaxed),
        }
    }

    /// Publishes the counters as observable counters on `meter`:
    /// `baton.exporter.<signal>.exported`, `.dropped`, `.failed` and
    /// `.oversized` (a part of `.dropped`), and the
    /// queue length as the gauge `baton.exporter.<signal>.queued`.
    pub fn register(&self, meter: &Meter) {
        let signal = self.inner.signal;
        let counters: [(&str, &str, Read); 4] = [
            ("exported", "delivered to the collector", |i| {
                i.exported.load(Ordering::Relaxed)
            }),
            (
                "dropped",
                "dropped because the export queue was full",
                |i| i.dropped.load(Ordering::Relaxed),
            ),
            ("failed", "lost because their export failed", |i| {
                i.failed.load(Ordering::Relaxed)
            }),
            (
                "oversized",
                "dropped as too large for an export request",
                |i| i.oversized.load(Ordering::Relaxed),
            ),
        ];
        for (outcome, description, read) in counters {
            let inner = Arc::clone(&self.inner);
            // The instrument lives as long as the meter provider keeps its
            // callback; the handle itself need not be kept.
            let _counter = meter
                .u64_observable_counter(format!("baton.exporter.{signal}.{outcome}"))
                .with_description(format!("Telemetry items ({signal}) {description}"))
                .with_callback(move |observer| observer.observe(read(&inner), &[]))
                .build();
        }
        let inner = Arc::clone(&self.inner);
        let _gauge = meter
            .u64_observable_gauge(format!("baton.exporter.{signal}.queued"))
            .with_description(format!("Telemetry items ({signal}) waiting for export"))
            .with_callback(move |observer| {
                let queued = inner.queued.load(Ordering::Relaxed);
                observer.observe(u64::try_from(queued).unwrap_or(u64::MAX), &[]);
            })
            .build();
    }

    /// Records the queue length just measured (the channel's own count, so
    /// never above its bound).
    pub(crate) fn set_queued(&self, queued: usize) {
        self.inner.queued.store(queued, Ordering::Relaxed);
        self.inner.max_queued.fetch_max(queued, Ordering::Relaxed);
    }

    /// Records the estimated bytes held just measured.
    pub(crate) fn set_queued_bytes(&self, bytes: usize) {
        self.inner.queued_bytes.store(bytes, Ordering::Relaxed);
        self.inner
            .max_queued_bytes
            .fetch_max(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_exported(&self, count: usize) {
        self.inner
            .exported
            .fetch_add(as_u64(count), Ordering::Relaxed);
    }

    pub(crate) fn add_dropped(&self, count: usize) {
        self.inner
            .dropped
            .fetch_add(as_u64(count), Ordering::Relaxed);
        self.warn_lost("dropped (export queue full)");
    }

    /// Counts items dropped because they were too large to export even
    /// alone (as dropped, and as oversized).
    pub(crate) fn add_oversized(&self, count: usize, bytes: usize, limit: usize) {
        self.inner
            .oversized
            .fetch_add(as_u64(count), Ordering::Relaxed);
        self.inner
            .dropped
            .fetch_add(as_u64(count), Ordering::Relaxed);
        self.warn_lost(&format!(
            "dropped (about {bytes} bytes, over the {limit}-byte request limit)"
        ));
    }

    pub(crate) fn add_failed(&self, count: usize, error: &dyn std::fmt::Display) {
        self.inner
            .failed
            .fetch_add(as_u64(count), Ordering::Relaxed);
        self.warn_lost(&format!("failed to export ({error})"));
    }

    /// Logs one warning per [`WARN_EVERY`] at most. A compare-exchange on the
    /// last warning time lets exactly one of many racing threads log.
    fn warn_lost(&self, what: &str) {
        let inner = &self.inner;
        let now = u64::try_from(inner.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_warning.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_add(1).saturating_sub(last) < every {
            return;
        }
        let stamp = now.saturating_add(1);
        if inner
            .last_warning
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let s = self.snapshot();
            tracing::warn!(
                signal = inner.signal,
                exported = s.exported,
                dropped = s.dropped,
                oversized = s.oversized,
                failed = s.failed,
                "telemetry {} {what}; further warnings suppressed for {}s",
                inner.signal,
                WARN_EVERY.as_secs()
            );
        }
    }
}

/// Reads one counter.
type Read = fn(&Inner) -> u64;

fn as_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}
