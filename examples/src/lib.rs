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

/// `name` from the environment parsed as a URL, or `http://{default}`: peers
/// are named by URL so a host name (as in `docker-compose.yml`) works too.
/// Panics with a clear message on a malformed value, as it is startup config.
pub fn url_from_env(name: &str, default: &str) -> reqwest::Url {
    let value = std::env::var(name).unwrap_or_else(|_| format!("http://{default}"));
    value
        .parse()
        .unwrap_or_else(|err| panic!("{name}={value:?} is not a URL: {err}"))
}

/// A gRPC client stack to `url`: Baton's client layer, made for the
/// endpoint's URI (the peer's address, which a channel does not expose),
/// over a channel that connects on first use, so services can start in any
/// order.
fn grpc_client(url: &reqwest::Url) -> baton::grpc::client::GrpcClient<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap_or_else(|err| panic!("{url} is not a gRPC endpoint: {err}"));
    let layer = baton::grpc::client::GrpcClientLayer::new(endpoint.uri());
    tower::ServiceBuilder::new()
        .layer(layer)
        .service(endpoint.connect_lazy())
}

/// Telemetry for one service running on its own: `baton::init()`, configured
/// by `OTEL_*` (console export unless a collector endpoint is set, as in
/// `docker-compose.yml`), with the baggage keys the demo's log lines show.
/// Panics with a clear message when it cannot be set up, as it is startup.
pub fn service_telemetry(service: &str) -> baton::Telemetry {
    baton::Init::from_env()
        .default_service_name(service)
        .baggage_keys(["tenant", "user"])
        .install()
        .unwrap_or_else(|err| panic!("{service}: cannot set up telemetry: {err}"))
}
