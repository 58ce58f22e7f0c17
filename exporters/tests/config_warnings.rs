//! Configuration warnings reach `tracing`. A binary of its own: `tracing`
//! caches per call site whether anyone listens, process-wide, so other tests
//! logging through the same `warn!` with no subscriber set can race this
//! test's scoped subscriber and make it see nothing.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;

use baton_exporters::Config;

fn load(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_vars(move |name| map.get(name).cloned())
}

/// Collects the messages of `tracing` events.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(format!("{} ", event.metadata().level()));
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn warnings_are_logged() {
    let capture = Capture::default();
    let config = tracing::subscriber::with_default(capture.clone(), || {
        load(&[
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=s3cr3t,x"),
        ])
    });
    let logged = capture.0.lock().unwrap().clone();
    let expected: Vec<String> = config
        .warnings
        .iter()
        .map(|w| format!("WARN {w}"))
        .collect();
    assert_eq!(logged, expected);
    assert_eq!(logged.len(), 2);
    assert!(logged.iter().all(|m| !m.contains("s3cr3t")), "{logged:?}");
}
