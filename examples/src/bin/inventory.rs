//! The `inventory` service on its own.
//!
//! Run: `cargo run -p baton-examples --bin inventory`
//! (`INVENTORY_ADDR`, default 127.0.0.1:50052; `OTEL_SERVICE_NAME`).

use baton_examples::{
    DEFAULT_INVENTORY_ADDR, Providers, inventory, listen, serve_until_stopped, service_telemetry,
};

#[tokio::main]
async fn main() {
    let telemetry = service_telemetry("inventory");
    let (listener, addr) = listen("INVENTORY_ADDR", DEFAULT_INVENTORY_ADDR).await;
    println!("inventory: gRPC on {addr}");
    let serve = inventory::serve(listener, Providers::global());
    serve_until_stopped("inventory", telemetry, serve).await;
}
