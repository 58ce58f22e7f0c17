//! What Baton ships telemetry with:
//!
//! - [`config`]: the SDK configuration the standard `OTEL_*` environment
//!   variables describe ([`Config::from_env`]), read exactly as the
//!   OpenTelemetry specification says, every malformed value reported as a
//!   [`ConfigWarning`](config::ConfigWarning) and replaced by its default,
//!   printable with header values redacted, and convertible to the
//!   `opentelemetry_sdk` sampler and resource.
//! - [`pipeline`]: OTLP export of spans, metrics and logs built from a
//!   [`Config`], that never blocks the application and counts every loss.
//! - [`ConsoleSpanExporter`] and [`ConsoleMetricExporter`]: telemetry drawn in
//!   the terminal when no collector is configured.
//!
//! ## Configuration example
//!
//! ```
//! use baton_exporters::Config;
//!
//! let config = Config::from_vars(|name| {
//!     let value = match name {
//!         "OTEL_SERVICE_NAME" => "checkout",
//!         "OTEL_EXPORTER_OTLP_ENDPOINT" => "https://collector.example:4318",
//!         "OTEL_EXPORTER_OTLP_HEADERS" => "api-key=s3cr3t",
//!         "OTEL_BSP_MAX_QUEUE_SIZE" => "-1",
//!         _ => return None,
//!     };
//!     Some(value.to_owned())
//! });
//!
//! assert_eq!(config.otlp.traces.endpoint, "https://collector.example:4318/v1/traces");
//! assert_eq!(config.bsp.max_queue_size, 65_536, "malformed, so the default");
//! assert_eq!(config.warnings[0].variable, "OTEL_BSP_MAX_QUEUE_SIZE");
//! assert!(config.to_string().contains("api-key=***"));
//! assert!(!config.to_string().contains("s3cr3t"));
//!
//! let resource = opentelemetry_sdk::Resource::from(&config.resource);
//! let sampler = opentelemetry_sdk::trace::Sampler::from(&config.sampler);
//! # let _ = (resource, sampler);
//! ```

//!
//! ## Console exporter
//!
//! With no collector endpoint, telemetry goes to the terminal:
//! [`ConsoleSpanExporter`] draws each finished trace as a tree of spans with
//! duration bars, status and key attributes, and [`ConsoleMetricExporter`]
//! prints a RED table (requests, errors, p50/p95/p99) per service and route at
//! each interval of a `PeriodicReader`.
//!
//! ```
//! use baton_exporters::{ConsoleMetricExporter, ConsoleSpanExporter};
//! use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use std::time::Duration;
//!
//! let tracer_provider = SdkTracerProvider::builder()
//!     .with_simple_exporter(ConsoleSpanExporter::new())
//!     .build();
//! let reader = PeriodicReader::builder(ConsoleMetricExporter::new())
//!     .with_interval(Duration::from_secs(10))
//!     .build();
//! let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
//! # let _ = (tracer_provider.shutdown(), meter_provider.shutdown());
//! ```

pub mod config;
mod console;
pub mod pipeline;

pub use config::Config;
pub use console::{ConsoleMetricExporter, ConsoleSpanExporter, KEY_ATTRIBUTES, plain_trees};
