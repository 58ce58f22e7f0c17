//! OTLP exporters for spans, metrics and logs, configured from one signal's
//! [`OtlpSignal`] settings.
//!
//! gRPC exporters open their channel lazily, so building one never waits for
//! the collector; they must be built inside a tokio runtime context, the one
//! that later drives their exports.
//!
//! Spans over gRPC use Baton's own encoder ([`GrpcSpanExporter`]); the rest
//! is `opentelemetry-otlp`'s.

mod encode;
mod grpc;
mod retry;

pub use grpc::GrpcSpanExporter;

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, MetricExporter, RetryPolicy, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;

use crate::config::{Compression, OtlpSignal, Protocol};

/// An OTLP span exporter for `signal` (gRPC or HTTP/protobuf).
pub fn span_exporter(signal: &OtlpSignal) -> Result<OtlpSpanExporter, ExporterBuildError> {
    Ok(match signal.protocol {
        Protocol::Grpc => OtlpSpanExporter::Grpc(
            GrpcSpanExporter::new(
                &signal.endpoint,
                signal.timeout,
                metadata(signal)?,
                signal.compression == Compression::Gzip,
            )
            .map_err(|error| {
                ExporterBuildError::InvalidConfiguration(format!(
                    "endpoint {:?}: {error}",
                    signal.endpoint
                ))
            })?,
        ),
        Protocol::HttpProtobuf => {
            OtlpSpanExporter::Http(http(SpanExporter::builder().with_http(), signal).build()?)
        }
    })
}

/// The span exporter of one protocol.
#[derive(Debug)]
pub enum OtlpSpanExporter {
    /// OTLP/gRPC, encoded by Baton.
    Grpc(GrpcSpanExporter),
    /// OTLP/HTTP with protobuf, `opentelemetry-otlp`'s.
    Http(SpanExporter),
}

impl OtlpSpanExporter {
    /// Retries transient failures of one export for at most `retry_for`
    /// (gRPC; over HTTP, `opentelemetry-otlp` retries up to
    /// [`HTTP_RETRIES`] times with the same backoff).
    #[must_use]
    pub fn retrying_for(self, retry_for: std::time::Duration) -> Self {
        match self {
            Self::Grpc(exporter) => Self::Grpc(exporter.retrying_for(retry_for)),
            http @ Self::Http(_) => http,
        }
    }
}

/// How often `opentelemetry-otlp`'s exporters (OTLP/HTTP, and logs and
/// metrics over gRPC) retry one export; each export is still bounded by its
/// processor's export timeout.
pub const HTTP_RETRIES: usize = 8;

/// The retry policy given to `opentelemetry-otlp`'s exporters: Baton's
/// backoff, with jitter.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(HTTP_RETRIES)
        .with_initial_delay(retry::INITIAL_BACKOFF)
        .with_max_delay(retry::MAX_BACKOFF)
        .with_max_jitter(retry::INITIAL_BACKOFF / 2)
}

impl opentelemetry_sdk::trace::SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Self::Grpc(exporter) => exporter.export(batch).await,
            Self::Http(exporter) => exporter.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        match self {
            Self::Grpc(exporter) => exporter.shutdown_with_timeout(timeout),
            Self::Http(exporter) => exporter.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Grpc(exporter) => exporter.set_resource(resource),
            Self::Http(exporter) => exporter.set_resource(resource),
        }
    }
}

/// An OTLP metric exporter for `signal`, with cumulative temporality (the
/// OTLP default, which collectors and Prometheus back-ends expect).
pub fn metric_exporter(signal: &OtlpSignal) -> Result<MetricExporter, ExporterBuildError> {
    match signal.protocol {
        Protocol::Grpc => tonic(MetricExporter::builder().with_tonic(), signal)?.build(),
        Protocol::HttpProtobuf => http(MetricExporter::builder().with_http(), signal).build(),
    }
}

/// An OTLP log exporter for `signal`.
pub fn log_exporter(signal: &OtlpSignal) -> Result<LogExporter, ExporterBuildError> {
    match signal.protocol {
        Protocol::Grpc => tonic(LogExporter::builder().with_tonic(), signal)?.build(),
        Protocol::HttpProtobuf => http(LogExporter::builder().with_http(), signal).build(),
    }
}

fn tonic<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    signal: &OtlpSignal,
) -> Result<B, ExporterBuildError> {
    let mut builder = builder
        .with_endpoint(signal.endpoint.clone())
        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
        .with_timeout(signal.timeout)
        .with_metadata(metadata(signal)?)
        .with_retry_policy(retry_policy());
    if signal.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    Ok(builder)
}

/// `signal`'s headers as gRPC metadata.
fn metadata(signal: &OtlpSignal) -> Result<MetadataMap, ExporterBuildError> {
    let mut headers = HeaderMap::new();
    for (name, value) in signal.headers.iter() {
        // The configuration already checked names and values as HTTP
        // headers; these conversions cannot fail on what it accepts.
        let invalid = || {
            ExporterBuildError::InvalidConfiguration(format!(
                "header {name:?}: not valid gRPC metadata"
            ))
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        headers.insert(name, value);
    }
    Ok(MetadataMap::from_headers(headers))
}

fn http<B: WithExportConfig + WithHttpConfig>(builder: B, signal: &OtlpSignal) -> B {
    let headers: HashMap<String, String> = signal
        .headers
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let mut builder = builder
        .with_endpoint(signal.endpoint.clone())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(signal.timeout)
        .with_headers(headers)
        .with_retry_policy(retry_policy());
    if signal.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder
}
