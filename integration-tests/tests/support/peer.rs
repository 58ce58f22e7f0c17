//! Starts the Python, Node and Go OpenTelemetry peers (`integration-tests/peers/`)
//! on 127.0.0.1, waits for their readiness line with a deadline, talks HTTP/1
//! to them, and kills them on drop (also when the test panics).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Node can take several seconds to start on a loaded 2-core machine.
const READY_DEADLINE: Duration = Duration::from_secs(30);
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
/// A port picked free can be taken before the peer binds it; retry a few times.
const START_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    Python,
    Node,
    Go,
}

impl PeerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            PeerKind::Python => "python",
            PeerKind::Node => "node",
            PeerKind::Go => "go",
        }
    }
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests has a parent directory")
        .to_path_buf()
}

/// Asks the kernel for a free 127.0.0.1 port and releases it for the peer.
pub(crate) fn pick_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// The command that runs a peer, or a panic naming what is missing and how to install it.
fn peer_command(kind: PeerKind) -> Command {
    let root = repo_root();
    let setup = root.join("scripts/setup-peers");
    match kind {
        PeerKind::Python => {
            let python = root.join(".peers/python/bin/python");
            assert!(
                python.is_file(),
                "Python peer runtime missing: {} does not exist. Install it with `{}` \
                 (needs python3 with venv and pip).",
                python.display(),
                setup.display()
            );
            let mut cmd = Command::new(python);
            cmd.arg(root.join("integration-tests/peers/python/peer.py"));
            cmd
        }
        PeerKind::Node => {
            let node_ok = Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                node_ok,
                "Node peer runtime missing: `node` is not on PATH. Install Node.js (with npm), \
                 then run `{}`.",
                setup.display()
            );
            let peer_dir = root.join("integration-tests/peers/node");
            let module = peer_dir.join("node_modules/@opentelemetry/core");
            assert!(
                module.is_dir(),
                "Node peer dependencies missing: {} does not exist. Install them with `{}`.",
                module.display(),
                setup.display()
            );
            let mut cmd = Command::new("node");
            cmd.arg(peer_dir.join("peer.js"));
            cmd
        }
        PeerKind::Go => {
            let binary = root.join(".peers/go/peer");
            assert!(
                binary.is_file(),
                "Go peer missing: {} does not exist. Build it with `{}` (needs Go >= 1.26).",
                binary.display(),
                setup.display()
            );
            Command::new(binary)
        }
    }
}

/// A running peer process; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Peer {
    kind: PeerKind,
    port: u16,
    /// The gRPC port a peer that serves gRPC announced (`GRPC <port>`).
    grpc_port: Option<u16>,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Errors mean it already exited; nothing else to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum StartError {
    /// The peer exited before it was ready (most likely: port taken).
    Exited(ExitStatus),
}

impl Peer {
    pub(crate) fn start(kind: PeerKind) -> Peer {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(kind, pick_free_port()) {
                Ok(peer) => return peer,
                Err(StartError::Exited(status)) => last = Some(status),
            }
        }
        panic!(
            "{} peer exited before becoming ready {START_ATTEMPTS} times (last status: {last:?}); \
             its stderr is above",
            kind.name()
        );
    }

    fn try_start(kind: PeerKind, port: u16) -> Result<Peer, StartError> {
        let mut cmd = peer_command(kind);
        cmd.arg(port.to_string())
            // stdin stays open while we live: the peers exit on its EOF, so a
            // killed test process leaves no orphan behind.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("OTEL_TRACES_EXPORTER", "none")
            .env("OTEL_METRICS_EXPORTER", "none")
            .env("OTEL_LOGS_EXPORTER", "none");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} peer: {e}", kind.name()));
        let stdout = child.stdout.take().expect("stdout was piped");
        let mut peer = Peer {
            kind,
            port,
            grpc_port: None,
            child,
        };

        // Read lines on a thread so the wait below can have a deadline.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + READY_DEADLINE;
        let expected = format!("READY {port}");
        loop {
            if let Some(status) = peer.child.try_wait().expect("poll peer process") {
                return Err(StartError::Exited(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} peer printed no `{expected}` line within {READY_DEADLINE:?}",
                kind.name()
            );
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.trim() == expected => break,
                Ok(line) => match line.strip_prefix("GRPC ") {
                    Some(port) => peer.grpc_port = port.trim().parse().ok(),
                    None => eprintln!("[{} peer] {line}", kind.name()),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // stdout closed: the process is exiting; try_wait reports it.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        // The readiness line comes after bind, but check the port answers too.
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} peer said ready but 127.0.0.1:{port} refuses connections",
                kind.name()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(peer)
    }

    pub(crate) fn kind(&self) -> PeerKind {
        self.kind
    }

    /// `http://127.0.0.1:<port><path>`: the peer's HTTP server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The peer's gRPC port; a peer that serves no gRPC fails the test.
    pub(crate) fn grpc_port(&self) -> u16 {
        self.grpc_port.unwrap_or_else(|| {
            panic!(
                "{} peer announced no gRPC port (`GRPC <port>`)",
                self.kind.name()
            )
        })
    }

    /// Sends `GET /` with `headers` (repeated lines kept) and parses the peer's report.
    pub(crate) async fn call(&self, headers: &HeaderMap) -> PeerView {
        PeerView::parse(self.kind, self.get_json("/", headers).await)
    }

    /// Sends `GET path` with `headers` and returns the peer's JSON answer.
    pub(crate) async fn get_json(&self, path: &str, headers: &HeaderMap) -> Value {
        let (status, body) = http_get(self.port, path, headers).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            status,
            StatusCode::OK,
            "{} peer answered {status}: {text}",
            self.kind.name()
        );
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{} peer sent invalid JSON ({e}): {text}", self.kind.name()))
    }
}

/// One HTTP/1.1 GET over a fresh loopback connection.
pub(crate) async fn http_get(port: u16, path: &str, headers: &HeaderMap) -> (StatusCode, Bytes) {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to peer");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1 handshake with peer");
        let conn = tokio::spawn(conn);
        let mut req = Request::get(path)
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .body(Empty::<Bytes>::new())
            .expect("build request");
        for (name, value) in headers {
            req.headers_mut().append(name, value.clone());
        }
        let resp = sender
            .send_request(req)
            .await
            .expect("send request to peer");
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("read peer response body")
            .to_bytes();
        drop(sender);
        conn.abort();
        (status, body)
    };
    tokio::time::timeout(REQUEST_DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("no answer from 127.0.0.1:{port} within {REQUEST_DEADLINE:?}"))
}

/// What a peer's SDK saw inside its handler, and what it injected.
#[derive(Debug, Clone)]
pub(crate) struct PeerView {
    pub(crate) kind: PeerKind,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) span_trace_flags: u8,
    pub(crate) parent_span_id: Option<String>,
    /// Flags of the remote parent the SDK extracted.
    pub(crate) trace_flags: Option<u8>,
    pub(crate) tracestate: String,
    pub(crate) baggage: BTreeMap<String, String>,
    /// Node and Go only: baggage properties (metadata) per key.
    pub(crate) baggage_metadata: BTreeMap<String, String>,
    pub(crate) injected: HeaderMap,
    pub(crate) raw: Value,
}

impl PeerView {
    pub(crate) fn parse(kind: PeerKind, raw: Value) -> PeerView {
        let field = |name: &str| -> &Value {
            raw.get(name)
                .unwrap_or_else(|| panic!("{} peer report lacks `{name}`: {raw}", kind.name()))
        };
        let string = |name: &str| -> String {
            field(name)
                .as_str()
                .unwrap_or_else(|| panic!("`{name}` is not a string: {raw}"))
                .to_owned()
        };
        let opt_string = |name: &str| field(name).as_str().map(str::to_owned);
        let flags = |v: &Value| -> Option<u8> { v.as_u64().and_then(|n| u8::try_from(n).ok()) };
        let map = |name: &str| -> BTreeMap<String, String> {
            raw.get(name)
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut injected = HeaderMap::new();
        for (k, v) in map("injected") {
            injected.append(
                HeaderName::from_bytes(k.as_bytes()).expect("peer injected a valid header name"),
                HeaderValue::from_str(&v).expect("peer injected a valid header value"),
            );
        }
        PeerView {
            kind,
            trace_id: string("trace_id"),
            span_id: string("span_id"),
            span_trace_flags: flags(field("span_trace_flags")).expect("span_trace_flags is a byte"),
            parent_span_id: opt_string("parent_span_id"),
            trace_flags: flags(field("trace_flags")),
            tracestate: string("tracestate"),
            baggage: map("baggage"),
            baggage_metadata: map("baggage_metadata"),
            injected,
            raw,
        }
    }

    /// The header the peer injected, as text.
    pub(crate) fn injected(&self, name: &str) -> Option<&str> {
        self.injected.get(name).and_then(|v| v.to_str().ok())
    }
}
