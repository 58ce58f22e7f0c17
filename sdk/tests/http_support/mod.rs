//! What the HTTP server and client tests share: in-memory telemetry and a
//! real axum server on 127.0.0.1.

#![allow(dead_code, reason = "each test crate uses part of it")]

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt as _;
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Tracer and meter providers exporting to memory; spans export as they end.
pub(crate) struct Telemetry {
    pub(crate) tracer_provider: SdkTracerProvider,
    pub(crate) meter_provider: SdkMeterProvider,
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
}

/// One histogram data point.
#[derive(Debug)]
pub(crate) struct Point {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) count: u64,
    pub(crate) bounds: Vec<f64>,
}

impl Telemetry {
    pub(crate) fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        Telemetry {
            tracer_provider: SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build(),
            meter_provider: SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics.clone()).build())
                .build(),
            spans,
            metrics,
        }
    }

    pub(crate) fn spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().expect("spans")
    }

    /// The one finished span named `name`.
    pub(crate) fn span(&self, name: &str) -> SpanData {
        let mut found: Vec<_> = self
            .spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "spans named {name:?}: {found:#?}");
        found.remove(0)
    }

    fn collect(&self) -> Vec<opentelemetry_sdk::metrics::data::ResourceMetrics> {
        self.metrics.reset();
        self.meter_provider.force_flush().expect("flush");
        self.metrics.get_finished_metrics().expect("metrics")
    }

    /// Data points of histogram `name`, attributes sorted by key.
    pub(crate) fn histogram(&self, name: &str) -> Vec<Point> {
        let mut points = Vec::new();
        for rm in self.collect() {
            for metric in rm.scope_metrics().flat_map(|s| s.metrics()) {
                if metric.name() != name {
                    continue;
                }
                assert_eq!(metric.unit(), "s");
                let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                    panic!("{name} is not an f64 histogram");
                };
                points.extend(h.data_points().map(|p| Point {
                    attributes: sorted(p.attributes()),
                    count: p.count(),
                    bounds: p.bounds().collect(),
                }));
            }
        }
        points
    }

    /// Data points of up-down counter `name`: (sorted attributes, value).
    pub(crate) fn counter(&self, name: &str) -> Vec<(Vec<KeyValue>, i64)> {
        let mut points = Vec::new();
        for rm in self.collect() {
            for metric in rm.scope_metrics().flat_map(|s| s.metrics()) {
                if metric.name() != name {
                    continue;
                }
                let AggregatedMetrics::I64(MetricData::Sum(sum)) = metric.data() else {
                    panic!("{name} is not an i64 sum");
                };
                points.extend(
                    sum.data_points()
                        .map(|p| (sorted(p.attributes()), p.value())),
                );
            }
        }
        points
    }
}

pub(crate) fn sorted<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Vec<KeyValue> {
    let mut all: Vec<KeyValue> = attributes.cloned().collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    all
}

/// `kvs` as sorted attributes, for comparing with [`sorted`] ones.
pub(crate) fn attrs<const N: usize>(kvs: [(&'static str, Value); N]) -> Vec<KeyValue> {
    sorted(
        kvs.into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect::<Vec<_>>()
            .iter(),
    )
}

/// The value of attribute `key` of `span`.
pub(crate) fn attr(span: &SpanData, key: &'static str) -> Option<Value> {
    let key = Key::from_static_str(key);
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
}

/// A real axum server on 127.0.0.1, port picked by the OS.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Without it each response waits for a delayed ACK.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("server task");
    }
}
