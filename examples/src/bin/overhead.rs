//! Baton's per-request overhead end to end, with export on.
//!
//! On 127.0.0.1: an axum gateway (Baton's `HttpServerLayer`) that calls a
//! tonic Echo service (`GrpcServerLayer`) through a `GrpcClientLayer`
//! channel, so three spans per request, exported over OTLP/gRPC to a
//! collector by Baton's pipeline with its defaults (what `baton::init()` sets
//! up). A load generator, in the same process as the services, sends
//! requests over 32 HTTP/1.1 connections. Four variants: everything
//! uninstrumented, Baton's layers, `axum-tracing-opentelemetry` +
//! `tonic-tracing-opentelemetry` (the common `tracing`-based stack), and
//! minimal hand-written instrumentation on the `opentelemetry` 0.33 API (in
//! `overhead/manual.rs`), all instrumented ones exporting through the same
//! pipeline.
//!
//! Each variant runs in a fresh process of its own (this binary, re-invoked
//! with the variant as third argument): it warms up, then measures
//! throughput, process CPU time (`/proc/self/stat`) and the load generator's
//! and span export thread's shares (their schedstat), and prints them, once
//! for people and once as an `overhead-result key=value ...` line. On a
//! small, noisy machine one run of each is not to be trusted (the
//! uninstrumented baseline alone varies 1.5-2x between runs), so the parent
//! runs rounds of all four, rotating which goes first, compares each
//! instrumented run with the same round's uninstrumented one, and prints the
//! median of those per-round ratios and differences with their range, and
//! what became of the spans over all rounds. A process per run also keeps the
//! tracing-opentelemetry variant's process-wide `tracing` subscriber, and any
//! state a run leaves behind, out of the others.
//!
//! Run: `scripts/overhead` (starts a local collector), or
//! `cargo run --profile bench -p baton-examples --bin overhead -- http://127.0.0.1:4317 [requests [variant]]`;
//! `none` instead of the endpoint records as usual but exports nowhere.
//! `OVERHEAD_ROUNDS` sets the number of rounds (default 5). A variant
//! (`uninstrumented`, `baton`, `tracing-opentelemetry` or
//! `opentelemetry-manual`) runs that one alone, in this process, once: what
//! the rounds run, and what to profile.

// Beside this file rather than in src/bin/, where cargo would take it for a
// binary of its own.
#[path = "overhead/manual.rs"]
mod manual;

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
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
use baton_exporters::config::Batch;
use baton_exporters::pipeline::{BatchSpanProcessor, Pipeline, PipelineStats, StatsSnapshot};
use baton_testkit::{Discard, EchoClient, EchoRequest, EchoServer, UnaryEcho};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
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

/// Concurrent connections, as a busy gateway has.
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
/// The environment variable that sets the number of rounds.
const ROUNDS_VAR: &str = "OVERHEAD_ROUNDS";
/// Rounds when `OVERHEAD_ROUNDS` is not set: enough for a median to shrug
/// off a round or two on a busy machine, few enough to wait for.
const DEFAULT_ROUNDS: usize = 5;
/// What starts the line a single run prints for the rounds to read.
const RESULT_PREFIX: &str = "overhead-result ";
/// The kernel's USER_HZ: the unit of `/proc/<pid>/stat` CPU times (100 on
/// every Linux architecture Rust targets).
const TICKS_PER_SECOND: u64 = 100;

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let collector = args.next().ok_or(
        "usage: overhead <collector OTLP/gRPC endpoint, e.g. http://127.0.0.1:4317, or none> \
         [requests [uninstrumented|baton|tracing-opentelemetry|opentelemetry-manual]]",
    )?;
    let requests = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_REQUESTS,
    };
    // One run, as a child of the rounds below or for profiling.
    if let Some(only) = args.next() {
        let variant = Variant::from_name(&only)?;
        let measured = run(variant, &collector, requests)?;
        measured.print(variant.name());
        println!("{}", measured.result_line());
        return Ok(());
    }

    let rounds = rounds()?;
    let mut results = Vec::with_capacity(rounds);
    for round in 0..rounds {
        println!("round {} of {rounds}:", round + 1);
        results.push(run_round(round, &collector, requests)?);
    }
    if rounds == 1 {
        println!("against the uninstrumented run:");
    } else {
        println!(
            "medians (and ranges) over {rounds} rounds, each run against the same round's \
             uninstrumented run:"
        );
    }
    compare(&results, Variant::Baton);
    compare(&results, Variant::TracingOtel);
    compare(&results, Variant::OtelManual);
    Ok(())
}

/// The rounds to run: `OVERHEAD_ROUNDS`, or [`DEFAULT_ROUNDS`].
fn rounds() -> Result<usize, BoxError> {
    let rounds = match std::env::var(ROUNDS_VAR) {
        Ok(n) => n.parse().map_err(|e| format!("{ROUNDS_VAR}={n:?}: {e}"))?,
        Err(std::env::VarError::NotPresent) => DEFAULT_ROUNDS,
        Err(e) => return Err(format!("{ROUNDS_VAR}: {e}").into()),
    };
    if rounds == 0 {
        return Err(format!("{ROUNDS_VAR} must be at least 1").into());
    }
    Ok(rounds)
}

/// One round's runs, indexed by [`Variant::index`].
type Round = [Measured; Variant::ALL.len()];

/// Runs each variant once, each in a fresh process. Round `i` starts with
/// variant `i mod 4`, so that none always runs first or last (and so on a
/// machine that warms up, or gets busier, in the same way each time).
fn run_round(round: usize, collector: &str, requests: u64) -> Result<Round, BoxError> {
    let mut runs: [Option<Measured>; Variant::ALL.len()] = Default::default();
    for k in 0..Variant::ALL.len() {
        let variant = Variant::ALL[(round + k) % Variant::ALL.len()];
        let measured = run_child(variant, collector, requests)?;
        measured.print_compact(variant.name());
        runs[variant.index()] = Some(measured);
    }
    let [Some(plain), Some(baton), Some(otel), Some(manual)] = runs else {
        return Err("a variant did not run".into());
    };
    Ok([plain, baton, otel, manual])
}

/// Runs `variant` alone in a fresh process of this binary and reads its
/// figures from the result line it prints.
fn run_child(variant: Variant, collector: &str, requests: u64) -> Result<Measured, BoxError> {
    let name = variant.name();
    let output = Command::new(std::env::current_exe()?)
        .args([collector, &requests.to_string(), name])
        // Its errors go straight to ours; its figures come back to us.
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting the {name} run: {e}"))?;
    if !output.status.success() {
        return Err(format!("the {name} run failed: {}", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| format!("the {name} run printed no result line"))?;
    Measured::parse(line).map_err(|e| format!("the {name} run's result line: {e}").into())
}

/// What instruments the gateway and the Echo service in a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Uninstrumented,
    /// Baton's layers: HTTP server, gRPC client and server, with RED metrics.
    Baton,
    /// `axum-tracing-opentelemetry` and `tonic-tracing-opentelemetry` (the
    /// `tracing` + `tracing-opentelemetry` stack), spans
    /// only, exported through the same pipeline as Baton's.
    TracingOtel,
    /// Hand-written layers on the `opentelemetry` API ([`manual`]), spans
    /// only, exported through the same pipeline as Baton's.
    OtelManual,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Uninstrumented,
        Variant::Baton,
        Variant::TracingOtel,
        Variant::OtelManual,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Uninstrumented => "uninstrumented",
            Variant::Baton => "baton",
            Variant::TracingOtel => "tracing-opentelemetry",
            Variant::OtelManual => "opentelemetry-manual",
        }
    }

    fn from_name(name: &str) -> Result<Self, BoxError> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown variant {name:?}: one of uninstrumented, baton, \
                     tracing-opentelemetry, opentelemetry-manual"
                )
                .into()
            })
    }

    /// Its place in [`Variant::ALL`] and in a [`Round`].
    fn index(self) -> usize {
        match self {
            Variant::Uninstrumented => 0,
            Variant::Baton => 1,
            Variant::TracingOtel => 2,
            Variant::OtelManual => 3,
        }
    }
}

/// An instrumented run against the uninstrumented run of the same round.
struct Comparison {
    /// Instrumented throughput over uninstrumented.
    throughput: f64,
    /// Were the generator on another machine, the services would have all
    /// the CPU; CPU-bound, their throughput ratio is their CPU ratio.
    throughput_services: f64,
    /// Extra CPU per request, whole process, in microseconds.
    overhead: f64,
    /// The same without the load generator's share.
    overhead_services: f64,
    /// The span export thread's CPU per request, in microseconds.
    export: f64,
}

impl Comparison {
    fn new(plain: &Measured, instrumented: &Measured) -> Self {
        Comparison {
            throughput: instrumented.throughput() / plain.throughput(),
            throughput_services: plain.service_cpu_per_request()
                / instrumented.service_cpu_per_request(),
            overhead: instrumented.cpu_per_request() - plain.cpu_per_request(),
            overhead_services: instrumented.service_cpu_per_request()
                - plain.service_cpu_per_request(),
            export: micros_per_request(instrumented.export_cpu, instrumented.requests),
        }
    }
}

/// Prints `variant` against uninstrumented over all `rounds`: the medians
/// of the per-round throughput ratios and CPU overheads, and what became of
/// the spans. Per round, because both runs of a round saw much the same
/// machine; the median, because a round now and then sees a busier one.
fn compare(rounds: &[Round], variant: Variant) {
    let name = variant.name();
    let comparisons: Vec<_> = rounds
        .iter()
        .map(|round| {
            Comparison::new(
                &round[Variant::Uninstrumented.index()],
                &round[variant.index()],
            )
        })
        .collect();
    let summary =
        |field: fn(&Comparison) -> f64| Summary::of(comparisons.iter().map(field).collect());
    let target = |t: &str| {
        if variant == Variant::Baton {
            format!(" (target {t})")
        } else {
            String::new()
        }
    };
    let ratio = |v: f64| format!("{v:.3}");
    let micros = |v: f64| format!("{v:+.1}");
    println!(
        "{name}: throughput ratio to uninstrumented {}{}",
        summary(|c| c.throughput).show(ratio),
        target(">= 0.90")
    );
    println!(
        "  services only, CPU-bound estimate without the generator: {}",
        summary(|c| c.throughput_services).show(ratio)
    );
    println!(
        "{name}: overhead {} us CPU/request, process{}",
        summary(|c| c.overhead).show(micros),
        target("<= 10")
    );
    println!(
        "  services only, without the generator: {} us CPU/request",
        summary(|c| c.overhead_services).show(micros)
    );
    println!(
        "  span export thread: {} us CPU/request",
        summary(|c| c.export).show(|v| format!("{v:.1}"))
    );
    let runs = rounds.iter().map(|round| &round[variant.index()]);
    if let Some(spans) = Spans::total(runs.filter_map(|m| m.spans.as_ref())) {
        println!(
            "  spans over all rounds: ended {} (3 per request, warm-up included), exported {}, \
             dropped {}, export failed {}, unaccounted {}",
            spans.ended,
            spans.exported,
            spans.dropped,
            spans.failed,
            spans.unaccounted(),
        );
    }
}

/// The median of some per-round figures, and their range.
struct Summary {
    median: f64,
    min: f64,
    max: f64,
    count: usize,
}

impl Summary {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let count = values.len();
        let median = match count {
            0 => f64::NAN,
            // Even: the mean of the two middle values.
            n if n % 2 == 0 => (values[n / 2 - 1] + values[n / 2]) / 2.0,
            n => values[n / 2],
        };
        Summary {
            median,
            min: values.first().copied().unwrap_or(f64::NAN),
            max: values.last().copied().unwrap_or(f64::NAN),
            count,
        }
    }

    /// The median, and the range when there is more than one value.
    fn show(&self, format: impl Fn(f64) -> String) -> String {
        if self.count > 1 {
            format!(
                "{} (range {} to {})",
                format(self.median),
                format(self.min),
                format(self.max)
            )
        } else {
            format(self.median)
        }
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

impl Spans {
    /// The sum over several runs; `None` when there are none.
    fn total<'a>(runs: impl Iterator<Item = &'a Spans>) -> Option<Spans> {
        runs.fold(None, |total, spans| {
            let total = total.unwrap_or(Spans {
                ended: 0,
                exported: 0,
                dropped: 0,
                failed: 0,
            });
            Some(Spans {
                ended: total.ended + spans.ended,
                exported: total.exported + spans.exported,
                dropped: total.dropped + spans.dropped,
                failed: total.failed + spans.failed,
            })
        })
    }

    /// Ended but neither exported, dropped nor failed: lost somewhere.
    fn unaccounted(&self) -> u64 {
        self.ended
            .saturating_sub(self.exported + self.dropped + self.failed)
    }
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

    /// One line of a round: throughput and CPU per request.
    fn print_compact(&self, name: &str) {
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        println!(
            "  {name:<22} {:>6.0} req/s, {:>6.1} us CPU/request (services {:.1}, span export {:.1}){failed}",
            self.throughput(),
            self.cpu_per_request(),
            self.service_cpu_per_request(),
            micros_per_request(self.export_cpu, self.requests),
        );
    }

    /// The figures as one `overhead-result key=value ...` line, which
    /// [`Measured::parse`] reads back in the parent.
    fn result_line(&self) -> String {
        let spans = match &self.spans {
            Some(s) => format!(
                " spans_ended={} spans_exported={} spans_dropped={} spans_failed={}",
                s.ended, s.exported, s.dropped, s.failed
            ),
            None => String::new(),
        };
        format!(
            "{RESULT_PREFIX}requests={} failed={} wall_ns={} cpu_us={} generator_cpu_us={} \
             export_cpu_us={}{spans}",
            self.requests,
            self.failed,
            self.wall.as_nanos(),
            self.cpu.as_micros(),
            self.generator_cpu.as_micros(),
            self.export_cpu.as_micros(),
        )
    }

    /// Reads what follows [`RESULT_PREFIX`] on a [`Measured::result_line`].
    fn parse(fields: &str) -> Result<Measured, BoxError> {
        let mut values = HashMap::new();
        for field in fields.split_whitespace() {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("{field:?} is not key=value"))?;
            let value: u64 = value.parse().map_err(|e| format!("{key}={value:?}: {e}"))?;
            values.insert(key, value);
        }
        let get = |key: &str| -> Result<u64, BoxError> {
            values
                .get(key)
                .copied()
                .ok_or_else(|| format!("no {key}").into())
        };
        // Only instrumented runs have span counters.
        let spans = if values.contains_key("spans_ended") {
            Some(Spans {
                ended: get("spans_ended")?,
                exported: get("spans_exported")?,
                dropped: get("spans_dropped")?,
                failed: get("spans_failed")?,
            })
        } else {
            None
        };
        Ok(Measured {
            requests: get("requests")?,
            failed: get("failed")?,
            wall: Duration::from_nanos(get("wall_ns")?),
            cpu: Duration::from_micros(get("cpu_us")?),
            generator_cpu: Duration::from_micros(get("generator_cpu_us")?),
            export_cpu: Duration::from_micros(get("export_cpu_us")?),
            spans,
        })
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
        Variant::Baton | Variant::TracingOtel | Variant::OtelManual => {
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
            let processor = BatchSpanProcessor::new(Discard, &Batch::SPANS)?;
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
    // Small request/response exchanges: no Nagle delay on either side.
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into())?.with_nodelay(Some(true));
    let port = incoming.local_addr()?.port();
    let echo = EchoServer::new(UnaryEcho::default());
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
        (Variant::OtelManual, Some(t)) => tokio::spawn(
            server
                .layer(manual::GrpcLayer {
                    tracer: t.tracer_provider.tracer("overhead"),
                    kind: SpanKind::Server,
                })
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
                    GrpcClientLayer::new(
                        &format!("http://127.0.0.1:{}", port).parse().expect("a uri"),
                    )
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
        (Variant::OtelManual, Some(t)) => {
            let tracer = t.tracer_provider.tracer("overhead");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Summary::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Summary::of(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(Summary::of(vec![7.0]).show(|v| format!("{v}")), "7");
    }

    #[test]
    fn result_line_reads_back() -> Result<(), BoxError> {
        let measured = Measured {
            requests: 3000,
            failed: 1,
            wall: Duration::from_nanos(612_345_678),
            cpu: Duration::from_millis(450),
            generator_cpu: Duration::from_micros(91_234),
            export_cpu: Duration::from_micros(20_001),
            spans: Some(Spans {
                ended: 15_000,
                exported: 14_990,
                dropped: 6,
                failed: 3,
            }),
        };
        let line = measured.result_line();
        let fields = line.strip_prefix(RESULT_PREFIX).ok_or("no prefix")?;
        let back = Measured::parse(fields)?;
        assert_eq!(back.result_line(), line);
        assert_eq!(back.spans.as_ref().map(Spans::unaccounted), Some(1));
        Ok(())
    }

    #[test]
    fn malformed_result_lines_are_errors() {
        assert!(Measured::parse("requests=1 failed").is_err());
        assert!(Measured::parse("requests=x").is_err());
        assert!(Measured::parse("requests=1 failed=0").is_err());
    }
}
