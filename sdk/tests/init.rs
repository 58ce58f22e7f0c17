//! `baton::init`: the one-call setup against a real OTLP collector (rotel,
//! installed by `scripts/setup-peers`). A binary of its own, since it
//! installs process-wide providers and a global subscriber.
#![cfg(feature = "export")]
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(missing_docs, unreachable_pub, reason = "tests")]

// The collector helper the exporter tests use, not a copy of it; this test
// needs only part of it.
#[path = "../../exporters/tests/rotel/mod.rs"]
#[allow(dead_code, reason = "shared helper, partly used here")]
mod rotel;

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton::Init;
use baton_exporters::config::ExporterKind;
use opentelemetry::trace::{TraceContextExt, Tracer as _};
use rotel::Rotel;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// (environment, traces exporters, metrics exporters, why)
type Row<'a> = (
    &'a [(&'a str, &'a str)],
    Vec<ExporterKind>,
    Vec<ExporterKind>,
    &'a str,
);

#[test]
fn console_is_the_default_only_when_no_collector_is_configured() {
    use ExporterKind::{Console, Otlp};
    let rows: [Row<'_>; 4] = [
        (
            &[],
            vec![Console],
            vec![Console],
            "nothing set: the terminal",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")],
            vec![Otlp],
            vec![Otlp],
            "an endpoint means a collector",
        ),
        (
            &[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4317",
            )],
            vec![Otlp],
            vec![Console],
            "per signal",
        ),
        (
            &[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "otlp"),
            ],
            vec![],
            vec![Otlp],
            "an explicit choice wins",
        ),
    ];
    for (env, traces, metrics, why) in rows {
        let init = Init::from_vars(vars(env));
        assert_eq!(init.config().exporters.traces, traces, "{why}");
        assert_eq!(init.config().exporters.metrics, metrics, "{why}");
    }
}

#[test]
fn init_exports_spans_and_logs_of_a_request_and_reports_delivery() {
    let collector = Rotel::start("init");
    let endpoint = collector.grpc_endpoint();
    let init = Init::from_vars(vars(&[
        ("OTEL_SERVICE_NAME", "init-test"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]));
    assert!(
        init.config().warnings.is_empty(),
        "{:?}",
        init.config().warnings
    );
    // A layer of the application's sees what the directives let through.
    let debug_events = Arc::new(AtomicUsize::new(0));
    let init = init
        .log_directives("info,init=debug")
        .with_layer(Counter(Arc::clone(&debug_events)));
    let telemetry = init.install().unwrap();
    tracing::debug!(target: "init", "let through by the directive");
    tracing::debug!(target: "elsewhere", "below the default level");
    assert_eq!(debug_events.load(Ordering::Relaxed), 1);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let trace_id = rt.block_on(async {
        let tracer = opentelemetry::global::tracer("init-test");
        let root = tracer.start("request");
        let cx = baton::current().with_span(root);
        baton::run(cx, async {
            let trace_id = baton::with_current(|cx| cx.span().span_context().trace_id());
            baton::spawn(async {
                let _child = opentelemetry::global::tracer("init-test").start("child");
                tracing::info!("deep inside the request");
            })
            .await
            .unwrap();
            baton::current().span().end();
            trace_id
        })
        .await
    });

    let report = telemetry.shutdown(Duration::from_secs(10));
    assert!(report.delivered(), "{report:?}");
    assert!(report.spans.exported >= 2, "{report:?}");
    let spans = collector.wait_for("spans", Duration::from_secs(30), |lines| lines.len() >= 2);
    let ours: Vec<_> = spans
        .iter()
        .filter(|s| s["trace_id"] == trace_id.to_string())
        .collect();
    assert_eq!(ours.len(), 2, "{spans:?}");
    let logs = collector.wait_for("logs", Duration::from_secs(30), |lines| {
        lines.iter().any(|l| {
            l["body"]
                .as_str()
                .is_some_and(|b| b.contains("deep inside"))
        })
    });
    assert!(
        logs.iter().any(|l| l["body"]
            .as_str()
            .is_some_and(|b| b.contains("deep inside"))),
        "{logs:?}"
    );
}

/// Counts the debug events it sees.
struct Counter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::DEBUG {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn invalid_directives_fail_with_their_cause() {
    let error = Init::from_vars(vars(&[("RUST_LOG", "info,shop=loud")]))
        .install()
        .unwrap_err();
    assert!(matches!(error, baton::InitError::Filter(_)), "{error:?}");
    assert!(error.source().is_some(), "{error:?}");
}
