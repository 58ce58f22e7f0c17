//! Baton's per-request cost end to end, with export on, against no
//! instrumentation and the usual alternatives.
//!
//! On 127.0.0.1, in two service processes: an axum gateway that calls a
//! tonic Echo service over one HTTP/2 channel, so three spans per request
//! (HTTP server and gRPC client in the gateway, gRPC server in Echo), each
//! process exporting its spans over OTLP/gRPC to a collector. The load comes
//! from this process, over HTTP/1.1, and is not counted. Five variants:
//!
//! - `uninstrumented`;
//! - `baton`, set up as README shows: `baton::init()` reads the collector
//!   from `OTEL_*` variables, the layers are built with `::new()`;
//! - `tracing-opentelemetry`: `axum-tracing-opentelemetry` +
//!   `tonic-tracing-opentelemetry` over `tracing-opentelemetry`;
//! - `opentelemetry-manual`: minimal hand-written layers on the
//!   `opentelemetry` 0.33 API (`overhead/manual.rs`);
//! - `fastrace`: `fastrace-axum` and `fastrace-tonic` (plus a CLIENT span,
//!   `overhead/fastrace_client.rs`), reported by `fastrace-opentelemetry`.
//!
//! All but `baton` export through the same encoder and exporter as Baton
//! (Baton's pipeline, or for fastrace its OTLP/gRPC exporter), so the
//! differences are the instrumentation's.
//!
//! Two measures:
//!
//! - `overhead callgrind <endpoint> [requests [variant]]` runs each variant
//!   once with both service processes under callgrind and prints the
//!   instructions per request of every thread of each (the runtime's
//!   workers, the span export thread, the others), counted from
//!   after warm-up until every measured span was exported. The files stay
//!   in `OVERHEAD_CALLGRIND_DIR` (default: the system's temporary
//!   directory, `baton-overhead/`) for `callgrind_annotate`.
//! - `overhead <endpoint> [requests [variant]]` runs rounds
//!   (`OVERHEAD_ROUNDS`, default 5) of every variant, each in fresh
//!   processes, rotating which goes first, and prints medians over rounds:
//!   p50 and p99 latency at a fixed offered load below saturation
//!   (`OVERHEAD_RATE` requests per second, default 2000, for
//!   `OVERHEAD_RATE_SECONDS`, default 5, after a warm-up at that rate; open
//!   loop: latency counts from when a request was due) and each process's
//!   peak RSS during it; then CPU per request of each process and of its
//!   export thread, and throughput, at saturation (closed loop over 32
//!   connections).
//!
//! `scripts/overhead` starts a local collector and runs both. Internally,
//! `overhead serve <gateway|echo> <variant> <endpoint> [echo port]` is one
//! service process (`overhead/serve.rs`).

// Beside this file rather than in src/bin/, where cargo would take them for
// binaries of their own.
#[path = "overhead/callgrind.rs"]
mod callgrind;
#[path = "overhead/fastrace_client.rs"]
mod fastrace_client;
#[path = "overhead/manual.rs"]
mod manual;
#[path = "overhead/serve.rs"]
mod serve;

use std::error::Error;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use callgrind::ThreadKind;
use serve::Role;

type BoxError = Box<dyn Error + Send + Sync>;

/// Concurrent connections of the closed-loop load, as a busy gateway has.
const CONNECTIONS: usize = 32;
/// Connections the fixed-rate load may use at once.
const OPEN_CONNECTIONS: usize = 64;
/// Requests before measuring: connections, pools and allocator warm.
const WARM_UP: u64 = 2_000;
/// The same under callgrind, where each request is ~50x slower.
const CALLGRIND_WARM_UP: u64 = 300;
/// No phase runs longer than this, whatever the request count.
const TIME_LIMIT: Duration = Duration::from_secs(120);
/// Requests measured when no count is given.
const DEFAULT_REQUESTS: u64 = 20_000;
const CALLGRIND_DEFAULT_REQUESTS: u64 = 3_000;
/// Rounds when `OVERHEAD_ROUNDS` is not set: enough for a median to shrug
/// off a round or two on a busy machine, few enough to wait for.
const DEFAULT_ROUNDS: usize = 5;
/// The fixed offered load: well below the slowest variant's saturation on
/// two shared cores, so latency measures the work, not a queue.
const DEFAULT_RATE: u64 = 2_000;
const DEFAULT_RATE_SECONDS: u64 = 5;
/// The kernel's USER_HZ: the unit of `/proc/<pid>/stat` CPU times.
const TICKS_PER_SECOND: u64 = 100;
/// Thread names (as the kernel keeps them, 15 bytes) of span export.
const EXPORT_THREADS: [&str; 2] = ["baton-spans-exp", "fastrace-global"];

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: overhead [callgrind] <collector OTLP/gRPC endpoint> [requests [variant]]";
    match args.first().map(String::as_str) {
        Some("serve") => {
            let [_, role, variant, endpoint, rest @ ..] = args.as_slice() else {
                return Err("usage: overhead serve <role> <variant> <endpoint> [echo port]".into());
            };
            let echo_port = rest.first().map(|p| p.parse()).transpose()?;
            serve::serve(
                Role::from_name(role)?,
                Variant::from_name(variant)?,
                endpoint,
                echo_port,
            )
        }
        Some("callgrind") => {
            let endpoint = args.get(1).ok_or(usage)?;
            let requests = count(args.get(2), CALLGRIND_DEFAULT_REQUESTS)?;
            let variants = variants(args.get(3))?;
            instructions(endpoint, requests, &variants)
        }
        Some(endpoint) => {
            let requests = count(args.get(1), DEFAULT_REQUESTS)?;
            let variants = variants(args.get(2))?;
            timed(endpoint, requests, &variants)
        }
        None => Err(usage.into()),
    }
}

fn count(arg: Option<&String>, default: u64) -> Result<u64, BoxError> {
    Ok(match arg {
        Some(n) => n.parse().map_err(|e| format!("requests {n:?}: {e}"))?,
        None => default,
    })
}

/// The variant named, or all of them.
fn variants(arg: Option<&String>) -> Result<Vec<Variant>, BoxError> {
    Ok(match arg {
        Some(name) => vec![Variant::from_name(name)?],
        None => Variant::ALL.to_vec(),
    })
}

/// A whole number from the environment, or `default`.
fn env_number(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(n) => Ok(n.parse().map_err(|e| format!("{name}={n:?}: {e}"))?),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(format!("{name}: {e}").into()),
    }
}

/// What instruments the two services.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Uninstrumented,
    Baton,
    TracingOtel,
    OtelManual,
    Fastrace,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Uninstrumented,
        Variant::Baton,
        Variant::OtelManual,
        Variant::TracingOtel,
        Variant::Fastrace,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Uninstrumented => "uninstrumented",
            Variant::Baton => "baton",
            Variant::TracingOtel => "tracing-opentelemetry",
            Variant::OtelManual => "opentelemetry-manual",
            Variant::Fastrace => "fastrace",
        }
    }

    fn from_name(name: &str) -> Result<Self, BoxError> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                format!("unknown variant {name:?}: one of {}", names.join(", ")).into()
            })
    }
}

/// A service process, commanded over its stdin.
struct Service {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Service {
    /// Starts `role`, under `valgrind` when given its arguments.
    fn start(
        role: Role,
        variant: Variant,
        endpoint: &str,
        echo_port: Option<u16>,
        valgrind: Option<&[String]>,
    ) -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let mut command = match valgrind {
            Some(args) => {
                let mut c = Command::new("valgrind");
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            .args(["serve", role.name(), variant.name(), endpoint])
            .args(echo_port.map(|p| p.to_string()))
            .envs(serve::baton_env(endpoint))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", role.name()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut service = Service {
            child,
            stdin,
            stdout,
            port: 0,
        };
        let ready = service.read_line()?;
        service.port = ready
            .strip_prefix("ready ")
            .ok_or_else(|| format!("{}: {ready:?} instead of ready", role.name()))?
            .parse()?;
        Ok(service)
    }

    fn read_line(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("a service process exited early".into());
        }
        Ok(line.trim().to_owned())
    }

    fn command(&mut self, command: &str) -> Result<String, BoxError> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read_line()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it; returns (exported, dropped, failed) spans.
    fn stop(mut self) -> Result<[u64; 3], BoxError> {
        let line = self.command("stop")?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("a service process failed: {status}").into());
        }
        let mut values = [0; 3];
        let fields = line.strip_prefix("stopped ").ok_or("no stop answer")?;
        for (value, field) in values.iter_mut().zip(fields.split_whitespace()) {
            *value = field.split_once('=').ok_or("not key=value")?.1.parse()?;
        }
        Ok(values)
    }
}

/// Both services of a run: Echo first, the gateway calling it.
struct Services {
    echo: Service,
    gateway: Service,
}

impl Services {
    fn start(
        variant: Variant,
        endpoint: &str,
        valgrind: impl Fn(Role) -> Option<Vec<String>>,
    ) -> Result<Self, BoxError> {
        let echo = Service::start(
            Role::Echo,
            variant,
            endpoint,
            None,
            valgrind(Role::Echo).as_deref(),
        )?;
        let gateway = Service::start(
            Role::Gateway,
            variant,
            endpoint,
            Some(echo.port),
            valgrind(Role::Gateway).as_deref(),
        )?;
        Ok(Services { echo, gateway })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.gateway.port))
    }

    /// Warm-up is over: both flush and start counting.
    fn mark(&mut self) -> Result<(), BoxError> {
        for service in [&mut self.gateway, &mut self.echo] {
            let answer = service.command("mark")?;
            if answer != "marked" {
                return Err(format!("{answer:?} instead of marked").into());
            }
        }
        Ok(())
    }

    fn by_role(&self, role: Role) -> &Service {
        match role {
            Role::Gateway => &self.gateway,
            Role::Echo => &self.echo,
        }
    }

    /// Stops both (the gateway first: Echo's spans are all ended by then);
    /// returns the span counters of both together, checked against the
    /// spans `requests` requests ended.
    fn stop(self, requests: u64) -> Result<String, BoxError> {
        let [ge, gd, gf] = self.gateway.stop()?;
        let [ee, ed, ef] = self.echo.stop()?;
        let ended = 3 * requests;
        Ok(format!(
            "spans: ended {ended}, exported {}, dropped {}, failed {}",
            ge + ee,
            gd + ed,
            gf + ef
        ))
    }
}

fn load_runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

// ---------------------------------------------------------------------------
// Instructions, under callgrind.

/// Runs each variant once under callgrind; prints every thread's
/// instructions per request and the totals against uninstrumented.
fn instructions(endpoint: &str, requests: u64, variants: &[Variant]) -> Result<(), BoxError> {
    let dir = match std::env::var_os("OVERHEAD_CALLGRIND_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("baton-overhead"),
    };
    std::fs::create_dir_all(&dir)?;
    let rt = load_runtime()?;
    let mut totals = Vec::new();
    for &variant in variants {
        let prefix = |role: Role| dir.join(format!("{}-{}", variant.name(), role.name()));
        for role in Role::ALL {
            remove_files(&prefix(role))?;
        }
        let valgrind = |role: Role| {
            Some(vec![
                "--tool=callgrind".to_owned(),
                "-q".to_owned(),
                "--separate-threads=yes".to_owned(),
                "--instr-atstart=no".to_owned(),
                "--dump-instr=yes".to_owned(),
                format!("--callgrind-out-file={}", prefix(role).display()),
            ])
        };
        let mut services = Services::start(variant, endpoint, valgrind)?;
        let warm = rt.block_on(closed(services.addr(), CALLGRIND_WARM_UP))?;
        services.mark()?;
        let measured = rt.block_on(closed(services.addr(), requests))?;
        let spans = services.stop(warm.sent() + measured.sent())?;
        let n = measured.sent();
        println!(
            "{}: {n} requests ({} failed); {spans}",
            variant.name(),
            measured.failed
        );
        let mut total = Instructions::default();
        for role in Role::ALL {
            let threads = callgrind::threads(&prefix(role))?;
            for t in &threads {
                println!(
                    "  {:<8} thread {:>2} {:<14} {:>9.1}k instructions/request",
                    role.name(),
                    t.number,
                    t.kind.name(),
                    t.instructions as f64 / n as f64 / 1000.0
                );
                total.add(t.kind, t.instructions as f64 / n as f64);
            }
        }
        println!(
            "  both processes: {:.1}k request path (main and workers), {:.1}k span export, \
             {:.1}k other threads (metric reader, idle), {:.1}k in all",
            total.requests / 1000.0,
            total.spans / 1000.0,
            total.others / 1000.0,
            total.all() / 1000.0
        );
        totals.push((variant, total));
    }
    if let Some((_, plain)) = totals.iter().find(|(v, _)| *v == Variant::Uninstrumented) {
        println!(
            "\nadded instructions per request over uninstrumented ({:.1}k), both processes:",
            plain.all() / 1000.0
        );
        println!("| variant | request path | span export | other threads | in all |");
        println!("|---|---|---|---|---|");
        for (variant, t) in totals.iter().filter(|(v, _)| *v != Variant::Uninstrumented) {
            println!(
                "| {} | +{:.1}k | +{:.1}k | +{:.1}k | +{:.1}k |",
                variant.name(),
                (t.requests - plain.requests) / 1000.0,
                (t.spans - plain.spans) / 1000.0,
                (t.others - plain.others) / 1000.0,
                (t.all() - plain.all()) / 1000.0
            );
        }
    }
    println!("callgrind files: {}", dir.display());
    Ok(())
}

/// Deletes callgrind's files of an earlier run with this prefix.
fn remove_files(prefix: &Path) -> Result<(), BoxError> {
    let (Some(dir), Some(stem)) = (prefix.parent(), prefix.file_name().and_then(|n| n.to_str()))
    else {
        return Ok(());
    };
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.strip_prefix(stem).is_some_and(|r| r.starts_with('-')))
        {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Instructions per request by kind of thread, both processes.
#[derive(Default)]
struct Instructions {
    requests: f64,
    spans: f64,
    others: f64,
}

impl Instructions {
    fn add(&mut self, kind: ThreadKind, per_request: f64) {
        match kind {
            ThreadKind::Main | ThreadKind::Requests => self.requests += per_request,
            ThreadKind::SpanExport => self.spans += per_request,
            ThreadKind::Other => self.others += per_request,
        }
    }

    fn all(&self) -> f64 {
        self.requests + self.spans + self.others
    }
}

// ---------------------------------------------------------------------------
// Timed rounds.

/// One run's timed figures.
#[derive(Clone, Copy, Default)]
struct Timed {
    /// Closed-loop throughput, requests per second.
    throughput: f64,
    /// CPU per request, microseconds: gateway, Echo, and their span export
    /// threads together.
    gateway_cpu: f64,
    echo_cpu: f64,
    export_cpu: f64,
    /// At the fixed load, milliseconds.
    p50: f64,
    p99: f64,
    /// Peak resident set at the fixed load, MiB.
    gateway_rss: f64,
    echo_rss: f64,
}

impl Timed {
    fn cpu(&self) -> f64 {
        self.gateway_cpu + self.echo_cpu
    }
}

fn timed(endpoint: &str, requests: u64, variants: &[Variant]) -> Result<(), BoxError> {
    let rounds = env_number("OVERHEAD_ROUNDS", DEFAULT_ROUNDS as u64)?.max(1) as usize;
    let rate = env_number("OVERHEAD_RATE", DEFAULT_RATE)?.max(1);
    let seconds = env_number("OVERHEAD_RATE_SECONDS", DEFAULT_RATE_SECONDS)?.max(1);
    let rt = load_runtime()?;
    // results[variant][round]
    let mut results = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        println!("round {} of {rounds}:", round + 1);
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let variant = variants[i];
            let (timed, spans) = timed_run(&rt, variant, endpoint, requests, rate, seconds)?;
            println!(
                "  {:<22} {:>6.0} req/s, CPU/request gateway {:.1} us, echo {:.1} us \
                 (span export {:.1}); at {rate}/s p50 {:.2} ms p99 {:.2} ms; peak RSS \
                 gateway {:.1} MiB, echo {:.1} MiB; {spans}",
                variant.name(),
                timed.throughput,
                timed.gateway_cpu,
                timed.echo_cpu,
                timed.export_cpu,
                timed.p50,
                timed.p99,
                timed.gateway_rss,
                timed.echo_rss
            );
            results[i].push(timed);
        }
    }
    println!(
        "\nmedians over {rounds} rounds ({requests} requests closed loop; {rate} requests/s for \
         {seconds} s):"
    );
    println!(
        "| variant | CPU/request (gateway + echo) | of which span export | throughput | p50 | p99 | \
         peak RSS (gateway + echo) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let plain = variants
        .iter()
        .position(|v| *v == Variant::Uninstrumented)
        .map(|i| &results[i]);
    for (variant, runs) in variants.iter().zip(&results) {
        let m = |f: fn(&Timed) -> f64| median(runs.iter().map(f).collect());
        // Ratios per round, against the same round's uninstrumented run.
        let ratio = |f: fn(&Timed) -> f64| match plain {
            Some(plain) if *variant != Variant::Uninstrumented => format!(
                " ({:.2}x)",
                median(runs.iter().zip(plain).map(|(r, p)| f(r) / f(p)).collect())
            ),
            _ => String::new(),
        };
        println!(
            "| {} | {:.1} + {:.1} µs{} | {:.1} µs | {:.0}/s{} | {:.2} ms | {:.2} ms{} | {:.1} + {:.1} MiB{} |",
            variant.name(),
            m(|t| t.gateway_cpu),
            m(|t| t.echo_cpu),
            ratio(Timed::cpu),
            m(|t| t.export_cpu),
            m(|t| t.throughput),
            ratio(|t| t.throughput),
            m(|t| t.p50),
            m(|t| t.p99),
            ratio(|t| t.p99),
            m(|t| t.gateway_rss),
            m(|t| t.echo_rss),
            ratio(|t| t.gateway_rss + t.echo_rss),
        );
    }
    Ok(())
}

/// One variant in fresh processes: warm-up, closed loop, fixed rate.
fn timed_run(
    rt: &tokio::runtime::Runtime,
    variant: Variant,
    endpoint: &str,
    requests: u64,
    rate: u64,
    seconds: u64,
) -> Result<(Timed, String), BoxError> {
    let mut services = Services::start(variant, endpoint, |_| None)?;
    let addr = services.addr();
    // Warm-up at the fixed rate: at saturation the span queues would fill
    // up, and the peak RSS below is the one at the fixed load.
    let (warm, warm_failed) = rt.block_on(open(addr, rate, WARM_UP.div_ceil(rate)))?;
    services.mark()?;
    let pids = Role::ALL.map(|r| services.by_role(r).pid());
    for pid in pids {
        // Resets the peak RSS (VmHWM) to the current RSS (proc(5)).
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    }
    let (mut latencies, open_failed) = rt.block_on(open(addr, rate, seconds))?;
    latencies.sort_unstable();
    let rss = pids.map(peak_rss);
    let cpu = pids.map(process_cpu);
    let export = pids.map(export_cpu);
    let measured = rt.block_on(closed(addr, requests))?;
    let n = measured.sent();
    let per_request = |before: &Result<Duration, BoxError>, pid: u32, now: fn(u32) -> _| {
        let before: &Duration = before.as_ref().map_err(|e| e.to_string())?;
        let now: Duration = now(pid)?;
        Ok::<_, BoxError>(micros_per_request(now.saturating_sub(*before), n))
    };
    let gateway_cpu = per_request(&cpu[0], pids[0], process_cpu)?;
    let echo_cpu = per_request(&cpu[1], pids[1], process_cpu)?;
    let export_cpu = per_request(&export[0], pids[0], export_cpu)?
        + per_request(&export[1], pids[1], export_cpu)?;
    let sent = warm.len() as u64 + warm_failed + n + latencies.len() as u64 + open_failed;
    let spans = services.stop(sent)?;
    let failed = warm_failed + measured.failed + open_failed;
    let spans = if failed > 0 {
        format!("{spans}; {failed} requests failed")
    } else {
        spans
    };
    let [gateway_rss, echo_rss] = rss;
    Ok((
        Timed {
            throughput: n as f64 / measured.wall.as_secs_f64(),
            gateway_cpu,
            echo_cpu,
            export_cpu,
            p50: millis(percentile(&latencies, 0.50)),
            p99: millis(percentile(&latencies, 0.99)),
            gateway_rss: gateway_rss?,
            echo_rss: echo_rss?,
        },
        spans,
    ))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        // Even: the mean of the two middle values.
        n if n % 2 == 0 => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        n => values[n / 2],
    }
}

fn micros_per_request(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

// ---------------------------------------------------------------------------
// Load.

/// What a phase of load did.
struct Load {
    ok: u64,
    failed: u64,
    wall: Duration,
}

impl Load {
    fn sent(&self) -> u64 {
        self.ok + self.failed
    }
}

/// Sends `requests` requests (bounded by [`TIME_LIMIT`]) over
/// [`CONNECTIONS`] connections, each sending the next as soon as it has an
/// answer.
async fn closed(addr: SocketAddr, requests: u64) -> Result<Load, BoxError> {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + TIME_LIMIT;
    let start = Instant::now();
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let next = Arc::clone(&next);
        connections.spawn(async move {
            let mut sender = connect(addr).await?;
            let (mut ok, mut failed) = (0, 0);
            while next.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                if get(&mut sender, addr).await? {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            Ok::<_, BoxError>((ok, failed))
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(result) = connections.join_next().await {
        let (o, f) = result??;
        ok += o;
        failed += f;
    }
    Ok(Load {
        ok,
        failed,
        wall: start.elapsed(),
    })
}

/// Offers `rate` requests per second for `seconds`, whatever the answers'
/// pace, over up to [`OPEN_CONNECTIONS`] connections; returns each
/// successful request's latency from when it was due, and the failures.
async fn open(addr: SocketAddr, rate: u64, seconds: u64) -> Result<(Vec<Duration>, u64), BoxError> {
    let (due, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..OPEN_CONNECTIONS {
        let rx = Arc::clone(&rx);
        let mut sender = connect(addr).await?;
        connections.spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0);
            loop {
                let Some(at) = rx.lock().await.recv().await else {
                    break;
                };
                if get(&mut sender, addr).await? {
                    latencies.push(at.elapsed());
                } else {
                    failed += 1;
                }
            }
            Ok::<_, BoxError>((latencies, failed))
        });
    }
    // A thread of its own keeps the schedule: tokio's timer has 1 ms steps.
    let period = Duration::from_secs(1) / u32::try_from(rate)?;
    let total = rate * seconds;
    let ticker = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..total {
            let at = start + period * u32::try_from(i).unwrap_or(u32::MAX);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if due.send(at).is_err() {
                return;
            }
        }
    });
    let (mut latencies, mut failed) = (Vec::new(), 0);
    while let Some(result) = connections.join_next().await {
        let (l, f) = result??;
        latencies.extend(l);
        failed += f;
    }
    ticker.join().map_err(|_| "the ticker panicked")?;
    Ok((latencies, failed))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One `GET /users/42`; whether it was answered 200.
async fn get(sender: &mut Sender, addr: SocketAddr) -> Result<bool, BoxError> {
    sender.ready().await?;
    let request = http::Request::get("/users/42")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status == StatusCode::OK)
}

// ---------------------------------------------------------------------------
// /proc.

/// CPU time of process `pid`, every thread including exited ones.
fn process_cpu(pid: u32) -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces: count fields
    // after it. utime and stime are fields 14 and 15 of stat(5); the text
    // after ") " starts at field 3.
    let rest = stat.rsplit_once(") ").ok_or("malformed stat")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> Result<u64, BoxError> { Ok(fields.next().ok_or("short stat")?.parse()?) };
    let ticks = next()? + next()?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// CPU time of `pid`'s live span export threads, from their schedstat
/// (nanoseconds, finer than stat's ticks).
fn export_cpu(pid: u32) -> Result<Duration, BoxError> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path();
        let comm = std::fs::read_to_string(path.join("comm"))?;
        if !EXPORT_THREADS.iter().any(|name| comm.starts_with(name)) {
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

/// `pid`'s peak resident set (VmHWM), MiB.
fn peak_rss(pid: u32) -> Result<f64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmHWM")?
        .parse()?;
    Ok(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn percentiles_are_ranks() {
        let sorted: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
