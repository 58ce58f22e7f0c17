//! The `pricing` service on its own.
//!
//! Run: `cargo run -p baton-examples --bin pricing`
//! (`PRICING_ADDR`, default 127.0.0.1:8081; `OTEL_SERVICE_NAME`).

use baton_examples::{DEFAULT_PRICING_ADDR, Providers, listen, pricing, service_telemetry};

#[tokio::main]
async fn main() {
    let _telemetry = service_telemetry("pricing");
    let (listener, addr) = listen("PRICING_ADDR", DEFAULT_PRICING_ADDR).await;
    println!("pricing: HTTP on {addr}");
    pricing::serve(listener, Providers::global())
        .await
        .expect("pricing stopped");
}
