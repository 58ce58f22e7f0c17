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
use std::time::Duration;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::{TcpListener, TcpStream};

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

/// A listener whose accepted connections have `TCP_NODELAY` set, the one way
/// every demo service accepts connections.
///
/// Without it, a response written in more than one segment (an HTTP/2 or
/// gRPC reply usually is) waits for the peer's delayed ACK: about 40 ms per
/// call on Linux, even on loopback. tonic's `TcpIncoming::from(listener)` and
/// `axum::serve(listener, ..)` both leave the option off.
///
/// The services take `impl Into<Listener>`, so a plain [`TcpListener`] works;
/// build one with [`Listener::on_accept`] to see each accepted socket.
pub struct Listener {
    inner: TcpListener,
    on_accept: Option<OnAccept>,
}

/// What [`Listener::on_accept`] is given.
type OnAccept = Box<dyn FnMut(&TcpStream) + Send>;

impl Listener {
    /// Calls `f` with each accepted connection, after its options are set
    /// and before it is served: to log connections, or to check their
    /// socket options in a test.
    #[must_use]
    pub fn on_accept(mut self, f: impl FnMut(&TcpStream) + Send + 'static) -> Self {
        self.on_accept = Some(Box::new(f));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection, with `TCP_NODELAY` set. Errors that concern one
    /// connection are skipped; others (say, out of file descriptors) are
    /// reported and retried after a pause rather than spinning.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        // The connection still works, only slower.
                        tracing::warn!(%peer, %err, "cannot set TCP_NODELAY");
                    }
                    if let Some(f) = &mut self.on_accept {
                        f(&stream);
                    }
                    return (stream, peer);
                }
                Err(err) if is_connection_error(&err) => {}
                Err(err) => {
                    tracing::error!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    /// The accepted connections as a stream, for tonic's
    /// `serve_with_incoming`.
    pub fn incoming(
        self,
    ) -> impl futures_util::Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
        futures_util::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.accept().await;
            Some((Ok(stream), listener))
        })
    }
}

/// How long to wait after an accept error that is not about one connection.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// An accept error that only concerns the connection being accepted.
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

impl From<TcpListener> for Listener {
    fn from(inner: TcpListener) -> Self {
        Listener {
            inner,
            on_accept: None,
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("inner", &self.inner)
            .field("on_accept", &self.on_accept.is_some())
            .finish()
    }
}

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (TcpStream, SocketAddr)> + Send {
        Listener::accept(self)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Listener::local_addr(self)
    }
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

/// Where a service's Baton layers record spans and metrics: the global
/// providers (a service running on its own, set up by `baton::init()`), or
/// providers of its own (each service of the `demo` binary, so each is named
/// by its own `service.name` although all four share one process).
#[derive(Clone, Debug, Default)]
pub struct Providers {
    own: Option<(SdkTracerProvider, SdkMeterProvider)>,
}

impl Providers {
    /// The global tracer and meter providers.
    pub fn global() -> Self {
        Providers { own: None }
    }

    /// `tracer` and `meter` rather than the global providers.
    pub fn new(tracer: &SdkTracerProvider, meter: &SdkMeterProvider) -> Self {
        Providers {
            own: Some((tracer.clone(), meter.clone())),
        }
    }

    /// `layer` recording to these providers; `own` gives it both.
    fn apply<L>(
        &self,
        layer: L,
        own: impl FnOnce(L, &SdkTracerProvider, &SdkMeterProvider) -> L,
    ) -> L {
        match &self.own {
            Some((tracer, meter)) => own(layer, tracer, meter),
            None => layer,
        }
    }

    fn grpc_server(&self) -> baton::grpc::server::GrpcServerLayer {
        let layer = baton::grpc::server::GrpcServerLayer::new();
        self.apply(layer, |l, t, m| {
            l.with_tracer_provider(t).with_meter_provider(m)
        })
    }

    fn grpc_client(&self, destination: &http::Uri) -> baton::grpc::client::GrpcClientLayer {
        let layer = baton::grpc::client::GrpcClientLayer::new(destination);
        self.apply(layer, |l, t, m| {
            l.with_tracer_provider(t).with_meter_provider(m)
        })
    }

    fn http_server(&self) -> baton::http::server::HttpServerLayer {
        let layer = baton::http::server::HttpServerLayer::new();
        self.apply(layer, |l, t, m| {
            l.with_tracer_provider(t).with_meter_provider(m)
        })
    }

    fn http_client(&self) -> baton::http::client::HttpClientMiddleware {
        let middleware = baton::http::client::HttpClientMiddleware::new();
        self.apply(middleware, |l, t, m| {
            l.with_tracer_provider(t).with_meter_provider(m)
        })
    }
}

/// Most requests one gRPC connection carries at once (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`). tonic sets no limit, so a burst opens
/// every request as a stream at once; the caller then resets streams the
/// server has not accepted yet, and past hyper's limit on those the server
/// closes the connection, failing every call on it (`transport error`).
/// With a bound, the caller's channel holds the rest until a stream frees.
const GRPC_MAX_STREAMS: u32 = 256;

/// Streams a caller may reset before the server accepted them, after which
/// the server closes the connection (a guard against reset floods). With
/// streams bounded, hyper's default of 20 held in a burst too; one per
/// stream the caller may have open leaves a margin and keeps the guard.
const GRPC_MAX_PENDING_RESETS: usize = GRPC_MAX_STREAMS as usize;

/// The server every demo gRPC service runs on: [`GRPC_MAX_STREAMS`] and
/// [`GRPC_MAX_PENDING_RESETS`] so it answers a burst rather than dropping
/// the connection.
fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(GRPC_MAX_STREAMS)
        .http2_max_pending_accept_reset_streams(Some(GRPC_MAX_PENDING_RESETS))
}

/// A gRPC client stack to `url`: Baton's client layer recording to
/// `providers`, made for the endpoint's URI (the peer's address, which a
/// channel does not expose), over a channel that connects on first use, so
/// services can start in any order.
fn grpc_client(
    url: &reqwest::Url,
    providers: &Providers,
) -> baton::grpc::client::GrpcClientService<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap_or_else(|err| panic!("{url} is not a gRPC endpoint: {err}"));
    let layer = providers.grpc_client(endpoint.uri());
    tower::ServiceBuilder::new()
        .layer(layer)
        .service(endpoint.connect_lazy())
}

/// How long a stopped service gives telemetry to deliver what it holds.
pub const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a stopped service lets background work finish before it
/// shuts telemetry down.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs a service on its own until it fails or is told to stop (SIGTERM, as
/// `docker compose down` sends, or Ctrl-C), then shuts `telemetry` down
/// within [`SHUTDOWN_DEADLINE`] and says what was delivered: spans still
/// queued are flushed, not lost.
pub async fn serve_until_stopped<E: std::fmt::Display>(
    service: &str,
    telemetry: baton::Telemetry,
    serve: impl std::future::Future<Output = Result<(), E>>,
) {
    tokio::select! {
        result = serve => {
            if let Err(err) = result {
                eprintln!("{service}: stopped: {err}");
            }
        }
        signal = stop_signal() => {
            println!("{service}: {signal}, shutting down");
            // No new requests; background work the last ones started
            // (orders' audit) gets a moment to finish and log.
            tokio::time::sleep(STOP_GRACE).await;
        }
    }
    let report = telemetry.shutdown(SHUTDOWN_DEADLINE);
    let delivered = if report.delivered() {
        "delivered"
    } else {
        "NOT all delivered"
    };
    println!("{service}: telemetry {delivered}: {report}");
}

/// The first of SIGTERM and Ctrl-C (SIGINT), by name.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
            },
            // No SIGTERM handler to be had: Ctrl-C still works.
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
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
