//! Captured log records: `tracing` events bridged to OpenTelemetry log
//! records, each given to the capture whose context is current where it is
//! emitted.

use std::sync::OnceLock;

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

use super::{lock, owner};

/// One log record, with the correlation fields it was emitted with.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LogRecord {
    /// The severity (`tracing`'s level).
    pub severity: Option<Severity>,
    /// The target (the emitting module's path, unless given).
    pub target: Option<String>,
    /// The message.
    pub body: Option<String>,
    /// The trace of the span current when it was emitted.
    pub trace_id: Option<TraceId>,
    /// That span.
    pub span_id: Option<SpanId>,
    /// The request id current when it was emitted.
    pub request_id: Option<String>,
    /// The event's other fields, as `(name, value)` texts.
    pub attributes: Vec<(String, String)>,
}

impl LogRecord {
    /// The value of field `name`.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The processor of the shared logger provider.
#[derive(Debug)]
struct Router;

impl LogProcessor for Router {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        // Emitted synchronously where the event happens: the current
        // context is the code's.
        let Some(owner) = Context::map_current(owner) else {
            return;
        };
        let trace = record.trace_context();
        let captured = LogRecord {
            severity: record.severity_number(),
            target: record.target().map(|t| t.to_string()),
            body: record.body().map(any_text),
            trace_id: trace.map(|t| t.trace_id),
            span_id: trace.map(|t| t.span_id),
            request_id: crate::request_id::RequestId::current().map(|id| id.to_string()),
            attributes: record
                .attributes_iter()
                .map(|(k, v)| (k.to_string(), any_text(v)))
                .collect(),
        };
        lock(&owner.logs).push(captured);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn any_text(value: &AnyValue) -> String {
    match value {
        AnyValue::String(s) => s.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn provider() -> &'static SdkLoggerProvider {
    static PROVIDER: OnceLock<SdkLoggerProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        SdkLoggerProvider::builder()
            .with_log_processor(Router)
            .build()
    })
}

/// Makes the capture's log bridge the global `tracing` subscriber, for
/// events at `INFO` and above (libraries' debug chatter would drown the
/// code's own), unless one is set already (then [`log_layer`] is what to
/// add to it).
pub(super) fn install() {
    let subscriber = tracing_subscriber::registry()
        .with(log_layer())
        .with(tracing::level_filters::LevelFilter::INFO);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The `tracing` layer that hands log events to captures: add it to your
/// own subscriber when the test binary sets one (otherwise
/// [`Capture::start`](super::Capture::start) installs it).
#[must_use]
pub fn log_layer() -> OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger> {
    OpenTelemetryTracingBridge::new(provider())
}
