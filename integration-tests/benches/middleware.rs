//! Per-request overhead of Baton's HTTP server layer and gRPC client layer,
//! side by side with the same service uninstrumented and with
//! `axum-tracing-opentelemetry` / `tonic-tracing-opentelemetry` (the
//! `tracing` + `tracing-opentelemetry` stack), plus the cost of the metric
//! recording alone, and the floor: the `opentelemetry_sdk` work that any
//! OpenTelemetry instrumentation of one gateway request of
//! `examples/src/bin/overhead.rs` must do (its three spans and its metric
//! records), without HTTP, gRPC, propagation or context.
//!
//! The HTTP and gRPC groups time the bench thread's CPU time, not wall time:
//! CPU per request is what instrumentation costs, and on a shared machine
//! preemption would otherwise swamp differences of a few microseconds. The
//! request path (and, for gRPC, the client's connection tasks) runs on that
//! thread; the batch processor's export thread and the gRPC server's thread
//! are not in it.
//!
//! Every instrumented variant records to the same `SdkTracerProvider`
//! (always sampled, Baton's batch span processor with its defaults) whose
//! exporter only counts, so export costs the same and little; Baton also records
//! metrics into an `SdkMeterProvider` whose exporter drops them. At the end the bench
//! prints spans ended against spans exported: a difference is spans the
//! batch processor dropped.
//!
//! `cargo bench -p baton-integration-tests --bench middleware -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, reason = "bench setup")]
#![allow(missing_docs, reason = "bench")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
use baton::grpc::client::GrpcClientLayer;
use baton::http::server::HttpServerLayer;
use baton_exporters::config::Batch;
use baton_exporters::pipeline::BatchSpanProcessor;
use baton_testkit::{Discard, EchoClient, EchoRequest, EchoServer, UnaryEcho};
use cpu_time::ThreadTime;
use criterion::Criterion;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer;
use tower::ServiceExt;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An exporter that only counts what it is given.
#[derive(Debug, Clone, Default)]
struct CountingExporter(Arc<AtomicU64>);

impl SpanExporter for CountingExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

/// What every instrumented variant shares.
struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    /// The `tracing` subscriber the `tracing-opentelemetry` variants need.
    subscriber: Dispatch,
    exported: Arc<AtomicU64>,
    /// Requests made through an instrumented variant: one span each.
    ended: AtomicU64,
}

impl Telemetry {
    fn new() -> Self {
        let exporter = CountingExporter::default();
        let exported = Arc::clone(&exporter.0);
        let processor = BatchSpanProcessor::new(exporter, &Batch::SPANS).unwrap();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOn)
            .with_span_processor(processor)
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(Discard).build())
            .build();
        let subscriber = Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
        );
        // The tracing-opentelemetry stack propagates through the global
        // propagator, a no-op until set; Baton has its own (W3C by default).
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Telemetry {
            tracer_provider,
            meter_provider,
            subscriber,
            exported,
            ended: AtomicU64::new(0),
        }
    }

    /// Flushes the batch processor and prints spans ended against exported.
    /// The benchmark loops end spans faster than any request could, so the
    /// queue may overflow: the flush then reports the drops, printed here.
    fn report(&self) {
        if let Err(error) = self.tracer_provider.force_flush() {
            println!("flush: {error}");
        }
        let ended = self.ended.load(Ordering::Relaxed);
        let exported = self.exported.load(Ordering::Relaxed);
        println!(
            "spans ended {ended}, exported {exported}, dropped {}",
            ended.saturating_sub(exported)
        );
    }
}

/// One line of a group: how to make its service, and whether it needs the
/// `tracing` subscriber and produces spans.
#[derive(Clone, Copy)]
enum Variant {
    Uninstrumented,
    /// Baton's layers given the providers.
    Baton,
    /// Baton's layers built with `new()`, the providers set through
    /// `baton::global` (what `baton::init()` does): looked up per request.
    BatonGlobal,
    /// The same, the providers set straight on `opentelemetry::global`:
    /// followed through OpenTelemetry's own global path.
    BatonOpenTelemetryGlobal,
    TracingOtel,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Uninstrumented,
        Variant::Baton,
        Variant::BatonGlobal,
        Variant::BatonOpenTelemetryGlobal,
        Variant::TracingOtel,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Uninstrumented => "uninstrumented",
            Variant::Baton => "baton",
            Variant::BatonGlobal => "baton-global",
            Variant::BatonOpenTelemetryGlobal => "baton-opentelemetry-global",
            Variant::TracingOtel => "tracing-opentelemetry",
        }
    }

    /// Installs the providers where this variant's layers look them up.
    fn install(self, telemetry: &Telemetry) {
        match self {
            Variant::BatonGlobal => {
                baton::global::set_tracer_provider(telemetry.tracer_provider.clone());
                baton::global::set_meter_provider(telemetry.meter_provider.clone());
            }
            Variant::BatonOpenTelemetryGlobal => {
                opentelemetry::global::set_tracer_provider(telemetry.tracer_provider.clone());
                opentelemetry::global::set_meter_provider(telemetry.meter_provider.clone());
            }
            Variant::Uninstrumented | Variant::Baton | Variant::TracingOtel => {}
        }
    }

    /// Runs `body` with this variant's `tracing` dispatcher on the current
    /// thread: only the tracing-opentelemetry variant pays for a subscriber.
    fn run<R>(self, telemetry: &Telemetry, iters: u64, body: impl FnOnce() -> R) -> R {
        let dispatch = match self {
            Variant::TracingOtel => telemetry.subscriber.clone(),
            Variant::Uninstrumented
            | Variant::Baton
            | Variant::BatonGlobal
            | Variant::BatonOpenTelemetryGlobal => Dispatch::none(),
        };
        if !matches!(self, Variant::Uninstrumented) {
            telemetry.ended.fetch_add(iters, Ordering::Relaxed);
        }
        tracing::dispatcher::with_default(&dispatch, body)
    }
}

/// A current-thread runtime: the request path runs on the bench thread,
/// inside the variant's dispatcher.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn http_router(variant: Variant, telemetry: &Telemetry) -> Router {
    let router = Router::new().route("/users/{id}", get(|| async { "ok" }));
    match variant {
        Variant::Uninstrumented => router,
        Variant::Baton => router.layer(
            HttpServerLayer::new()
                .with_tracer_provider(&telemetry.tracer_provider)
                .with_meter_provider(&telemetry.meter_provider),
        ),
        Variant::BatonGlobal | Variant::BatonOpenTelemetryGlobal => {
            router.layer(HttpServerLayer::new())
        }
        // The order of the crate's README: the response layer inside.
        Variant::TracingOtel => router
            .layer(OtelInResponseLayer)
            .layer(OtelAxumLayer::default()),
    }
}

/// A request as a gateway would receive it: a sampled caller's trace.
fn http_request() -> Request<Body> {
    Request::get("/users/42")
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "bench/1")
        .header("traceparent", TRACEPARENT)
        .body(Body::empty())
        .unwrap()
}

/// (a) The axum router driven in-process, no network.
fn http_server(c: &mut Criterion, telemetry: &Telemetry) {
    let rt = runtime();
    let mut group = c.benchmark_group("http_server");
    for variant in Variant::ALL {
        let router = http_router(variant, telemetry);
        variant.install(telemetry);
        group.bench_function(variant.name(), |b| {
            b.iter_custom(|iters| {
                variant.run(telemetry, iters, || {
                    rt.block_on(async {
                        let start = ThreadTime::now();
                        for _ in 0..iters {
                            let response = router.clone().oneshot(http_request()).await;
                            black_box(response.unwrap());
                        }
                        start.elapsed()
                    })
                })
            });
        });
    }
    group.finish();
}

/// Starts the uninstrumented Echo server on 127.0.0.1 on a runtime of its
/// own (one worker thread), kept for the rest of the process.
fn echo_server() -> (tokio::runtime::Runtime, u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let incoming = rt
        .block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().unwrap()) })
        .unwrap()
        // Without it each reply waits for a delayed ACK.
        .with_nodelay(Some(true));
    let port = incoming.local_addr().unwrap().port();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(EchoServer::new(UnaryEcho::default()))
            .serve_with_incoming(incoming),
    );
    (rt, port)
}

/// Unary calls through `client`, `iters` of them; returns this thread's CPU time.
async fn calls<S>(client: &mut EchoClient<S>, iters: u64) -> Duration
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let start = ThreadTime::now();
    for _ in 0..iters {
        let request = EchoRequest {
            message: "hi".into(),
            ..Default::default()
        };
        black_box(client.unary(request).await.unwrap());
    }
    start.elapsed()
}

/// (b) Unary calls over a real loopback connection to an uninstrumented server.
fn grpc_client(c: &mut Criterion, telemetry: &Telemetry) {
    let (_server, port) = echo_server();
    let rt = runtime();
    // Connected now, on the bench thread's runtime, so the connection's
    // tasks run where the calls are made.
    let channel: Channel = rt
        .block_on(
            Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let mut group = c.benchmark_group("grpc_client");

    let mut plain = EchoClient::new(channel.clone());
    group.bench_function(Variant::Uninstrumented.name(), |b| {
        b.iter_custom(|iters| {
            Variant::Uninstrumented.run(telemetry, iters, || rt.block_on(calls(&mut plain, iters)))
        });
    });

    let layer = GrpcClientLayer::new(&format!("http://127.0.0.1:{}", port).parse().expect("a uri"))
        .with_tracer_provider(&telemetry.tracer_provider)
        .with_meter_provider(&telemetry.meter_provider);
    let mut baton = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service(channel.clone()),
    );
    group.bench_function(Variant::Baton.name(), |b| {
        b.iter_custom(|iters| {
            Variant::Baton.run(telemetry, iters, || rt.block_on(calls(&mut baton, iters)))
        });
    });

    let mut otel = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(OtelGrpcLayer)
            .service(channel),
    );
    group.bench_function(Variant::TracingOtel.name(), |b| {
        b.iter_custom(|iters| {
            Variant::TracingOtel.run(telemetry, iters, || rt.block_on(calls(&mut otel, iters)))
        });
    });
    group.finish();
}

/// A duration histogram as Baton's layers make it.
fn duration_histogram(
    meter: &opentelemetry::metrics::Meter,
    name: &'static str,
) -> opentelemetry::metrics::Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_boundaries(baton::metrics::DURATION_BOUNDARIES.to_vec())
        .build()
}

/// (c) The metric recording each layer does per request, alone: the
/// duration histogram with the layer's attribute set, built per request as
/// the layer builds it, and the HTTP server's active-requests +1/−1.
fn metrics(c: &mut Criterion, telemetry: &Telemetry) {
    let meter = telemetry.meter_provider.meter("bench");
    let histogram = |name| duration_histogram(&meter, name);
    let http = histogram("http.server.request.duration");
    let grpc = histogram("rpc.client.call.duration");
    let active = meter
        .i64_up_down_counter("http.server.active_requests")
        .build();
    let route: Arc<str> = "/users/{id}".into();
    let method: Arc<str> = "baton.test.Echo/Unary".into();
    let host = opentelemetry::StringValue::from("127.0.0.1");

    let mut group = c.benchmark_group("metrics");
    group.bench_function("http_server_duration", |b| {
        b.iter(|| {
            let attributes = [
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("http.route", Value::from(Arc::clone(&route))),
                KeyValue::new("network.protocol.version", "1.1"),
                KeyValue::new("http.response.status_code", 200_i64),
            ];
            http.record(black_box(0.000_123), &attributes);
        });
    });
    group.bench_function("http_server_active", |b| {
        b.iter(|| {
            let attributes = [
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.scheme", "http"),
            ];
            active.add(1, &attributes);
            active.add(-1, &attributes);
        });
    });
    group.bench_function("grpc_client_duration", |b| {
        b.iter(|| {
            let attributes = [
                KeyValue::new("rpc.system.name", "grpc"),
                KeyValue::new(
                    "rpc.method",
                    opentelemetry::StringValue::from(Arc::clone(&method)),
                ),
                KeyValue::new("rpc.response.status_code", "OK"),
                KeyValue::new("server.address", host.clone()),
                KeyValue::new("server.port", 50051_i64),
            ];
            grpc.record(black_box(0.000_123), &attributes);
        });
    });
    group.finish();
}

/// (d) The floor: what `opentelemetry_sdk` itself costs for one request of
/// the end-to-end scenario (gateway SERVER span, its gRPC CLIENT span, the
/// Echo service's SERVER span, each with the attributes the conventions ask
/// for and ended into the batch processor; three duration records and the
/// active-requests +1/−1), with the tracer used directly, not boxed, and the
/// instruments bound to their attribute sets beforehand (the cheapest way the
/// SDK records, and how Baton records). No instrumentation built on
/// `opentelemetry_sdk` can cost less per request.
fn floor(c: &mut Criterion, telemetry: &Telemetry) {
    use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};

    let tracer = telemetry.tracer_provider.tracer("floor");
    let meter = telemetry.meter_provider.meter("floor");
    let route: Arc<str> = "/users/{id}".into();
    let method: Arc<str> = "baton.test.Echo/Unary".into();
    let rpc = |side| {
        vec![
            KeyValue::new("rpc.system.name", "grpc"),
            KeyValue::new(
                "rpc.method",
                opentelemetry::StringValue::from(Arc::clone(&method)),
            ),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 50051_i64),
            KeyValue::new("rpc.response.status_code", side),
        ]
    };
    let bound = |name, attributes: &[KeyValue]| duration_histogram(&meter, name).bind(attributes);
    let (http, grpc_client, grpc_server) = (
        bound(
            "http.server.request.duration",
            &[
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("http.route", Value::from(Arc::clone(&route))),
                KeyValue::new("network.protocol.version", "1.1"),
                KeyValue::new("http.response.status_code", 200_i64),
            ],
        ),
        bound("rpc.client.call.duration", &rpc("OK")),
        bound("rpc.server.call.duration", &rpc("OK")),
    );
    let active = meter
        .i64_up_down_counter("http.server.active_requests")
        .build()
        .bind(&[
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.scheme", "http"),
        ]);

    let mut group = c.benchmark_group("floor");
    group.bench_function("opentelemetry_sdk_per_request", |b| {
        b.iter_custom(|iters| {
            telemetry.ended.fetch_add(3 * iters, Ordering::Relaxed);
            let start = ThreadTime::now();
            for _ in 0..iters {
                active.add(1);
                let server = tracer
                    .span_builder("GET /users/{id}")
                    .with_kind(SpanKind::Server)
                    .with_attributes([
                        KeyValue::new("http.request.method", "GET"),
                        KeyValue::new("http.route", Value::from(Arc::clone(&route))),
                        KeyValue::new("url.path", "/users/42".to_owned()),
                        KeyValue::new("url.scheme", "http"),
                        KeyValue::new("server.address", "127.0.0.1".to_owned()),
                        KeyValue::new("server.port", 8080_i64),
                        KeyValue::new("network.protocol.version", "1.1"),
                        KeyValue::new("http.response.status_code", 200_i64),
                    ])
                    .start(&tracer);
                let cx = opentelemetry::Context::new().with_span(server);
                let client = tracer
                    .span_builder(String::from(&*method))
                    .with_kind(SpanKind::Client)
                    .with_attributes(rpc("OK"))
                    .start_with_context(&tracer, &cx);
                let echo = tracer
                    .span_builder(String::from(&*method))
                    .with_kind(SpanKind::Server)
                    .with_attributes(rpc("OK"))
                    .start_with_context(&tracer, &cx.with_span(client));
                drop(echo);
                grpc_server.record(black_box(0.000_1));
                grpc_client.record(black_box(0.000_2));
                http.record(black_box(0.000_3));
                active.add(-1);
                drop(cx);
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn main() {
    let telemetry = Telemetry::new();
    let mut c = Criterion::default().configure_from_args();
    http_server(&mut c, &telemetry);
    grpc_client(&mut c, &telemetry);
    metrics(&mut c, &telemetry);
    floor(&mut c, &telemetry);
    c.final_summary();
    telemetry.report();
}
