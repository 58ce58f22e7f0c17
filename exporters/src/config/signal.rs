//! The variable names of each signal, so per-signal rules are written once.

/// The names one signal's settings are read from.
pub(crate) struct SignalVars {
    /// `traces`, `metrics` or `logs`, for display.
    pub(crate) name: &'static str,
    pub(crate) exporter: &'static str,
    pub(crate) endpoint: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) headers: &'static str,
    pub(crate) timeout: &'static str,
    pub(crate) compression: &'static str,
    /// Appended to the generic endpoint for OTLP/HTTP.
    pub(crate) http_path: &'static str,
}

/// The generic `OTEL_EXPORTER_OTLP_*` names, which every signal falls back
/// to (`name`, `exporter` and `http_path` are not used for it).
pub(crate) const GENERIC: SignalVars = SignalVars {
    name: "",
    exporter: "",
    endpoint: "OTEL_EXPORTER_OTLP_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_COMPRESSION",
    http_path: "",
};

/// Traces, metrics and logs, in that order.
pub(crate) const ALL: [SignalVars; 3] = [
    SignalVars {
        name: "traces",
        exporter: "OTEL_TRACES_EXPORTER",
        endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        http_path: "v1/traces",
    },
    SignalVars {
        name: "metrics",
        exporter: "OTEL_METRICS_EXPORTER",
        endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        http_path: "v1/metrics",
    },
    SignalVars {
        name: "logs",
        exporter: "OTEL_LOGS_EXPORTER",
        endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        http_path: "v1/logs",
    },
];
