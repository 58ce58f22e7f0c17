//! Correlated log lines and `tracing` ↔ OpenTelemetry span bridging.
#![cfg(feature = "logs")]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io;
use std::sync::{Arc, Mutex, Once};

use baton::logs::{CorrelatedFormat, LogTracer, otel_layer};
use baton::request_id::RequestId;
use opentelemetry::trace::{Span as _, SpanContext, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use tracing::instrument::{Instrument, WithSubscriber};
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// Needs escaping in JSON and in human lines alike.
const TENANT: &str = "acme \"corp\"\nforged";

/// A `MakeWriter` keeping everything written, for the test to read.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for Capture {
    type Writer = Capture;

    fn make_writer(&self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every line, each of which must be a JSON object.
    fn json(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// Which of fmt's formats a test reads.
#[derive(Clone, Copy)]
enum Format {
    Json,
    Human,
}

/// Where a level filter (INFO) sits.
#[derive(Clone, Copy)]
enum Filtered {
    Nothing,
    /// On the whole subscriber: hides spans from both layers.
    Everything,
    /// On the correlation layer only.
    LogsOnly,
}

struct Harness {
    logs: Capture,
    spans: InMemorySpanExporter,
    tracer: SdkTracer,
    _default: tracing::dispatcher::DefaultGuard,
}

/// The recommended subscriber, default on this thread only (tests run in
/// parallel), capturing log lines and finished spans.
fn harness(format: Format, filtered: Filtered) -> Harness {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let tracer = provider.tracer("test");
    let logs = Capture::default();
    let keys = ["tenant", "user"];
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(logs.clone());
    // The user's own fmt configuration, kept: Baton only wraps the format.
    let correlation = match format {
        Format::Json => fmt
            .json()
            .map_event_format(|f| CorrelatedFormat::new(f).baggage_keys(keys))
            .boxed(),
        Format::Human => fmt
            .map_event_format(|f| CorrelatedFormat::new(f).baggage_keys(keys))
            .boxed(),
    };
    let registry = tracing_subscriber::registry();
    let dispatch = match filtered {
        Filtered::Nothing => registry
            .with(correlation)
            .with(otel_layer(tracer.clone()))
            .into(),
        Filtered::Everything => registry
            .with(correlation)
            .with(otel_layer(tracer.clone()))
            .with(LevelFilter::INFO)
            .into(),
        Filtered::LogsOnly => registry
            .with(correlation.with_filter(LevelFilter::INFO))
            .with(otel_layer(tracer.clone()))
            .into(),
    };
    Harness {
        logs,
        spans,
        tracer,
        _default: tracing::dispatcher::set_default(&dispatch),
    }
}

/// A request's context: an OpenTelemetry span, a request id, a logged and
/// an unlogged baggage entry.
fn request_cx(tracer: &SdkTracer) -> baton::Context {
    let cx = baton::Context::new().with_span(tracer.start("request"));
    let cx = baton::baggage::set_in(&cx, "tenant", TENANT).unwrap();
    let cx = baton::baggage::set_in(&cx, "secret", "hunter2").unwrap();
    RequestId::parse("req-1").unwrap().set_in(&cx)
}

fn span_of(cx: &baton::Context) -> SpanContext {
    cx.span().span_context().clone()
}

/// Asserts that a JSON line carries exactly the request's correlation.
fn assert_correlated(line: &Value, span: &SpanContext) {
    assert_eq!(line["trace_id"], span.trace_id().to_string(), "{line}");
    assert_eq!(line["span_id"], span.span_id().to_string(), "{line}");
    assert_eq!(line["request_id"], "req-1", "{line}");
    assert_eq!(line["baggage"], json!({ "tenant": TENANT }), "{line}");
}

fn finished(spans: &InMemorySpanExporter, name: &str) -> SpanData {
    let all = spans.get_finished_spans().unwrap();
    let names: Vec<_> = all.iter().map(|s| s.name.clone()).collect();
    all.into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no finished span {name:?} in {names:?}"))
}

#[tokio::test]
async fn json_lines_inside_run_carry_the_ids_and_chosen_baggage() {
    let h = harness(Format::Json, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    baton::run(cx.clone(), async {
        tracing::info!(qty = 2, sku = "a-1", "added {}", "item");
        tokio::task::yield_now().await;
        tracing::warn!("after an await");
    })
    .await;

    let lines = h.logs.json();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_correlated(line, &span_of(&cx));
        assert_eq!(line["target"], "logs");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["fields"]["message"], "added item");
    assert_eq!(
        lines[0]["fields"],
        json!({ "message": "added item", "qty": 2, "sku": "a-1" })
    );
    assert_eq!(lines[1]["level"], "WARN");
    assert_eq!(lines[1]["fields"]["message"], "after an await");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_spawned_tasks_carry_the_ids() {
    let h = harness(Format::Json, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    baton::run(cx.clone(), async {
        // The subscriber is this thread's default: carry it to the worker.
        let task = async { tracing::info!(thread = ?std::thread::current().id(), "in task") };
        baton::spawn(task.with_current_subscriber()).await.unwrap();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        baton::spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || tracing::info!("in blocking task"));
        })
        .await
        .unwrap();
    })
    .await;

    let lines = h.logs.json();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["fields"]["message"], "in task");
    assert_eq!(lines[1]["fields"]["message"], "in blocking task");
    for line in &lines {
        assert_correlated(line, &span_of(&cx));
    }
}

#[test]
fn log_records_carry_the_ids_and_their_own_target() {
    static BRIDGE: Once = Once::new();
    BRIDGE.call_once(|| LogTracer::init().unwrap());
    let h = harness(Format::Json, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    baton::run_sync(cx.clone(), || {
        tracing_log::log::info!(target: "legacy::db", "pool {} ready", 3);
    });

    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    assert_correlated(&lines[0], &span_of(&cx));
    assert_eq!(lines[0]["target"], "legacy::db");
    assert_eq!(lines[0]["fields"]["message"], "pool 3 ready");
}

#[test]
fn text_lines_carry_the_ids_and_stay_one_line() {
    let h = harness(Format::Human, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    baton::run_sync(cx.clone(), || {
        tracing::info!(qty = 2, sku = "a-1", "added");
    });

    let lines = h.logs.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let span = span_of(&cx);
    for part in [
        " INFO logs: added qty=2 sku=\"a-1\"",
        &format!(" trace_id={} span_id={}", span.trace_id(), span.span_id()),
        " request_id=req-1",
        r#" baggage.tenant="acme \"corp\"\nforged""#,
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    assert!(!line.contains("hunter2"), "only chosen baggage keys");
}

#[test]
fn events_outside_any_context_have_no_ids() {
    let h = harness(Format::Json, Filtered::Nothing);
    tracing::info!(qty = 1, "alone");

    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    for key in ["trace_id", "span_id", "request_id", "baggage"] {
        assert_eq!(lines[0].get(key), None, "{key} in {}", lines[0]);
    }
    assert_eq!(lines[0]["fields"]["message"], "alone");
}

#[tokio::test]
async fn tracing_spans_nest_under_the_baton_span_and_become_current() {
    let h = harness(Format::Json, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    let (load_cart, query) = baton::run(cx.clone(), async {
        tokio::task::yield_now().await;
        let span = tracing::info_span!("load_cart");
        let _entered = span.enter();
        let current = span_of(&opentelemetry::Context::current());
        assert_eq!(span_of(&tracing::Span::current().context()), current);
        assert_eq!(span_of(&baton::current()), current);
        assert_ne!(current.span_id(), span_of(&cx).span_id());
        // The span's context is the request's plus the span.
        assert_eq!(RequestId::current().unwrap().as_str(), "req-1");
        assert_eq!(baton::baggage::get("tenant").as_deref(), Some(TENANT));

        tracing::info!("loading");
        let mut query = h.tracer.start("db.query");
        let query_cx = query.span_context().clone();
        query.end();
        (current, query_cx)
    })
    .await;
    cx.span().end();

    let request = span_of(&cx);
    let exported = finished(&h.spans, "load_cart");
    assert_eq!(exported.span_context, load_cart);
    assert_eq!(exported.span_context.trace_id(), request.trace_id());
    assert_eq!(exported.parent_span_id, request.span_id());
    let exported_query = finished(&h.spans, "db.query");
    assert_eq!(exported_query.span_context, query);
    assert_eq!(exported_query.parent_span_id, load_cart.span_id());

    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["span_id"], load_cart.span_id().to_string());
    assert_eq!(lines[0]["trace_id"], request.trace_id().to_string());
    assert!(!opentelemetry::Context::current().has_active_span());
}

#[tokio::test]
async fn an_instrumented_future_keeps_the_request_context_on_a_plain_spawn() {
    let h = harness(Format::Json, Filtered::Nothing);
    let cx = request_cx(&h.tracer);
    let job = baton::run_sync(cx.clone(), || {
        async { tracing::info!("in job") }.instrument(tracing::info_span!("job"))
    });
    tokio::spawn(job.with_current_subscriber()).await.unwrap();
    cx.span().end();

    let job = finished(&h.spans, "job");
    assert_eq!(job.parent_span_id, span_of(&cx).span_id());
    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["span_id"], job.span_context.span_id().to_string());
    assert_eq!(lines[0]["request_id"], "req-1");
    assert_eq!(lines[0]["baggage"], json!({ "tenant": TENANT }));
}

#[test]
fn a_subscriber_wide_filter_drops_hidden_spans_but_keeps_the_trace_connected() {
    let h = harness(Format::Json, Filtered::Everything);
    let cx = request_cx(&h.tracer);
    baton::run_sync(cx.clone(), || {
        let _hidden = tracing::debug_span!("hidden").entered();
        let _visible = tracing::info_span!("visible").entered();
        tracing::debug!("not logged");
        tracing::info!("logged");
    });
    cx.span().end();

    let names: Vec<_> = h
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["visible", "request"]);
    let visible = finished(&h.spans, "visible");
    assert_eq!(visible.parent_span_id, span_of(&cx).span_id());
    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["span_id"],
        visible.span_context.span_id().to_string()
    );
}

#[test]
fn a_logs_only_filter_keeps_every_span() {
    let h = harness(Format::Json, Filtered::LogsOnly);
    let cx = request_cx(&h.tracer);
    baton::run_sync(cx.clone(), || {
        let _detail = tracing::debug_span!("detail").entered();
        tracing::debug!("not logged");
        tracing::info!("logged");
    });
    cx.span().end();

    let detail = finished(&h.spans, "detail");
    assert_eq!(detail.parent_span_id, span_of(&cx).span_id());
    let lines = h.logs.json();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["fields"]["message"], "logged");
    assert_eq!(
        lines[0]["span_id"],
        detail.span_context.span_id().to_string()
    );
}
