//! The demo shop: four small services instrumented with Baton, each a
//! function serving on a listener you give it, so the binaries stay thin and
//! `demo` can run all four in one process over real loopback HTTP and gRPC.
//!
//! ```text
//! client ─HTTP─▶ gateway ─gRPC─▶ orders ─gRPC (unary + streaming)─▶ inventory
//!                   └────HTTP──▶ pricing
//! ```

pub mod gateway;
pub mod inventory;
pub mod orders;
pub mod pricing;
pub mod telemetry;

/// The generated messages, clients and servers of `shop.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]
pub mod shop {
    tonic::include_proto!("shop");
}

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Where each service listens when the environment says nothing: loopback.
pub const DEFAULT_GATEWAY_ADDR: &str = "127.0.0.1:8080";
/// See [`DEFAULT_GATEWAY_ADDR`].
pub const DEFAULT_PRICING_ADDR: &str = "127.0.0.1:8081";
/// See [`DEFAULT_GATEWAY_ADDR`].
pub const DEFAULT_ORDERS_ADDR: &str = "127.0.0.1:50051";
/// See [`DEFAULT_GATEWAY_ADDR`].
pub const DEFAULT_INVENTORY_ADDR: &str = "127.0.0.1:50052";

/// `name` from the environment parsed as a socket address, or `default`;
/// panics with a clear message on a malformed value, as it is startup config.
pub fn addr_from_env(name: &str, default: &str) -> SocketAddr {
    let value = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    value
        .parse()
        .unwrap_or_else(|err| panic!("{name}={value:?} is not a socket address: {err}"))
}

/// A listener on the address in `name` (or `default`), and that address;
/// panics with a clear message when it cannot listen, as it is startup.
pub async fn listen(name: &str, default: &str) -> (TcpListener, SocketAddr) {
    let addr = addr_from_env(name, default);
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|err| panic!("cannot listen on {addr} ({name}): {err}"));
    (listener, addr)
}

/// A gRPC channel to `addr` that connects on first use, so services can start
/// in any order.
fn lazy_channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a socket address makes a valid URI")
        .connect_lazy()
}
