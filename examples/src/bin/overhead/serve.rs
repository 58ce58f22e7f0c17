//! One service process of a run: the gateway or the Echo service,
//! instrumented as its variant says, commanded over stdin by the parent.
//!
//! It prints `ready <port>` once it listens, then answers one line per
//! command: `mark` (warm-up is over: flush what warm-up recorded, and, under
//! callgrind, count from here) answers `marked`; `stop` (the load is over:
//! flush what it recorded, stop counting, shut telemetry down) answers
//! `stopped exported=.. dropped=.. failed=..` and exits.

use std::borrow::Cow;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::server::GrpcServerLayer;
use baton::http::server::HttpServerLayer;
use baton_exporters::Config;
use baton_exporters::pipeline::{OtlpSpanExporter, Pipeline, StatsSnapshot, span_exporter};
use baton_testkit::{EchoClient, EchoRequest, EchoServer, UnaryEcho};
use hyper::body::Bytes;
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SpanData, SpanExporter};
use tokio::net::TcpListener;
use tonic::codegen::StdError;
use tonic::transport::Endpoint;
use tonic::transport::server::TcpIncoming;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{BoxError, Variant, callgrind, fastrace_client, manual};

/// The service name every variant's spans carry.
const SERVICE_NAME: &str = "baton-overhead";
/// Worker threads of each service's runtime: one per core here.
const WORKERS: usize = 2;

/// Which of the two services a process runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// axum, `GET /users/{id}`, calling Echo: two spans per request.
    Gateway,
    /// tonic Echo: one span per request.
    Echo,
}

impl Role {
    pub(crate) const ALL: [Role; 2] = [Role::Gateway, Role::Echo];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Echo => "echo",
        }
    }

    pub(crate) fn from_name(name: &str) -> Result<Self, BoxError> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| format!("unknown role {name:?}: gateway or echo").into())
    }
}

/// The process environment the Baton variant reads in `baton::init()`, as
/// a user's deployment would set it.
pub(crate) fn baton_env(endpoint: &str) -> [(&'static str, String); 4] {
    [
        ("OTEL_SERVICE_NAME", SERVICE_NAME.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
    ]
}

/// Runs one service process until the parent says `stop`.
pub(crate) fn serve(
    role: Role,
    variant: Variant,
    endpoint: &str,
    echo_port: Option<u16>,
) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("worker")
        .enable_all()
        .build()?;
    let telemetry = rt.block_on(async { Telemetry::new(variant, endpoint) })?;
    let port = match role {
        Role::Echo => rt.block_on(start_echo(variant, telemetry.sdk_tracer()))?,
        Role::Gateway => {
            let echo_port = echo_port.ok_or("the gateway needs the Echo service's port")?;
            rt.block_on(start_gateway(variant, telemetry.sdk_tracer(), echo_port))?
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {port}")?;
    out.flush()?;

    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        match line?.trim() {
            "mark" => {
                telemetry.flush();
                callgrind::start_instrumentation();
                writeln!(out, "marked")?;
                out.flush()?;
            }
            "stop" => {
                telemetry.flush();
                callgrind::stop_instrumentation();
                let spans = telemetry.shutdown()?;
                writeln!(
                    out,
                    "stopped exported={} dropped={} failed={}",
                    spans.exported, spans.dropped, spans.failed
                )?;
                out.flush()?;
                rt.shutdown_timeout(Duration::from_secs(1));
                return Ok(());
            }
            other => return Err(format!("unknown command {other:?}").into()),
        }
    }
    Err("stdin closed before stop".into())
}

/// What records and exports a process's spans.
enum Telemetry {
    Uninstrumented,
    /// What `baton::init()` returned.
    Baton(Box<baton::Telemetry>),
    /// Baton's export pipeline, recorded to by the other `opentelemetry`
    /// variants.
    Pipeline(Box<Pipeline>),
    /// fastrace's global collector, reporting through an OTLP exporter.
    Fastrace(Arc<AtomicU64>),
}

impl Telemetry {
    /// Sets up `variant`'s telemetry, inside the runtime (the OTLP
    /// exporters' channels are built in it).
    fn new(variant: Variant, endpoint: &str) -> Result<Self, BoxError> {
        let config = || {
            let env = baton_env(endpoint);
            Config::from_vars(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        };
        Ok(match variant {
            Variant::Uninstrumented => Telemetry::Uninstrumented,
            // As README sets Baton up: the environment names the collector
            // (the parent set it), `init()` does the rest.
            Variant::Baton => Telemetry::Baton(Box::new(baton::init()?)),
            Variant::TracingOtel => {
                let pipeline = Pipeline::new(&config())?;
                // The stack records through `tracing` and propagates with
                // the global propagator (a no-op until set). Only its own
                // spans are recorded (3 per request, as for the others),
                // not hyper's, h2's and tonic's internal ones.
                let only_middleware = tracing_subscriber::filter::Targets::new().with_target(
                    tracing_opentelemetry_instrumentation_sdk::TRACING_TARGET,
                    tracing::Level::TRACE,
                );
                let subscriber = tracing_subscriber::registry().with(
                    tracing_opentelemetry::layer()
                        .with_tracer(pipeline.tracer_provider().tracer("overhead"))
                        .with_filter(only_middleware),
                );
                tracing::subscriber::set_global_default(subscriber)?;
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                Telemetry::Pipeline(Box::new(pipeline))
            }
            Variant::OtelManual => Telemetry::Pipeline(Box::new(Pipeline::new(&config())?)),
            Variant::Fastrace => {
                // Baton's OTLP/gRPC span encoder, driven by a runtime of its
                // own on fastrace's collector thread.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let exporter = {
                    let _entered = runtime.enter();
                    match span_exporter(&config().otlp.traces)? {
                        OtlpSpanExporter::Grpc(grpc) => grpc,
                        OtlpSpanExporter::Http(_) => return Err("expected OTLP/gRPC".into()),
                    }
                };
                let exported = Arc::new(AtomicU64::new(0));
                let counted = Counted {
                    inner: exporter,
                    exported: Arc::clone(&exported),
                };
                let resource = Resource::builder().with_service_name(SERVICE_NAME).build();
                let reporter = fastrace_opentelemetry::OpenTelemetryReporter::new(
                    counted,
                    Cow::Owned(resource),
                    InstrumentationScope::builder("overhead").build(),
                )
                .with_block_on(move |future| runtime.block_on(future));
                fastrace::set_reporter(reporter, fastrace::collector::Config::default());
                Telemetry::Fastrace(exported)
            }
        })
    }

    /// The tracer the hand-written variant records with.
    fn sdk_tracer(&self) -> Option<SdkTracer> {
        match self {
            Telemetry::Pipeline(p) => Some(p.tracer_provider().tracer("overhead")),
            _ => None,
        }
    }

    /// Exports everything recorded so far.
    fn flush(&self) {
        match self {
            Telemetry::Uninstrumented => {}
            Telemetry::Baton(t) => {
                if let Some(provider) = t.tracer_provider() {
                    let _flushed = provider.force_flush();
                }
            }
            Telemetry::Pipeline(p) => {
                let _flushed = p.tracer_provider().force_flush();
            }
            Telemetry::Fastrace(_) => fastrace::flush(),
        }
    }

    /// Stops export; the span counters at the end.
    fn shutdown(self) -> Result<Delivered, BoxError> {
        let deadline = Duration::from_secs(30);
        let report = match self {
            Telemetry::Uninstrumented => return Ok(Delivered::default()),
            Telemetry::Fastrace(exported) => {
                fastrace::flush();
                return Ok(Delivered {
                    exported: exported.load(Ordering::Relaxed),
                    ..Delivered::default()
                });
            }
            Telemetry::Baton(t) => (*t).shutdown(deadline),
            Telemetry::Pipeline(p) => (*p).shutdown(deadline),
        };
        // Spans lost (a queue overflowing at saturation) are counted and
        // reported by the parent, not an error of the run.
        if !report.errors.is_empty() {
            eprintln!("overhead: shutdown: {report}");
        }
        Ok(Delivered::from(report.spans))
    }
}

/// What became of a process's spans.
#[derive(Default)]
struct Delivered {
    exported: u64,
    dropped: u64,
    failed: u64,
}

impl From<StatsSnapshot> for Delivered {
    fn from(s: StatsSnapshot) -> Self {
        Delivered {
            exported: s.exported,
            dropped: s.dropped,
            failed: s.failed,
        }
    }
}

/// fastrace's reporter does not count what it delivers: this does.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    exported: Arc<AtomicU64>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        self.inner.export(batch).await?;
        self.exported.fetch_add(spans, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Starts the Echo service; returns its port.
async fn start_echo(variant: Variant, tracer: Option<SdkTracer>) -> Result<u16, BoxError> {
    // Small request/response exchanges: no Nagle delay on either side.
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into())?.with_nodelay(Some(true));
    let port = incoming.local_addr()?.port();
    let echo = EchoServer::new(UnaryEcho::default());
    let mut server = tonic::transport::Server::builder();
    match variant {
        Variant::Baton => tokio::spawn(
            server
                .layer(GrpcServerLayer::new())
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        Variant::TracingOtel => tokio::spawn(
            server
                .layer(tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default())
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        Variant::OtelManual => tokio::spawn(
            server
                .layer(manual::GrpcLayer {
                    tracer: tracer.ok_or("no tracer")?,
                    kind: SpanKind::Server,
                })
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        Variant::Fastrace => tokio::spawn(
            server
                .layer(fastrace_tonic::FastraceServerLayer::default())
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        Variant::Uninstrumented => {
            tokio::spawn(server.add_service(echo).serve_with_incoming(incoming))
        }
    };
    Ok(port)
}

/// Starts the gateway in front of Echo on `echo_port`; returns its port.
async fn start_gateway(
    variant: Variant,
    tracer: Option<SdkTracer>,
    echo_port: u16,
) -> Result<u16, BoxError> {
    let echo = format!("http://127.0.0.1:{echo_port}");
    // One HTTP/2 connection for all the gateway's calls, as a tonic client has.
    let channel = Endpoint::from_shared(echo.clone())?.connect().await?;
    let router = match variant {
        Variant::Baton => gateway(EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(GrpcClientLayer::new(&echo.parse()?))
                .service(channel),
        ))
        .layer(HttpServerLayer::new()),
        // The order of axum-tracing-opentelemetry's README.
        Variant::TracingOtel => gateway(EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer)
                .service(channel),
        ))
        .layer(OtelInResponseLayer)
        .layer(OtelAxumLayer::default()),
        Variant::OtelManual => {
            let tracer = tracer.ok_or("no tracer")?;
            gateway(EchoClient::new(
                tower::ServiceBuilder::new()
                    .layer(manual::GrpcLayer {
                        tracer: tracer.clone(),
                        kind: SpanKind::Client,
                    })
                    .service(channel),
            ))
            // `Router::layer` wraps each route, after routing: the
            // middleware sees the `MatchedPath`.
            .layer(axum::middleware::from_fn_with_state(
                tracer,
                manual::http_server,
            ))
        }
        // fastrace-tonic's client layer only propagates: the CLIENT span
        // around it is `fastrace_client`'s.
        Variant::Fastrace => gateway(EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(fastrace_client::SpanLayer)
                .layer(fastrace_tonic::FastraceClientLayer)
                .service(channel),
        ))
        .layer(fastrace_axum::FastraceLayer::default()),
        Variant::Uninstrumented => gateway(EchoClient::new(channel)),
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    // Small request/response exchanges: no Nagle delay on either side.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr.port())
}

/// The gateway: `GET /users/{id}` answers with what Echo returns for `id`.
fn gateway<S>(client: EchoClient<S>) -> Router
where
    S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<StdError>,
    S::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as tonic::codegen::Body>::Error: Into<StdError> + Send,
{
    async fn user<S>(
        State(mut client): State<EchoClient<S>>,
        Path(id): Path<String>,
    ) -> Result<String, StatusCode>
    where
        S: tonic::client::GrpcService<tonic::body::Body>,
        S::Error: Into<StdError>,
        S::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
        <S::ResponseBody as tonic::codegen::Body>::Error: Into<StdError> + Send,
    {
        let request = EchoRequest {
            message: id,
            ..Default::default()
        };
        match client.unary(request).await {
            Ok(reply) => Ok(reply.into_inner().message),
            Err(_) => Err(StatusCode::BAD_GATEWAY),
        }
    }
    Router::new()
        .route("/users/{id}", get(user::<S>))
        .with_state(client)
}
