//! Baton exporters.
//!
//! - [`config`]: the SDK configuration the standard `OTEL_*` environment
//!   variables describe ([`Config::from_env`]), read exactly as the
//!   OpenTelemetry specification says, every malformed value reported as a
//!   [`ConfigWarning`](config::ConfigWarning) and replaced by its default,
//!   printable with header values redacted, and convertible to the
//!   `opentelemetry_sdk` sampler and resource.
//!
//! # Example
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
//! assert_eq!(config.bsp.max_queue_size, 2048, "malformed, so the default");
//! assert_eq!(config.warnings[0].variable, "OTEL_BSP_MAX_QUEUE_SIZE");
//! assert!(config.to_string().contains("api-key=***"));
//! assert!(!config.to_string().contains("s3cr3t"));
//!
//! let resource = opentelemetry_sdk::Resource::from(&config.resource);
//! let sampler = opentelemetry_sdk::trace::Sampler::from(&config.sampler);
//! # let _ = (resource, sampler);
//! ```

pub mod config;

pub use config::Config;
