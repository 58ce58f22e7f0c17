//! Telemetry setup for the `demo` binary, where all four services share one
//! process: each service records to tracer and meter providers of its own,
//! with its own `service.name`, and all of them export to the console, where
//! each request is drawn as one tree across the services and each service
//! gets its RED table. Also the propagators and correlated logs.
//! A service running on its own uses `baton::init()` instead
//! ([`crate::service_telemetry`]).

use std::time::Duration;

use baton::logs::{CorrelatedFormat, otel_layer};
use baton_exporters::{ConsoleMetricExporter, ConsoleSpanExporter};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::Providers;

/// The demo's services, callers before the services they call.
pub const SERVICES: [&str; 4] = ["gateway", "orders", "inventory", "pricing"];

/// One service's providers.
struct Service {
    name: &'static str,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

/// Keeps the providers alive; flushes and shuts them down when dropped, so
/// the last traces and the last RED tables are printed.
pub struct Telemetry {
    /// In [`SERVICES`] order.
    services: Vec<Service>,
}

/// Sets up a tracer and a meter provider per service of [`SERVICES`], each
/// with that `service.name` and exporting to the console every `interval`;
/// the propagators from `OTEL_PROPAGATORS` (W3C Trace Context and Baggage by
/// default); and a `tracing` subscriber writing human log lines with
/// correlation ids to stdout. Nothing is installed as the global tracer or
/// meter provider: each service is given its own ([`Telemetry::providers`]).
///
/// # Panics
///
/// If a global `tracing` subscriber is already installed: this is startup.
pub fn init(interval: Duration) -> Telemetry {
    // One buffer for all services' spans, so a request is drawn as one tree
    // whichever services its spans come from.
    let spans = ConsoleSpanExporter::new();
    let services: Vec<Service> = SERVICES
        .iter()
        .map(|&name| {
            let resource = Resource::builder().with_service_name(name).build();
            // Batching keeps export off the request path; spans are drawn
            // once their trace's root has ended, whichever batch brings it.
            let config = BatchConfigBuilder::default()
                .with_scheduled_delay(interval)
                .build();
            let processor = BatchSpanProcessor::builder(Stitched(spans.share()))
                .with_batch_config(config)
                .build();
            let tracer_provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource.clone())
                .build();
            let reader = PeriodicReader::builder(ConsoleMetricExporter::new())
                .with_interval(interval)
                .build();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource)
                .build();
            Service {
                name,
                tracer_provider,
                meter_provider,
            }
        })
        .collect();
    // The handles given to the providers are what is left of `spans`.
    drop(spans);

    // For OpenTelemetry code outside Baton; Baton's middleware reads
    // `OTEL_PROPAGATORS` the same way.
    opentelemetry::global::set_text_map_propagator(baton::propagators::from_env());

    // `tracing` spans become spans of the service whose module made them.
    let mut otel_layers = Vec::new();
    for service in &services {
        let target = format!("baton_examples::{}", service.name);
        let layer = otel_layer(service.tracer_provider.tracer("baton-examples"))
            .with_filter(Targets::new().with_target(target, Level::INFO));
        otel_layers.push(layer);
    }
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(
                    CorrelatedFormat::new(tracing_subscriber::fmt::format())
                        .baggage_keys(["tenant", "user"]),
                ),
        )
        .with(otel_layers)
        // For the whole subscriber: the HTTP/2 and gRPC libraries' debug and
        // trace spans would otherwise become spans in every trace tree.
        .with(LevelFilter::INFO);
    tracing::subscriber::set_global_default(subscriber)
        .expect("no global tracing subscriber is installed before telemetry::init");

    Telemetry { services }
}

impl Telemetry {
    /// The providers of `service`, one of [`SERVICES`].
    ///
    /// # Panics
    ///
    /// If `service` is not one of them: the demo names its services itself.
    pub fn providers(&self, service: &str) -> Providers {
        let s = self
            .services
            .iter()
            .find(|s| s.name == service)
            .unwrap_or_else(|| panic!("{service:?} is not one of {SERVICES:?}"));
        Providers::new(&s.tracer_provider, &s.meter_provider)
    }

    /// Exports the finished spans now: each trace whose root has ended is drawn.
    pub fn flush_traces(&self) {
        // Called services first: a tree is drawn when its root (a gateway
        // span) arrives, so the spans below it must be waiting by then.
        for service in self.services.iter().rev() {
            if let Err(err) = service.tracer_provider.force_flush() {
                eprintln!("flushing {} traces: {err}", service.name);
            }
        }
    }

    /// Collects and prints the RED table of each service now.
    pub fn flush_metrics(&self) {
        for service in &self.services {
            if let Err(err) = service.meter_provider.force_flush() {
                eprintln!("flushing {} metrics: {err}", service.name);
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        for service in self.services.iter().rev() {
            if let Err(err) = service.tracer_provider.shutdown() {
                eprintln!("shutting down {} traces: {err}", service.name);
            }
        }
        for service in &self.services {
            if let Err(err) = service.meter_provider.shutdown() {
                eprintln!("shutting down {} metrics: {err}", service.name);
            }
        }
    }
}

/// Marks every parent as local before `E` sees the spans.
///
/// The console exporter starts a tree at each span whose parent is remote,
/// because in a real deployment that parent is drawn by another process.
/// When all services share this process and its console exporter, the
/// "remote" parent is exported here too, and treating it as local joins each
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
