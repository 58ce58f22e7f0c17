//! The `orders` service on its own.
//!
//! Run: `cargo run -p baton-examples --bin orders`
//! (`ORDERS_ADDR`, default 127.0.0.1:50051; `INVENTORY_URL`, default
//! http://127.0.0.1:50052; `OTEL_SERVICE_NAME`).

use baton_examples::{
    DEFAULT_INVENTORY_ADDR, DEFAULT_ORDERS_ADDR, Providers, listen, orders, serve_until_stopped,
    service_telemetry, url_from_env,
};

#[tokio::main]
async fn main() {
    let telemetry = service_telemetry("orders");
    let inventory = url_from_env("INVENTORY_URL", DEFAULT_INVENTORY_ADDR);
    let (listener, addr) = listen("ORDERS_ADDR", DEFAULT_ORDERS_ADDR).await;
    println!("orders: gRPC on {addr}, inventory at {inventory}");
    let serve = orders::serve(listener, inventory, Providers::global());
    serve_until_stopped("orders", telemetry, serve).await;
}
