//! `OTEL_BSP_*` (the batch span processor) and `OTEL_METRIC_EXPORT_*` (the
//! periodic metric reader).

use std::fmt;
use std::time::Duration;

use super::env::Env;

/// Baton's default queue bound; see [`Bsp::max_queue_size`].
const DEFAULT_MAX_QUEUE_SIZE: usize = 65_536;

const SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
const EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
const MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
const MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
const METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const METRIC_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";

/// Batch span processor settings, which the pipeline's batch log processor
/// uses too (Baton reads no `OTEL_BLRP_*` variables; each processor has its
/// own queue of this size). `max_export_batch_size` is never larger than
/// `max_queue_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bsp {
    /// `OTEL_BSP_SCHEDULE_DELAY`: the delay between two exports (default 5 s).
    pub schedule_delay: Duration,
    /// `OTEL_BSP_EXPORT_TIMEOUT`: the time one export may take (default 30 s).
    pub export_timeout: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans buffered before new ones are dropped
    /// (Baton's default is 65,536, not the specification's 2048: a burst of
    /// 20,000 spans must arrive whole, and 65,536 spans of a few hundred bytes
    /// each still bound the queue to tens of megabytes).
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export (default 512).
    pub max_export_batch_size: usize,
}

impl Default for Bsp {
    fn default() -> Self {
        Self {
            schedule_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            max_export_batch_size: 512,
        }
    }
}

impl Bsp {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let default = Self::default();
        let max_queue_size = env.count(MAX_QUEUE_SIZE).unwrap_or(default.max_queue_size);
        let max_export_batch_size = match env.count(MAX_EXPORT_BATCH_SIZE) {
            Some(size) if size > max_queue_size => {
                env.warn(
                    MAX_EXPORT_BATCH_SIZE,
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
            schedule_delay: env.millis(SCHEDULE_DELAY).unwrap_or(default.schedule_delay),
            export_timeout: env.millis(EXPORT_TIMEOUT).unwrap_or(default.export_timeout),
            max_queue_size,
            max_export_batch_size,
        }
    }
}

impl fmt::Display for Bsp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schedule_delay={}ms export_timeout={}ms max_queue_size={} max_export_batch_size={}",
            self.schedule_delay.as_millis(),
            self.export_timeout.as_millis(),
            self.max_queue_size,
            self.max_export_batch_size
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
