//! A real rotel OTLP collector process for the export tests: started on
//! picked 127.0.0.1 ports, ready when both ports accept connections, killed
//! on drop, printing what it receives to a log file (its detailed debug log:
//! its Python processors panic on a second request in this version).

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long rotel gets to open its ports (it needs about 0.2 s).
const READY_WITHIN: Duration = Duration::from_secs(15);

/// A rotel collector and the files its processors write.
pub(crate) struct Rotel {
    child: Option<Child>,
    pub(crate) grpc_port: u16,
    pub(crate) http_port: u16,
    dir: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binary() -> PathBuf {
    let lib = repo_root().join(".peers/rotel/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "rotel is not installed under {}: run scripts/setup-peers",
            lib.display()
        )
    })
}

pub(crate) fn pick_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Parses rotel's detailed debug log into one JSON object per span
/// (`trace_id`, `span_id`, `parent_id`, `name`), metric (`name`) or log
/// record (`body`), each with its `kind` ("spans", "metrics", "logs").
fn parse_debug_log(text: &str) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    for raw in text.lines() {
        let line = strip_ansi(raw);
        let line = line.trim();
        let kind = if line.starts_with("Span #") {
            Some("spans")
        } else if line.starts_with("Metric #") {
            Some("metrics")
        } else if line.starts_with("LogRecord #") {
            Some("logs")
        } else {
            None
        };
        if let Some(kind) = kind {
            items.push(serde_json::json!({ "kind": kind }));
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim().trim_start_matches("-> "), value.trim());
        let Some(item) = items.last_mut() else {
            continue;
        };
        let field = match (item["kind"].as_str(), key) {
            (Some("spans"), "Trace ID") => "trace_id",
            (Some("spans"), "Parent ID") => "parent_id",
            (Some("spans"), "ID") => "span_id",
            (Some("spans" | "metrics"), "Name") => "name",
            (Some("logs"), "Body") => "body",
            _ => continue,
        };
        if item.get(field).is_none() {
            let value = value
                .strip_prefix("Str(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(value);
            item[field] = Value::from(value);
        }
    }
    items
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Rotel {
    /// Starts rotel on two fresh ports.
    pub(crate) fn start(test: &str) -> Rotel {
        let dir = std::env::temp_dir().join(format!("baton-export-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut rotel = Rotel {
            child: None,
            grpc_port: pick_free_port(),
            http_port: pick_free_port(),
            dir,
        };
        rotel.spawn();
        rotel
    }

    /// Starts the process on this collector's ports and log, and waits until
    /// it listens.
    fn spawn(&mut self) {
        let (dir, grpc_port, http_port) = (&self.dir, self.grpc_port, self.http_port);
        let mut command = Command::new(binary());
        command
            .arg("start")
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--exporter")
            .arg("blackhole")
            .stderr(Stdio::inherit());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rotel.log"))
            .expect("log file");
        command.args([
            "--debug-log",
            "traces",
            "--debug-log",
            "metrics",
            "--debug-log",
            "logs",
            "--debug-log-verbosity",
            "detailed",
        ]);
        command.stdout(log);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!("rotel-agent not found: run scripts/setup-peers")
            }
            Err(e) => panic!(
                "cannot start rotel-agent ({e}); is libpython3.11 installed? run scripts/setup-peers / .ci/run"
            ),
        };
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let up = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up(self.grpc_port) && up(self.http_port) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "rotel-agent exited before it was ready ({status}); libpython3.11 missing? run scripts/setup-peers"
                );
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "rotel-agent not ready within {READY_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the collector now (the files stay).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the collector without killing it (SIGSTOP): its ports still
    /// accept connections, which the kernel queues, and nothing answers, as
    /// with an overloaded or hung collector.
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen collector run again (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("rotel is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} rotel: {status}");
    }

    /// Restarts a killed collector on the same ports.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub(crate) fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub(crate) fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// What rotel logged so far of `kind` ("spans", "metrics", "logs").
    pub(crate) fn lines(&self, kind: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("rotel.log")).unwrap_or_default();
        parse_debug_log(&text)
            .into_iter()
            .filter(|item| item["kind"] == kind)
            .collect()
    }

    /// Waits until `done` holds for the `kind` lines, or `within` passed;
    /// returns the lines seen last.
    pub(crate) fn wait_for(
        &self,
        kind: &str,
        within: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let lines = self.lines(kind);
            if done(&lines) || started.elapsed() > within {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
