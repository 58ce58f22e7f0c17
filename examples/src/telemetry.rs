//! Telemetry setup for the `demo` binary, where all four services share one
//! process: console exporters for spans and metrics that draw each request
//! as one tree across the services, the propagators, and correlated logs.
//! A service running on its own uses `baton::init()` instead
//! ([`crate::service_telemetry`]).

use std::time::Duration;

use baton::logs::{CorrelationLayer, Format, otel_layer};
use baton_exporters::{ConsoleMetricExporter, ConsoleSpanExporter};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps the providers alive; flushes and shuts them down when dropped, so
/// the last traces and the last RED table are printed.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

/// Installs global tracer and meter providers exporting to the console every
/// `interval`, the propagators from `OTEL_PROPAGATORS` (W3C Trace Context and
/// Baggage by default), and a `tracing` subscriber writing human log lines
/// with correlation ids to stdout. The service is `OTEL_SERVICE_NAME`, or
/// `default_service` without it.
///
/// # Panics
///
/// If a global `tracing` subscriber is already installed: this is startup.
pub fn init(default_service: &str, interval: Duration) -> Telemetry {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service.to_owned());
    let resource = Resource::builder().with_service_name(service).build();

    // Batching keeps export off the request path; spans are drawn once
    // their trace's root has ended, whichever batch brings it.
    let config = BatchConfigBuilder::default()
        .with_scheduled_delay(interval)
        .build();
    let spans = BatchSpanProcessor::builder(Stitched(ConsoleSpanExporter::new()))
        .with_batch_config(config)
        .build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(spans)
        .with_resource(resource.clone())
        .build();
    let reader = PeriodicReader::builder(ConsoleMetricExporter::new())
        .with_interval(interval)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();

    // Baton's middleware reads these globals when built, so install them first.
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    // For OpenTelemetry code outside Baton; Baton's middleware reads
    // `OTEL_PROPAGATORS` the same way.
    opentelemetry::global::set_text_map_propagator(baton::propagators::from_env());

    let subscriber = tracing_subscriber::registry()
        .with(
            CorrelationLayer::new()
                .format(Format::Human)
                .baggage_keys(["tenant", "user"]),
        )
        .with(otel_layer(tracer_provider.tracer("baton-examples")))
        // For the whole subscriber: the HTTP/2 and gRPC libraries' debug and
        // trace spans would otherwise become spans in every trace tree.
        .with(LevelFilter::INFO);
    tracing::subscriber::set_global_default(subscriber)
        .expect("no global tracing subscriber is installed before telemetry::init");

    Telemetry {
        tracer_provider,
        meter_provider,
    }
}

impl Telemetry {
    /// Exports the finished spans now: each trace whose root has ended is drawn.
    pub fn flush_traces(&self) {
        if let Err(err) = self.tracer_provider.force_flush() {
            eprintln!("flushing traces: {err}");
        }
    }

    /// Collects and prints the RED table now.
    pub fn flush_metrics(&self) {
        if let Err(err) = self.meter_provider.force_flush() {
            eprintln!("flushing metrics: {err}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(err) = self.tracer_provider.shutdown() {
            eprintln!("shutting down traces: {err}");
        }
        if let Err(err) = self.meter_provider.shutdown() {
            eprintln!("shutting down metrics: {err}");
        }
    }
}

/// Marks every parent as local before `E` sees the spans.
///
/// The console exporter starts a tree at each span whose parent is remote,
/// because in a real deployment that parent is drawn by another process.
/// When all services share this process's tracer provider, the "remote"
/// parent is exported here too, and treating it as local joins each
/// request's hops into one tree.
#[derive(Debug)]
struct Stitched<E>(E);

impl<E: SpanExporter> SpanExporter for Stitched<E> {
    fn export(&self, mut batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        for span in &mut batch {
            span.parent_span_is_remote = false;
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
