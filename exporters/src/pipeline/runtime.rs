//! Metric exporters that run on a runtime of their own.
//!
//! `opentelemetry_sdk`'s `PeriodicReader` calls its exporter from a plain
//! background thread. The OTLP exporters need a tokio runtime; borrowing the
//! application's would deadlock a `current_thread` application blocked in
//! `shutdown()`. [`OwnRuntime`] gives them a private current-thread runtime
//! instead, and counts what they deliver. (Spans and log records need no
//! such wrapper: Baton's batch processors export on their own runtime.)

use std::future::Future;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tokio::runtime::Runtime;

use super::stats::PipelineStats;

/// An exporter together with the runtime its futures run on.
#[derive(Debug)]
pub(crate) struct OwnRuntime<E> {
    /// Always `Some` until dropped.
    runtime: Option<Runtime>,
    inner: E,
    stats: PipelineStats,
}

impl<E> OwnRuntime<E> {
    /// Wraps `inner`, built in `runtime`'s context.
    pub(crate) fn new(runtime: Runtime, inner: E, stats: PipelineStats) -> Self {
        Self {
            runtime: Some(runtime),
            inner,
            stats,
        }
    }
}

impl<E> Drop for OwnRuntime<E> {
    fn drop(&mut self) {
        // The last meter or instrument of a provider may be dropped inside
        // the application's runtime (a snapshot replaced after a second
        // setup, say), where a runtime may not be dropped by blocking.
        // Nothing runs on this one between exports: no need to wait.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl<E: Sync> OwnRuntime<E> {
    /// Runs `future` to completion on the private runtime. A thread that is
    /// itself inside a tokio runtime may not block on another one, so from
    /// there the work moves to a short-lived scoped thread.
    fn run<F: Future<Output = OTelSdkResult> + Send>(&self, future: F) -> OTelSdkResult {
        let Some(runtime) = &self.runtime else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|_| {
                    Err(OTelSdkError::InternalFailure(
                        "exporter panicked".to_owned(),
                    ))
                })
        })
    }

    fn count(&self, items: usize, result: OTelSdkResult) -> OTelSdkResult {
        match &result {
            Ok(()) => self.stats.add_exported(items),
            Err(error) => self.stats.add_failed(items, error),
        }
        result
    }
}

impl<E: PushMetricExporter> PushMetricExporter for OwnRuntime<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        // Counted per export: one export carries every metric stream.
        let result = self.run(self.inner.export(metrics));
        std::future::ready(self.count(1, result))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
