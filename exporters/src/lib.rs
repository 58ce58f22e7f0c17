//! Baton exporters.
//!
//! # Console exporter
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

mod console;

pub use console::{ConsoleMetricExporter, ConsoleSpanExporter};
