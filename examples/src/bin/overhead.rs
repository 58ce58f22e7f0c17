//! Baton's per-request overhead end to end, with export on.
//!
//! In one process, on 127.0.0.1: an axum gateway (Baton's `HttpServerLayer`)
//! that calls a tonic Echo service (`GrpcServerLayer`) through a
//! `GrpcClientLayer` channel, so three spans per request, exported over
//! OTLP/gRPC to a collector by Baton's pipeline with its defaults (what
//! `baton::init()` sets up). A load generator, also in this process, sends requests over
//! 32 HTTP/1.1 connections: once with everything uninstrumented, once with
//! Baton's layers, once with `axum-tracing-opentelemetry` +
//! `tonic-tracing-opentelemetry` (the stack the figures were measured
//! with), both exporting through the same pipeline. It prints throughput, CPU time per request, their ratios and
//! spans ended against spans exported, dropped and failed.
//!
//! Run: `scripts/overhead` (starts a local collector), or
//! `cargo run --profile bench -p baton-examples --bin overhead -- http://127.0.0.1:4317 [requests]`;
//! `none` instead of the endpoint records as usual but exports nowhere.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
use baton::grpc::client::GrpcClientLayer;
use baton::grpc::server::GrpcServerLayer;
use baton::http::server::HttpServerLayer;
use baton_exporters::Config;
use baton_exporters::config::Bsp;
use baton_exporters::pipeline::{BatchSpanProcessor, Pipeline, PipelineStats, StatsSnapshot};
use baton_testkit::{Discard, EchoClient, EchoRequest, EchoServer, UnaryEcho};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::{TcpListener, TcpStream};
use tonic::codegen::StdError;
use tonic::transport::Endpoint;
use tonic::transport::server::TcpIncoming;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

type BoxError = Box<dyn Error + Send + Sync>;

/// Concurrent connections, as in the scenario.
const CONNECTIONS: usize = 32;
/// Requests before measuring: connections, pools and allocator warm.
const WARM_UP: u64 = 2_000;
/// No phase runs longer than this, whatever the request count.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// The name of Baton's span export thread, as far as the kernel keeps it.
const EXPORT_THREAD: &str = "baton-spans-exp";
/// The collector argument that makes the instrumented phase export nowhere.
const DISCARD: &str = "none";
/// Requests measured when no count is given.
const DEFAULT_REQUESTS: u64 = 40_000;
/// The kernel's USER_HZ: the unit of `/proc/<pid>/stat` CPU times (100 on
/// every Linux architecture Rust targets).
const TICKS_PER_SECOND: u64 = 100;

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let collector = args.next().ok_or(
        "usage: overhead <collector OTLP/gRPC endpoint, e.g. http://127.0.0.1:4317, or none> [requests]",
    )?;
    let requests = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_REQUESTS,
    };
    // For profiling one phase alone.
    if let Some(only) = args.next() {
        let variant = Variant::ALL
            .into_iter()
            .find(|v| v.name() == only)
            .ok_or("the variant is one of uninstrumented, baton, tracing-opentelemetry")?;
        run(variant, &collector, requests)?.print(variant.name());
        return Ok(());
    }

    let plain = run(Variant::Uninstrumented, &collector, requests)?;
    plain.print(Variant::Uninstrumented.name());
    let baton = run(Variant::Baton, &collector, requests)?;
    baton.print(Variant::Baton.name());
    // Last: it installs a process-wide `tracing` subscriber.
    let otel = run(Variant::TracingOtel, &collector, requests)?;
    otel.print(Variant::TracingOtel.name());

    compare(&plain, &baton, Variant::Baton);
    compare(&plain, &otel, Variant::TracingOtel);
    Ok(())
}

/// What instruments the gateway and the Echo service in a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Uninstrumented,
    /// Baton's layers: HTTP server, gRPC client and server, with RED metrics.
    Baton,
    /// `axum-tracing-opentelemetry` and `tonic-tracing-opentelemetry` (the
    /// `tracing` + `tracing-opentelemetry` stack the issue measures), spans
    /// only, exported through the same pipeline as Baton's.
    TracingOtel,
}

impl Variant {
    const ALL: [Variant; 3] = [
        Variant::Uninstrumented,
        Variant::Baton,
        Variant::TracingOtel,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Uninstrumented => "uninstrumented",
            Variant::Baton => "baton",
            Variant::TracingOtel => "tracing-opentelemetry",
        }
    }
}

/// Prints `instrumented` against `plain`: throughput ratio, CPU overhead and
/// what became of the spans.
fn compare(plain: &Measured, instrumented: &Measured, variant: Variant) {
    let name = variant.name();
    let targets = variant == Variant::Baton;
    let throughput = instrumented.throughput() / plain.throughput();
    let overhead = instrumented.cpu_per_request() - plain.cpu_per_request();
    let overhead_services =
        instrumented.service_cpu_per_request() - plain.service_cpu_per_request();
    // Were the generator on another machine, the services would have all
    // the CPU; CPU-bound, their throughput ratio is their CPU ratio.
    let throughput_services =
        plain.service_cpu_per_request() / instrumented.service_cpu_per_request();
    let target = |t: &str| {
        if targets {
            format!(" (target {t})")
        } else {
            String::new()
        }
    };
    println!(
        "{name}: throughput ratio to uninstrumented {throughput:.3}{}",
        target(">= 0.90")
    );
    println!("  services only, CPU-bound estimate without the generator: {throughput_services:.3}");
    println!(
        "{name}: overhead {overhead:+.1} us CPU/request, process{}",
        target("<= 10")
    );
    println!("  services only, without the generator: {overhead_services:+.1} us CPU/request");
    if let Some(spans) = &instrumented.spans {
        println!(
            "  spans: ended {} (3 per request, warm-up included), exported {}, dropped {}, \
             export failed {}, unaccounted {}",
            spans.ended,
            spans.exported,
            spans.dropped,
            spans.failed,
            spans
                .ended
                .saturating_sub(spans.exported + spans.dropped + spans.failed),
        );
    }
}

/// One phase's figures.
struct Measured {
    requests: u64,
    failed: u64,
    wall: Duration,
    /// The whole process's CPU time.
    cpu: Duration,
    /// The load generator thread's share of it.
    generator_cpu: Duration,
    /// The span export thread's share of it (encoding and sending).
    export_cpu: Duration,
    /// Instrumented runs only.
    spans: Option<Spans>,
}

struct Spans {
    ended: u64,
    exported: u64,
    dropped: u64,
    failed: u64,
}

impl Measured {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn cpu_per_request(&self) -> f64 {
        micros_per_request(self.cpu, self.requests)
    }

    fn service_cpu_per_request(&self) -> f64 {
        micros_per_request(self.cpu.saturating_sub(self.generator_cpu), self.requests)
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {} requests ({} failed) in {:.2} s: {:.0} req/s; CPU {:.2} cores busy, \
             {:.1} us/request (generator {:.1}, services {:.1} of which span export {:.1})",
            self.requests,
            self.failed,
            self.wall.as_secs_f64(),
            self.throughput(),
            self.cpu.as_secs_f64() / self.wall.as_secs_f64(),
            self.cpu_per_request(),
            micros_per_request(self.generator_cpu, self.requests),
            self.service_cpu_per_request(),
            micros_per_request(self.export_cpu, self.requests),
        );
    }
}

fn micros_per_request(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// Starts the services (instrumented when given a collector), warms up,
/// measures `requests`, and stops.
fn run(variant: Variant, collector: &str, requests: u64) -> Result<Measured, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("services")
        .enable_all()
        .build()?;
    // The OTLP exporter's channel needs the runtime to build in and to run on.
    let telemetry = match variant {
        Variant::Uninstrumented => None,
        Variant::Baton | Variant::TracingOtel => {
            Some(rt.block_on(async { Telemetry::new(collector) })?)
        }
    };
    if let (Variant::TracingOtel, Some(t)) = (variant, &telemetry) {
        // The stack records through `tracing` and propagates with the
        // global propagator (a no-op until set). Only its own spans are
        // recorded (3 per request, as for Baton), not hyper's, h2's and
        // tonic's internal ones.
        let only_middleware = tracing_subscriber::filter::Targets::new().with_target(
            tracing_opentelemetry_instrumentation_sdk::TRACING_TARGET,
            tracing::Level::TRACE,
        );
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(t.tracer_provider.tracer("overhead"))
                .with_filter(only_middleware),
        );
        tracing::subscriber::set_global_default(subscriber)?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    let addr = rt.block_on(start(variant, telemetry.as_ref()))?;

    // A thread of its own, so its CPU time can be told apart.
    let generator = std::thread::Builder::new().name("loadgen".into()).spawn(
        move || -> Result<_, BoxError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let warm_up = rt.block_on(drive(addr, WARM_UP))?;
            let (cpu, generator_cpu, export_cpu) = (
                process_cpu()?,
                thread_cpu("loadgen")?,
                thread_cpu(EXPORT_THREAD)?,
            );
            let start = Instant::now();
            let (ok, failed) = rt.block_on(drive(addr, requests))?;
            let wall = start.elapsed();
            Ok((
                warm_up.0 + warm_up.1,
                Measured {
                    requests: ok + failed,
                    failed,
                    wall,
                    cpu: process_cpu()?.saturating_sub(cpu),
                    generator_cpu: thread_cpu("loadgen")?.saturating_sub(generator_cpu),
                    export_cpu: thread_cpu(EXPORT_THREAD)?.saturating_sub(export_cpu),
                    spans: None,
                },
            ))
        },
    )?;
    let (warm_up, mut measured) = generator.join().map_err(|_| "load generator panicked")??;

    if let Some(telemetry) = telemetry {
        let spans = telemetry.shutdown()?;
        measured.spans = Some(Spans {
            ended: 3 * (warm_up + measured.requests),
            exported: spans.exported,
            dropped: spans.dropped,
            failed: spans.failed,
        });
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(measured)
}

/// The providers every instrumented layer records to.
struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    /// Set when exporting to a collector: shuts everything down.
    pipeline: Option<Pipeline>,
    spans: PipelineStats,
}

impl Telemetry {
    /// Exports over OTLP/gRPC to `endpoint` through Baton's pipeline with its
    /// defaults (what `baton::init()` sets up), or, given [`DISCARD`], to
    /// nowhere: the difference between the two is the export's share.
    fn new(endpoint: &str) -> Result<Self, BoxError> {
        if endpoint == DISCARD {
            let resource = Resource::builder()
                .with_service_name("baton-overhead")
                .build();
            let processor = BatchSpanProcessor::new(Discard, &Bsp::default())?;
            let spans = processor.stats();
            return Ok(Telemetry {
                tracer_provider: SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_span_processor(processor)
                    .build(),
                meter_provider: SdkMeterProvider::builder()
                    .with_resource(resource)
                    .with_reader(PeriodicReader::builder(Discard).build())
                    .build(),
                pipeline: None,
                spans,
            });
        }
        let config = Config::from_vars(|name| match name {
            "OTEL_SERVICE_NAME" => Some("baton-overhead".to_owned()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_owned()),
            "OTEL_LOGS_EXPORTER" => Some("none".to_owned()),
            _ => None,
        });
        let pipeline = Pipeline::new(&config)?;
        Ok(Telemetry {
            tracer_provider: pipeline.tracer_provider(),
            meter_provider: pipeline.meter_provider(),
            spans: pipeline.span_stats(),
            pipeline: Some(pipeline),
        })
    }

    /// Flushes and stops export; returns the span counters at the end.
    fn shutdown(self) -> Result<StatsSnapshot, BoxError> {
        match self.pipeline {
            Some(pipeline) => {
                let report = pipeline.shutdown(Duration::from_secs(30));
                if !report.errors.is_empty() {
                    return Err(report.to_string().into());
                }
                Ok(report.spans)
            }
            None => {
                self.tracer_provider.shutdown()?;
                self.meter_provider.shutdown()?;
                Ok(self.spans.snapshot())
            }
        }
    }
}

/// Starts the Echo service and the gateway in front of it; returns the
/// gateway's address.
async fn start(variant: Variant, telemetry: Option<&Telemetry>) -> Result<SocketAddr, BoxError> {
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into())?;
    let port = incoming.local_addr()?.port();
    let echo = EchoServer::new(UnaryEcho);
    let mut server = tonic::transport::Server::builder();
    match (variant, telemetry) {
        (Variant::Baton, Some(t)) => tokio::spawn(
            server
                .layer(
                    GrpcServerLayer::new()
                        .with_tracer_provider(&t.tracer_provider)
                        .with_meter_provider(&t.meter_provider),
                )
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        (Variant::TracingOtel, _) => tokio::spawn(
            server
                .layer(tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default())
                .add_service(echo)
                .serve_with_incoming(incoming),
        ),
        _ => tokio::spawn(server.add_service(echo).serve_with_incoming(incoming)),
    };

    // One HTTP/2 connection for all the gateway's calls, as a tonic client has.
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    let router = match (variant, telemetry) {
        (Variant::Baton, Some(t)) => gateway(EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(
                    GrpcClientLayer::new()
                        .with_server_address("127.0.0.1", port)
                        .with_tracer_provider(&t.tracer_provider)
                        .with_meter_provider(&t.meter_provider),
                )
                .service(channel),
        ))
        .layer(
            HttpServerLayer::new()
                .with_tracer_provider(&t.tracer_provider)
                .with_meter_provider(&t.meter_provider),
        ),
        // The order of axum-tracing-opentelemetry's README.
        (Variant::TracingOtel, _) => gateway(EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer)
                .service(channel),
        ))
        .layer(OtelInResponseLayer)
        .layer(OtelAxumLayer::default()),
        _ => gateway(EchoClient::new(channel)),
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    // Small request/response exchanges: no Nagle delay on either side.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
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

/// Sends up to `requests` requests (bounded by [`TIME_LIMIT`]) over
/// [`CONNECTIONS`] connections to `addr`; returns (succeeded, failed).
async fn drive(addr: SocketAddr, requests: u64) -> Result<(u64, u64), BoxError> {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + TIME_LIMIT;
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        connections.spawn(connection(addr, requests, Arc::clone(&next), deadline));
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(result) = connections.join_next().await {
        let (o, f) = result??;
        ok += o;
        failed += f;
    }
    Ok((ok, failed))
}

/// One connection sending requests one after another while any are left.
async fn connection(
    addr: SocketAddr,
    requests: u64,
    next: Arc<AtomicU64>,
    deadline: Instant,
) -> Result<(u64, u64), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut ok, mut failed) = (0, 0);
    while next.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
        sender.ready().await?;
        let request = http::Request::get("/users/42")
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status == StatusCode::OK {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed))
}

/// CPU time of the whole process, every thread including exited ones.
fn process_cpu() -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name, in parentheses, may hold spaces: count fields
    // after it. utime and stime are fields 14 and 15 of stat(5); the text
    // after ") " starts at field 3.
    let rest = stat.rsplit_once(") ").ok_or("malformed /proc/self/stat")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next =
        || -> Result<u64, BoxError> { Ok(fields.next().ok_or("short /proc/self/stat")?.parse()?) };
    let ticks = next()? + next()?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// CPU time of this process's live threads whose name starts with `name`
/// (the kernel keeps 15 bytes of it), in nanoseconds from their schedstat
/// (finer than stat's ticks).
fn thread_cpu(name: &str) -> Result<Duration, BoxError> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        if !std::fs::read_to_string(path.join("comm"))?.starts_with(name) {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat"))?;
        let on_cpu = schedstat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?;
        total += on_cpu.parse::<u64>()?;
    }
    Ok(Duration::from_nanos(total))
}
