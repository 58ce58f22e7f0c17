//! The `pricing` service on its own.
//!
//! Run: `cargo run -p baton-examples --bin pricing`
//! (`PRICING_ADDR`, default 127.0.0.1:8081; `OTEL_SERVICE_NAME`).

use baton_examples::{
    DEFAULT_PRICING_ADDR, Providers, listen, pricing, serve_until_stopped, service_telemetry,
};

#[tokio::main]
async fn main() {
    let telemetry = service_telemetry("pricing");
    let (listener, addr) = listen("PRICING_ADDR", DEFAULT_PRICING_ADDR).await;
    println!("pricing: HTTP on {addr}");
    let serve = pricing::serve(listener, Providers::global());
    serve_until_stopped("pricing", telemetry, serve).await;
}
