//! The context model at work: concurrent requests, each with its own context,
//! surviving awaits, timers, spawned tasks and blocking calls; the context
//! comes in through W3C headers and goes out again on an outbound call.
//!
//! Run: `cargo run -p baton-examples --bin context`

use std::sync::Arc;
use std::time::Duration;

use baton::propagators::{HeaderCarrier, HeaderCarrierMut};
use baton::{Local, propagators};
use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;

/// A typed request id, like a separate `AsyncLocalStorage` instance.
static REQUEST_ID: Local<String> = Local::new();

/// What this line of code sees of the current context, without any argument.
fn seen(step: &str) {
    let id = REQUEST_ID.get().unwrap_or_else(|| "-".into());
    let tenant = baton::baggage::get("tenant").unwrap_or_else(|| "-".into());
    let trace = baton::with_current(|cx| {
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            sc.trace_id().to_string()
        } else {
            "-".into()
        }
    });
    println!("[{id}] tenant={tenant:<7} trace={trace:<32} {step}");
}

async fn repository_lookup() {
    tokio::time::sleep(Duration::from_millis(15)).await;
    seen("  repository: after a 15 ms timer");
}

fn outbound_headers(propagator: &impl TextMapPropagator) -> HeaderMap {
    let mut headers = HeaderMap::new();
    baton::with_current(|cx| propagator.inject_context(cx, &mut HeaderCarrierMut(&mut headers)));
    headers
}

async fn handle(propagator: Arc<propagators::CompositePropagator>) {
    seen("handler: start");
    tokio::task::yield_now().await;
    repository_lookup().await;
    let background = baton::spawn(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        seen("  background task: spawned with baton::spawn");
    });
    let blocking = baton::spawn_blocking(|| seen("  blocking pool: baton::spawn_blocking"));
    let _ = tokio::join!(background, blocking);
    let out = outbound_headers(propagator.as_ref());
    for (name, value) in &out {
        let value = value.to_str().unwrap_or("<binary>");
        seen(&format!("  outbound {name}: {value}"));
    }
}

#[tokio::main]
async fn main() {
    let propagator = Arc::new(propagators::from_env());
    let incoming = [
        (
            "req-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tenant=acme,user=ada",
        ),
        (
            "req-2",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
            "tenant=globex",
        ),
        (
            "req-3",
            "not-a-valid-traceparent",
            "tenant=initech;tier=gold",
        ),
    ];
    println!("Three concurrent requests; every line prints what baton::current() holds there.\n");
    let mut handles = Vec::new();
    for (id, traceparent, baggage) in incoming {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(traceparent));
        headers.insert("baggage", http::HeaderValue::from_static(baggage));
        // Extraction never fails: the malformed traceparent of req-3 is simply
        // absent, so req-3 carries no trace id but keeps its baggage.
        let cx = propagator.extract(&HeaderCarrier(&headers));
        let cx = REQUEST_ID.set_in(&cx, id.to_owned());
        let propagator = propagator.clone();
        handles.push(tokio::spawn(baton::run(cx, handle(propagator))));
    }
    for h in handles {
        if let Err(e) = h.await {
            eprintln!("request task failed: {e}");
        }
    }
    seen("main: outside every request, nothing is current");
}
