//! Arbitrary values for the `OTEL_*` variables Baton reads: reading the
//! configuration never panics (a bad value is a warning and the default),
//! and printing it never shows a header value.

#![no_main]

use std::collections::HashMap;

use baton_exporters::Config;
use libfuzzer_sys::fuzz_target;

/// The variables, one value per input line in this order.
const NAMES: [&str; 24] = [
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_PROPAGATORS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: HashMap<&str, String> = NAMES
        .iter()
        .copied()
        .zip(text.split('\n').map(str::to_owned))
        .collect();
    let config = Config::from_vars(|name| vars.get(name).cloned());
    let _ = config.propagator();
    let shown = config.to_string();
    for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
        let Some(headers) = vars.get(name) else { continue };
        for value in headers.split(',').filter_map(|pair| pair.split_once('=')) {
            let value = value.1.trim();
            // Only values long enough not to appear in the rest by chance.
            if value.len() >= 12 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                assert!(!shown.contains(value), "{name} value shown: {shown}");
            }
        }
    }
});
