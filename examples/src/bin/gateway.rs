//! The `gateway` service on its own.
//!
//! Run: `cargo run -p baton-examples --bin gateway`
//! (`GATEWAY_ADDR`, default 127.0.0.1:8080; `ORDERS_URL`, default
//! http://127.0.0.1:50051; `PRICING_URL`, default http://127.0.0.1:8081;
//! `OTEL_SERVICE_NAME`), then `curl -H 'x-tenant: acme' localhost:8080/checkout/widget`.

use baton_examples::{
    DEFAULT_GATEWAY_ADDR, DEFAULT_ORDERS_ADDR, DEFAULT_PRICING_ADDR, Providers, gateway, listen,
    serve_until_stopped, service_telemetry, url_from_env,
};

#[tokio::main]
async fn main() {
    let telemetry = service_telemetry("gateway");
    let orders = url_from_env("ORDERS_URL", DEFAULT_ORDERS_ADDR);
    let pricing = url_from_env("PRICING_URL", DEFAULT_PRICING_ADDR);
    let (listener, addr) = listen("GATEWAY_ADDR", DEFAULT_GATEWAY_ADDR).await;
    println!("gateway: HTTP on {addr}, orders at {orders}, pricing at {pricing}");
    let serve = gateway::serve(listener, orders, pricing, Providers::global());
    serve_until_stopped("gateway", telemetry, serve).await;
}
