//! [`ConsoleMetricExporter`]: a RED (rate, errors, duration) table per service
//! and route, built from the semantic conventions' duration histograms.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

use super::{Style, Writer, service_name, stdout_writer, truncate};

/// The duration histograms a RED row is built from, with the row's kind.
const RED_HISTOGRAMS: [(&str, &str); 4] = [
    ("http.server.request.duration", "http server"),
    ("http.client.request.duration", "http client"),
    ("rpc.server.call.duration", "rpc server"),
    ("rpc.client.call.duration", "rpc client"),
];

/// Longest route shown before it is cut, so one odd route cannot widen the table.
const MAX_ROUTE: usize = 48;

/// A [`PushMetricExporter`] printing a RED table at each collection; pair it
/// with a `PeriodicReader`.
///
/// One row per service, kind (HTTP or RPC, server or client) and route: the
/// HTTP method and `http.route` for servers, the method and `server.address`
/// for HTTP clients, `rpc.method` for RPC. Columns: requests, rate, errors
/// (requests recorded with `error.type`), p50/p95/p99 estimated from the
/// histogram buckets by linear interpolation, and the mean.
///
/// ```text
/// RED · interval 10.00 s
/// SERVICE   KIND         ROUTE                     REQS  REQ/S  ERRORS  ERR%  P50 ms  P95 ms  P99 ms  MEAN ms
/// checkout  http server  GET /orders/{id}           100  10.00       5   5.0    5.00   25.00  300.00    26.00
/// checkout  rpc client   payments.Payments/Charge     2   0.20       0   0.0   10.00   30.00   30.00    20.00
/// ```
///
/// The exporter asks for **delta** temporality: each table then covers one
/// interval, the rate is simply requests divided by it, and percentiles
/// describe recent traffic rather than everything since start. Intervals
/// without requests print nothing.
pub struct ConsoleMetricExporter {
    writer: Mutex<Writer>,
    style: Style,
    shut_down: AtomicBool,
}

impl ConsoleMetricExporter {
    /// An exporter writing to stdout, colored when stdout is a terminal and
    /// `NO_COLOR` is unset.
    pub fn new() -> Self {
        let (writer, color) = stdout_writer();
        Self {
            writer: Mutex::new(writer),
            style: Style { color },
            shut_down: AtomicBool::new(false),
        }
    }

    /// Writes to `writer` instead of stdout, uncolored unless
    /// [`with_color`](Self::with_color) is called afterwards.
    pub fn with_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        *self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Box::new(writer);
        self.style.color = false;
        self
    }

    /// Turns ANSI color on or off.
    pub fn with_color(mut self, color: bool) -> Self {
        self.style.color = color;
        self
    }

    fn export_sync(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let service = service_name(metrics.resource());
        let mut rows = BTreeMap::new();
        let mut interval = None;
        for metric in metrics.scope_metrics().flat_map(|s| s.metrics()) {
            let Some((_, kind)) = RED_HISTOGRAMS.iter().find(|(n, _)| *n == metric.name()) else {
                continue;
            };
            let scale = to_ms(metric);
            let span = match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    add_points(&mut rows, &service, kind, scale, h, |v| v)
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    add_points(&mut rows, &service, kind, scale, h, |v| v as f64)
                }
                AggregatedMetrics::I64(MetricData::Histogram(h)) => {
                    add_points(&mut rows, &service, kind, scale, h, |v| v as f64)
                }
                // Other shapes (say, an exponential histogram view) are not read.
                _ => None,
            };
            interval = interval.max(span);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let table = render_table(&rows, interval, self.style);
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer
            .write_all(table.as_bytes())
            .and_then(|()| writer.flush())
            .map_err(|err| OTelSdkError::InternalFailure(format!("console exporter: {err}")))
    }
}

/// Rows are keyed, and so sorted, by service, kind and route.
type Rows = BTreeMap<(String, &'static str, String), Row>;

/// One service/kind/route, merged over its data points (status codes and
/// other attributes differ between points).
#[derive(Debug, Default)]
struct Row {
    count: u64,
    errors: u64,
    /// Sum of durations, in milliseconds.
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    /// Bucket bounds in milliseconds; points with other bounds cannot be merged.
    bounds: Vec<f64>,
    buckets: Vec<u64>,
    /// False once points with different bounds met, leaving percentiles unknown.
    mergeable: bool,
}

/// Adds `histogram`'s points to `rows`; returns the interval it covers when
/// its temporality is delta.
fn add_points<T: Copy>(
    rows: &mut Rows,
    service: &str,
    kind: &'static str,
    scale: f64,
    histogram: &Histogram<T>,
    to_f64: fn(T) -> f64,
) -> Option<Duration> {
    // An empty point (an idle route under cumulative temporality, say) gets no row.
    for point in histogram.data_points().filter(|p| p.count() > 0) {
        let key = (service.to_owned(), kind, route(kind, point));
        let row = rows.entry(key).or_insert_with(|| Row {
            mergeable: true,
            ..Row::default()
        });
        row.add(point, scale, to_f64);
    }
    (histogram.temporality() == Temporality::Delta)
        .then(|| histogram.time().duration_since(histogram.start_time()).ok())
        .flatten()
}

impl Row {
    fn add<T: Copy>(&mut self, point: &HistogramDataPoint<T>, scale: f64, to_f64: fn(T) -> f64) {
        let count = point.count();
        if point.attributes().any(|kv| kv.key.as_str() == "error.type") {
            self.errors += count;
        }
        let bounds: Vec<f64> = point.bounds().map(|b| b * scale).collect();
        let buckets: Vec<u64> = point.bucket_counts().collect();
        if self.count == 0 {
            self.bounds = bounds;
            self.buckets = buckets;
        } else if bounds == self.bounds && buckets.len() == self.buckets.len() {
            for (total, n) in self.buckets.iter_mut().zip(buckets) {
                *total += n;
            }
        } else {
            self.mergeable = false;
        }
        self.count += count;
        self.sum += to_f64(point.sum()) * scale;
        let min = point.min().map(|v| to_f64(v) * scale);
        let max = point.max().map(|v| to_f64(v) * scale);
        self.min = match (self.min, min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The `q` quantile (0..=1), interpolated linearly inside its bucket and
    /// clamped to the recorded min and max.
    fn quantile(&self, q: f64) -> Option<f64> {
        if !self.mergeable || self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut before = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((before + n) as f64) < rank {
                before += n;
                continue;
            }
            // The first bucket starts at the minimum (or zero) and the
            // overflow bucket ends at the maximum: the bounds say nothing there.
            let lower = match i.checked_sub(1).and_then(|j| self.bounds.get(j)) {
                Some(&bound) => bound,
                None => self.min.unwrap_or(0.0),
            };
            let upper = match self.bounds.get(i) {
                Some(&bound) => bound,
                None => self.max.unwrap_or(lower),
            };
            let estimate = lower + (upper - lower) * ((rank - before as f64) / n as f64);
            let estimate = self.min.map_or(estimate, |min| estimate.max(min));
            return Some(self.max.map_or(estimate, |max| estimate.min(max)));
        }
        None
    }
}

/// The factor from the histogram's unit to milliseconds; the conventions
/// record seconds, so an unknown unit is taken as seconds.
fn to_ms(metric: &Metric) -> f64 {
    match metric.unit() {
        "ms" => 1.0,
        "us" | "µs" => 1e-3,
        "ns" => 1e-6,
        _ => 1e3,
    }
}

/// The route column of `point`.
fn route<T>(kind: &str, point: &HistogramDataPoint<T>) -> String {
    let get = |key: &str| {
        point
            .attributes()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv: &KeyValue| kv.value.as_str().into_owned())
    };
    let parts = match kind {
        "http server" => [get("http.request.method"), get("http.route")],
        "http client" => [get("http.request.method"), get("server.address")],
        _ => [get("rpc.method"), None],
    };
    let route = parts.into_iter().flatten().collect::<Vec<_>>().join(" ");
    if route.is_empty() {
        "-".to_owned()
    } else {
        truncate(&route, MAX_ROUTE).into_owned()
    }
}

/// The whole table: a title line, a header and one line per row.
fn render_table(rows: &Rows, interval: Option<Duration>, style: Style) -> String {
    let seconds = interval.map(|i| i.as_secs_f64()).filter(|s| *s > 0.0);
    let mut lines: Vec<[String; 11]> = vec![
        [
            "SERVICE", "KIND", "ROUTE", "REQS", "REQ/S", "ERRORS", "ERR%", "P50 ms", "P95 ms",
            "P99 ms", "MEAN ms",
        ]
        .map(str::to_owned),
    ];
    let ms = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"));
    for ((service, kind, route), row) in rows {
        let count = row.count as f64;
        lines.push([
            service.clone(),
            (*kind).to_owned(),
            route.clone(),
            row.count.to_string(),
            seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.2}", count / s)),
            row.errors.to_string(),
            format!("{:.1}", 100.0 * row.errors as f64 / count.max(1.0)),
            ms(row.quantile(0.50)),
            ms(row.quantile(0.95)),
            ms(row.quantile(0.99)),
            ms((row.count > 0).then(|| row.sum / count)),
        ]);
    }
    let mut widths = [0; 11];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut out = match seconds {
        Some(s) => format!("RED · interval {s:.2} s\n"),
        None => "RED · cumulative\n".to_owned(),
    };
    for (n, line) in lines.iter().enumerate() {
        let mut text = String::new();
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            // Text columns align left, numbers right.
            if i < 3 {
                text.push_str(&format!("{cell:<width$}"));
            } else {
                text.push_str(&format!("{cell:>width$}"));
            }
        }
        let text = text.trim_end();
        let has_errors = n > 0 && line[5] != "0";
        match (n, has_errors) {
            (0, _) => style.paint(&mut out, Style::BOLD, text),
            (_, true) => style.paint(&mut out, Style::RED, text),
            _ => out.push_str(text),
        }
        out.push('\n');
    }
    out
}

impl Default for ConsoleMetricExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleMetricExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleMetricExporter")
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl PushMetricExporter for ConsoleMetricExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Rendering is synchronous and cheap, so the future is ready at once.
        std::future::ready(self.export_sync(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::Release);
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Delta
    }
}
