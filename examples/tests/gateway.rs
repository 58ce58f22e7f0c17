//! The demo gateway faces the internet, so it treats callers as untrusted:
//! their trace is linked, not continued, their baggage never reaches the
//! services behind it, and a tenant it cannot read is refused, not guessed.

use axum::Router;
use axum::routing::get;
use baton_examples::{Providers, gateway};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A stand-in for `pricing` on loopback that reports the propagation
/// headers each request brought.
async fn recording_pricing() -> (reqwest::Url, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/price/{sku}",
        get(move |headers: http::HeaderMap| {
            let tx = tx.clone();
            async move {
                let header = |name| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let _ = tx.send((header("traceparent"), header("baggage")));
                axum::Json(serde_json::json!({ "cents": 100 }))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("bound"))
        .parse()
        .expect("a URL");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn start_gateway(pricing: reqwest::Url) -> String {
    // Orders is nowhere: the checkout fails, but prices in parallel first.
    let nowhere: reqwest::Url = "http://127.0.0.1:9".parse().expect("a URL");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(gateway::serve(
        listener,
        nowhere,
        pricing,
        // Real providers: with none, no span (so no new trace) is started.
        Providers::new(
            &opentelemetry_sdk::trace::SdkTracerProvider::builder().build(),
            &opentelemetry_sdk::metrics::SdkMeterProvider::builder().build(),
        ),
    ));
    format!("http://{addr}/checkout/widget")
}

#[tokio::test]
async fn callers_trace_and_baggage_do_not_pass_the_gateway() {
    let (pricing, mut seen) = recording_pricing().await;
    let checkout = start_gateway(pricing).await;
    let response = reqwest::Client::new()
        .get(&checkout)
        .header(
            "traceparent",
            format!("00-{CALLER_TRACE}-b7ad6b7169203331-01"),
        )
        .header("baggage", "internal.acl=admin,tenant=evil")
        .header("x-tenant", "acme")
        .header("x-user", "ann")
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(
        response.status(),
        http::StatusCode::BAD_GATEWAY,
        "orders is nowhere"
    );
    let (traceparent, baggage) = seen.recv().await.expect("pricing was called");
    assert!(
        traceparent.starts_with("00-"),
        "{traceparent:?} {baggage:?}"
    );
    assert!(
        !traceparent.contains(CALLER_TRACE),
        "a new trace: {traceparent}"
    );
    assert_eq!(baggage, "tenant=acme,user=ann", "only what the gateway set");
}

#[tokio::test]
async fn a_tenant_that_is_not_text_is_refused() {
    let (pricing, mut seen) = recording_pricing().await;
    let checkout = start_gateway(pricing).await;
    let response = reqwest::Client::new()
        .get(&checkout)
        .header(
            "x-tenant",
            http::HeaderValue::from_bytes(b"ac\xffme").expect("obs-text is a valid value"),
        )
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    let body = response.text().await.expect("a body");
    assert!(body.contains("x-tenant is not valid text"), "{body}");
    assert!(seen.try_recv().is_err(), "nothing was sent on");
}
