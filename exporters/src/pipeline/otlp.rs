//! OTLP exporters for spans, metrics and logs, configured from one signal's
//! [`OtlpSignal`] settings.
//!
//! gRPC exporters open their channel lazily, so building one never waits for
//! the collector; they must be built inside a tokio runtime context, the one
//! that later drives their exports.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, MetricExporter, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};

use crate::config::{Compression, OtlpSignal, Protocol};

/// An OTLP span exporter for `signal` (gRPC or HTTP/protobuf).
pub fn span_exporter(signal: &OtlpSignal) -> Result<SpanExporter, ExporterBuildError> {
    match signal.protocol {
        Protocol::Grpc => tonic(SpanExporter::builder().with_tonic(), signal)?.build(),
        Protocol::HttpProtobuf => http(SpanExporter::builder().with_http(), signal).build(),
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
    let metadata = MetadataMap::from_headers(headers);
    let mut builder = builder
        .with_endpoint(signal.endpoint.clone())
        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
        .with_timeout(signal.timeout)
        .with_metadata(metadata);
    if signal.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    Ok(builder)
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
        .with_headers(headers);
    if signal.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder
}
