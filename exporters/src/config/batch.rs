//! `OTEL_BSP_*` (the batch span processor), `OTEL_BLRP_*` (the batch log
//! record processor) and `OTEL_METRIC_EXPORT_*` (the periodic metric reader).

use std::fmt;
use std::time::Duration;

use super::env::Env;

/// Baton's default queue bound for both processors; see
/// [`Batch::max_queue_size`].
const DEFAULT_MAX_QUEUE_SIZE: usize = 65_536;

/// Baton's default byte bound for each processor's queue; see
/// [`Batch::max_queue_bytes`].
const DEFAULT_MAX_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// The default largest export request: the 4 MiB message limit of gRPC
/// servers (the OpenTelemetry Collector's and tonic's default); see
/// [`Batch::max_request_bytes`].
const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

const METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const METRIC_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";

/// The variables of one batch processor, and its defaults.
pub(crate) struct BatchVars {
    schedule_delay: &'static str,
    export_timeout: &'static str,
    max_queue_size: &'static str,
    max_export_batch_size: &'static str,
    max_queue_bytes: &'static str,
    max_request_bytes: &'static str,
    default: Batch,
}

/// `OTEL_BSP_*`, for spans.
pub(crate) const SPANS: BatchVars = BatchVars {
    schedule_delay: "OTEL_BSP_SCHEDULE_DELAY",
    export_timeout: "OTEL_BSP_EXPORT_TIMEOUT",
    max_queue_size: "OTEL_BSP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    max_queue_bytes: "BATON_BSP_MAX_QUEUE_BYTES",
    max_request_bytes: "BATON_BSP_MAX_REQUEST_BYTES",
    default: Batch::SPANS,
};

/// `OTEL_BLRP_*`, for log records.
pub(crate) const LOGS: BatchVars = BatchVars {
    schedule_delay: "OTEL_BLRP_SCHEDULE_DELAY",
    export_timeout: "OTEL_BLRP_EXPORT_TIMEOUT",
    max_queue_size: "OTEL_BLRP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    max_queue_bytes: "BATON_BLRP_MAX_QUEUE_BYTES",
    max_request_bytes: "BATON_BLRP_MAX_REQUEST_BYTES",
    default: Batch::LOGS,
};

/// A batch processor's settings: spans' from `OTEL_BSP_*`, log records' from
/// `OTEL_BLRP_*`; each processor has its own queue. `max_export_batch_size`
/// is never larger than `max_queue_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// `OTEL_BSP_SCHEDULE_DELAY` / `OTEL_BLRP_SCHEDULE_DELAY`: the delay
    /// between two exports (default 5 s for spans, 1 s for log records).
    pub schedule_delay: Duration,
    /// `OTEL_BSP_EXPORT_TIMEOUT` / `OTEL_BLRP_EXPORT_TIMEOUT`: the time one
    /// export may take (default 30 s).
    pub export_timeout: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE`: items buffered
    /// before new ones are dropped (Baton's default is 65,536, not the
    /// specification's 2048: a burst of 20,000 spans must arrive whole).
    /// Large items are bounded by [`max_queue_bytes`](Self::max_queue_bytes)
    /// as well.
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` / `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`:
    /// items per export (default 512). A batch is also cut short so that its
    /// request stays within [`max_request_bytes`](Self::max_request_bytes).
    pub max_export_batch_size: usize,
    /// `BATON_BSP_MAX_QUEUE_BYTES` / `BATON_BLRP_MAX_QUEUE_BYTES` (Baton's
    /// own): the bytes the queued items may take, counted with an estimate
    /// of each item's memory and encoded size; past it new items are dropped
    /// and counted, as past `max_queue_size`. Default 32 MiB: with the
    /// collector down, a queue of spans carrying large headers would
    /// otherwise grow to gigabytes before reaching `max_queue_size`.
    pub max_queue_bytes: usize,
    /// `BATON_BSP_MAX_REQUEST_BYTES` / `BATON_BLRP_MAX_REQUEST_BYTES`
    /// (Baton's own): the largest export request. Default 4 MiB, the message
    /// limit of gRPC servers (the OpenTelemetry Collector's default); a
    /// receiver refuses a larger request whole, losing every item in it.
    /// Batches are cut so that no request exceeds it, and an item too large
    /// to fit even alone is dropped and counted as
    /// [`oversized`](crate::pipeline::StatsSnapshot::oversized).
    pub max_request_bytes: usize,
}

impl Batch {
    /// The batch span processor's defaults.
    pub const SPANS: Batch = Batch {
        schedule_delay: Duration::from_secs(5),
        export_timeout: Duration::from_secs(30),
        max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
        max_export_batch_size: 512,
        max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
        max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
    };

    /// The batch log record processor's defaults: as for spans, but exported
    /// every second, as the specification has it.
    pub const LOGS: Batch = Batch {
        schedule_delay: Duration::from_secs(1),
        ..Batch::SPANS
    };

    pub(crate) fn read(env: &mut Env<'_>, vars: &BatchVars) -> Self {
        let default = vars.default;
        let max_queue_size = env
            .count(vars.max_queue_size)
            .unwrap_or(default.max_queue_size);
        let max_export_batch_size = match env.count(vars.max_export_batch_size) {
            Some(size) if size > max_queue_size => {
                env.warn(
                    vars.max_export_batch_size,
                    &size.to_string(),
                    format!(
                        "larger than the max queue size {max_queue_size}; using {max_queue_size}"
                    ),
                );
                max_queue_size
            }
            Some(size) => size,
            // The default only yields to a small queue: that is no mistake of
            // the user's, so no warning.
            None => default.max_export_batch_size.min(max_queue_size),
        };
        Self {
            schedule_delay: env
                .millis(vars.schedule_delay)
                .unwrap_or(default.schedule_delay),
            export_timeout: env
                .millis(vars.export_timeout)
                .unwrap_or(default.export_timeout),
            max_queue_size,
            max_export_batch_size,
            max_queue_bytes: env
                .count(vars.max_queue_bytes)
                .unwrap_or(default.max_queue_bytes),
            max_request_bytes: env
                .count(vars.max_request_bytes)
                .unwrap_or(default.max_request_bytes),
        }
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schedule_delay={}ms export_timeout={}ms max_queue_size={} max_export_batch_size={} \
             max_queue_bytes={} max_request_bytes={}",
            self.schedule_delay.as_millis(),
            self.export_timeout.as_millis(),
            self.max_queue_size,
            self.max_export_batch_size,
            self.max_queue_bytes,
            self.max_request_bytes
        )
    }
}

/// Periodic metric reader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricExport {
    /// `OTEL_METRIC_EXPORT_INTERVAL`: the time between two exports
    /// (default 60 s).
    pub interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`: the time one export may take
    /// (default 30 s).
    pub timeout: Duration,
}

impl Default for MetricExport {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

impl MetricExport {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let default = Self::default();
        Self {
            interval: env
                .millis(METRIC_EXPORT_INTERVAL)
                .unwrap_or(default.interval),
            timeout: env.millis(METRIC_EXPORT_TIMEOUT).unwrap_or(default.timeout),
        }
    }
}

impl fmt::Display for MetricExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interval={}ms timeout={}ms",
            self.interval.as_millis(),
            self.timeout.as_millis()
        )
    }
}
