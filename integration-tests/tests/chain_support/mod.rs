//! A three-hop chain on 127.0.0.1 for `chain.rs`:
//!
//! ```text
//! test client ──HTTP──▶ gateway (axum + HttpServerLayer)
//!                         │ tonic Channel + GrpcClientLayer
//!                         ▼
//!                       orders (tonic Echo + GrpcServerLayer)
//!                         │ reqwest + HttpClientMiddleware (baggage to 127.0.0.1)
//!                         ▼
//!                       pricing (axum + HttpServerLayer)
//! ```
//!
//! Every hop records what its handler saw ([`Visit`]); spans and metrics go
//! to the chain's `baton::testing` capture; log lines go through one
//! process-wide fmt layer with `CorrelatedFormat` into a buffer (tests tell
//! their lines apart by trace id).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use baton::grpc::client::{GrpcClientLayer, GrpcClientService};
use baton::grpc::server::GrpcServerLayer;
use baton::http::client::HttpClientMiddleware;
use baton::http::server::HttpServerLayer;
use baton::logs::CorrelatedFormat;
use baton::request_id::RequestId;
use baton::testing::Capture;
use baton_testkit::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer};
use futures_util::Stream;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use reqwest_middleware::ClientWithMiddleware;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The gateway's health-check route, left out by its filter.
pub(crate) const HEALTHZ: &str = "/healthz";

/// What one hop's handler saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Visit {
    /// `gateway`, `orders` or `pricing`.
    pub(crate) hop: &'static str,
    /// The order id or sku the hop was asked about.
    pub(crate) key: String,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) request_id: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) order: Option<String>,
}

impl Visit {
    fn here(hop: &'static str, key: &str) -> Self {
        let cx = baton::current();
        let span = cx.span();
        let sc = span.span_context();
        Visit {
            hop,
            key: key.to_owned(),
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            request_id: RequestId::current().map(|id| id.to_string()),
            tenant: baton::baggage::get("tenant"),
            user: baton::baggage::get("user"),
            order: baton::baggage::get("order"),
        }
    }
}

/// What the handlers saw, for the tests to check.
#[derive(Default)]
pub(crate) struct Seen {
    visits: Mutex<Vec<Visit>>,
    /// How many `Stream` spans had finished when the gateway had
    /// the first streamed message.
    pub(crate) stream_spans_at_first: Mutex<Option<usize>>,
    /// When orders had sent its last streamed message.
    pub(crate) last_sent: Mutex<Option<SystemTime>>,
    /// Lets the streaming task go on after its first message.
    resume: Notify,
}

impl Seen {
    fn record(&self, visit: Visit) {
        self.visits.lock().expect("lock").push(visit);
    }

    /// The one visit of `hop` about `key`.
    pub(crate) fn visit(&self, hop: &str, key: &str) -> Visit {
        let visits = self.visits.lock().expect("lock");
        let found: Vec<_> = visits
            .iter()
            .filter(|v| v.hop == hop && v.key == key)
            .collect();
        assert_eq!(found.len(), 1, "visits of {hop} about {key}: {visits:#?}");
        found[0].clone()
    }
}

// ---- pricing: axum + HttpServerLayer --------------------------------------

/// `GET /price/{sku}`: a price, or a 500 for a sku starting with `broken`.
async fn price(
    State(seen): State<Arc<Seen>>,
    Path(sku): Path<String>,
) -> Result<String, StatusCode> {
    seen.record(Visit::here("pricing", &sku));
    tracing::info!(sku = %sku, "priced");
    if sku.starts_with("broken") {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(format!("{sku}=9.99"))
}

// ---- orders: tonic Echo + GrpcServerLayer ---------------------------------

struct Orders {
    pricing: ClientWithMiddleware,
    pricing_url: String,
    seen: Arc<Seen>,
}

impl Orders {
    /// Asks pricing for `sku`; a pricing failure is UNAVAILABLE.
    fn fetch(&self, sku: &str) -> impl Future<Output = Result<String, tonic::Status>> + use<> {
        let client = self.pricing.clone();
        let url = format!("{}/price/{sku}", self.pricing_url);
        async move {
            let response = client
                .get(&url)
                .send()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            if !response.status().is_success() {
                return Err(tonic::Status::unavailable(format!(
                    "pricing answered {}",
                    response.status()
                )));
            }
            response
                .text()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))
        }
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Orders {
    /// Prices order `message` from a task spawned with `baton::spawn`.
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let sku = request.into_inner().message;
        self.seen.record(Visit::here("orders", &sku));
        let fetch = self.fetch(&sku);
        let message = baton::spawn(async move {
            tracing::info!("asking pricing");
            fetch.await
        })
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))??;
        Ok(tonic::Response::new(EchoReply { message }))
    }

    type StreamStream = ReplyStream;

    /// Streams `count` prices of `{message}-{i}`, pausing after the first
    /// until the gateway has checked that no call span has ended yet.
    async fn stream(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        let EchoRequest { message, count, .. } = request.into_inner();
        self.seen.record(Visit::here("orders", &message));
        let fetches: Vec<_> = (0..count)
            .map(|i| self.fetch(&format!("{message}-{i}")))
            .collect();
        let seen = Arc::clone(&self.seen);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        baton::spawn(async move {
            for (i, fetch) in fetches.into_iter().enumerate() {
                let reply = fetch.await.map(|message| EchoReply { message });
                if tx.send(reply).await.is_err() {
                    return;
                }
                if i == 0 {
                    seen.resume.notified().await;
                }
            }
            *seen.last_sent.lock().expect("lock") = Some(SystemTime::now());
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn fail(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let request = request.into_inner();
        self.seen.record(Visit::here("orders", &request.message));
        Err(tonic::Status::new(
            tonic::Code::from_i32(request.code),
            "failed on purpose",
        ))
    }
}

// ---- gateway: axum + HttpServerLayer, calling orders -----------------------

type OrdersClient = EchoClient<GrpcClientService<Channel>>;

#[derive(Clone)]
struct Gateway {
    orders: OrdersClient,
    seen: Arc<Seen>,
    capture: Arc<Capture>,
}

/// A failed call to orders as the gateway's answer.
fn reflect(status: &tonic::Status) -> (StatusCode, String) {
    let code = match status.code() {
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, format!("orders: {:?}", status.code()))
}

/// `GET /orders/{id}`: prices the order through orders (unary), with
/// baggage `order={id}` added here.
async fn order(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
) -> Result<String, (StatusCode, String)> {
    gw.seen.record(Visit::here("gateway", &id));
    let cx = baton::baggage::set("order", &id).expect("valid baggage");
    let mut orders = gw.orders.clone();
    let request = EchoRequest {
        message: id,
        ..Default::default()
    };
    match baton::run(cx, orders.unary(request)).await {
        Ok(reply) => Ok(reply.into_inner().message),
        Err(status) => Err(reflect(&status)),
    }
}

/// `GET /orders/{id}/history`: three prices streamed from orders.
async fn history(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
) -> Result<String, (StatusCode, String)> {
    gw.seen.record(Visit::here("gateway", &id));
    let mut orders = gw.orders.clone();
    let request = EchoRequest {
        message: id,
        count: 3,
        ..Default::default()
    };
    let mut stream = orders
        .stream(request)
        .await
        .map_err(|s| reflect(&s))?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(reply) = stream.message().await.map_err(|s| reflect(&s))? {
        if messages.is_empty() {
            // The first message is here, the response headers long gone:
            // neither call span may have ended.
            let ended = gw
                .capture
                .spans_now()
                .named("baton.test.Echo/Stream")
                .count();
            *gw.seen.stream_spans_at_first.lock().expect("lock") = Some(ended);
            gw.seen.resume.notify_one();
        }
        messages.push(reply.message);
    }
    Ok(messages.join(","))
}

/// `GET /orders/{id}/cancel`: orders fails it with INTERNAL.
async fn cancel(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
) -> Result<String, (StatusCode, String)> {
    gw.seen.record(Visit::here("gateway", &id));
    let mut orders = gw.orders.clone();
    let request = EchoRequest {
        message: id,
        code: tonic::Code::Internal as i32,
        ..Default::default()
    };
    match orders.fail(request).await {
        Ok(reply) => Ok(reply.into_inner().message),
        Err(status) => Err(reflect(&status)),
    }
}

fn gateway(state: Gateway, layer: HttpServerLayer) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/history", get(history))
        .route("/orders/{id}/cancel", get(cancel))
        .route(HEALTHZ, get(|| async { "ok" }))
        .with_state(state)
        .layer(layer.with_filter(|request| request.path() != HEALTHZ))
}

// ---- servers ---------------------------------------------------------------

/// A server task on 127.0.0.1 that stops gracefully.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    async fn axum(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Without it each response waits for a delayed ACK.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    fn grpc(layer: GrpcServerLayer, orders: Orders) -> Self {
        // Without it each reply waits for a delayed ACK.
        let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind")
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().expect("address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(EchoServer::new(orders))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("server task");
    }
}

/// The three services, plus a second gateway that is a public endpoint
/// (both call the same orders).
pub(crate) struct Chain {
    /// What the chain recorded: every hop uses the global providers, and
    /// the requests the tests send carry traces of this capture.
    pub(crate) capture: Arc<Capture>,
    pub(crate) seen: Arc<Seen>,
    pub(crate) gateway: Server,
    pub(crate) public_gateway: Server,
    pub(crate) orders: Server,
    pub(crate) pricing: Server,
}

impl Chain {
    pub(crate) async fn start() -> Self {
        // Before the capture: its own subscriber is installed only when
        // none is set, and this one must be the process's.
        logs();
        let capture = Arc::new(Capture::start());
        let seen = Arc::new(Seen::default());
        let http_layer = HttpServerLayer::new;

        let pricing = Server::axum(
            Router::new()
                .route("/price/{sku}", get(price))
                .with_state(Arc::clone(&seen))
                .layer(http_layer()),
        )
        .await;

        let pricing_client = HttpClientMiddleware::new()
            .client(reqwest::Client::builder())
            .expect("a reqwest client");
        let orders = Server::grpc(
            GrpcServerLayer::new(),
            Orders {
                pricing: pricing_client,
                pricing_url: format!("http://{}", pricing.addr),
                seen: Arc::clone(&seen),
            },
        );

        let channel = Endpoint::from_shared(format!("http://{}", orders.addr))
            .expect("endpoint")
            .connect_lazy();
        let channel = tower::ServiceBuilder::new()
            .layer(GrpcClientLayer::new(
                &format!("http://127.0.0.1:{}", orders.addr.port())
                    .parse()
                    .expect("a uri"),
            ))
            .service(channel);
        let state = Gateway {
            orders: EchoClient::new(channel),
            seen: Arc::clone(&seen),
            capture: Arc::clone(&capture),
        };
        let gateway_server = Server::axum(gateway(state.clone(), http_layer())).await;
        let public_gateway = Server::axum(gateway(state, http_layer().public_endpoint())).await;
        Chain {
            capture,
            seen,
            gateway: gateway_server,
            public_gateway,
            orders,
            pricing,
        }
    }

    pub(crate) async fn stop(self) {
        self.gateway.stop().await;
        self.public_gateway.stop().await;
        self.orders.stop().await;
        self.pricing.stop().await;
    }
}

// ---- logs ------------------------------------------------------------------

/// Everything the process-wide fmt layer wrote. Its lines are what the
/// tests check (which ids and baggage keys `CorrelatedFormat` writes), so
/// they are kept as written rather than as `baton::testing` log records.
#[derive(Clone, Default)]
pub(crate) struct LogLines(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for LogLines {
    type Writer = LogLines;

    fn make_writer(&self) -> LogLines {
        self.clone()
    }
}

/// The process-wide log capture, installed as the global default subscriber
/// on first use: the chain's handlers run on runtime worker threads, which a
/// thread-local default would not reach. Tests in this binary run in
/// parallel and tell their lines apart by trace id.
pub(crate) fn logs() -> &'static LogLines {
    static LOGS: OnceLock<LogLines> = OnceLock::new();
    LOGS.get_or_init(|| {
        let lines = LogLines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(lines.clone())
                .map_event_format(|f| CorrelatedFormat::new(f).baggage_keys(["tenant", "user"])),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        lines
    })
}

impl LogLines {
    /// The JSON lines with message `message` and trace id `trace_id`.
    pub(crate) fn lines(&self, trace_id: TraceId, message: &str) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("lock").clone();
        let text = String::from_utf8(bytes).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|l: &serde_json::Value| {
                l["trace_id"] == trace_id.to_string() && l["fields"]["message"] == message
            })
            .collect()
    }
}
