//! The demo services as four processes exporting straight to a real Jaeger v2
//! (built by `scripts/setup-peers`), run natively from `deploy/jaeger.yaml`,
//! the file `docker-compose.yml` mounts, on picked loopback ports: a checkout
//! is one trace in Jaeger's query API, with every span under the right parent,
//! the right kinds and names, and the gateway's baggage at inventory.
#![allow(missing_docs, unreachable_pub, reason = "tests")]

mod services;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use services::{Services, pick_free_port, wait_for_port};

/// How long Jaeger gets to start, and the spans to arrive in full.
const DEADLINE: Duration = Duration::from_secs(60);

/// The gateway's root span: named by its route template, not the path.
const ROOT: &str = "GET /checkout/{sku}";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Jaeger process on picked 127.0.0.1 ports, killed when dropped.
struct Jaeger {
    child: Child,
    query_port: u16,
    otlp_grpc_port: u16,
    otlp_http_port: u16,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Jaeger {
    /// Starts `.peers/jaeger/jaeger --config deploy/jaeger.yaml`, listening
    /// on loopback and fresh ports through the file's environment overrides,
    /// and waits until its query API and OTLP receivers answer. Prometheus is
    /// left at its compose default, which does not resolve here: Jaeger must
    /// start without it.
    fn start(test: &str) -> Jaeger {
        let root = repo_root();
        let binary = root.join(".peers/jaeger/jaeger");
        assert!(
            binary.is_file(),
            "Jaeger v2 is not installed at {}: run scripts/setup-peers (it builds Jaeger with go)",
            binary.display()
        );
        let log =
            std::env::temp_dir().join(format!("baton-jaeger-{test}-{}.log", std::process::id()));
        let out = File::create(&log).expect("jaeger log file");
        let err = out.try_clone().expect("jaeger log file");
        // Built before the process starts, so nothing between spawning and
        // the drop guard can panic and leave Jaeger running.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let [query_port, query_grpc_port, otlp_grpc_port, otlp_http_port] =
            [(); 4].map(|()| pick_free_port());
        let child = Command::new(&binary)
            .arg("--config")
            .arg(root.join("deploy/jaeger.yaml"))
            .env("JAEGER_LISTEN_HOST", "127.0.0.1")
            .env("JAEGER_QUERY_HTTP_PORT", query_port.to_string())
            .env("JAEGER_QUERY_GRPC_PORT", query_grpc_port.to_string())
            .env("JAEGER_OTLP_GRPC_PORT", otlp_grpc_port.to_string())
            .env("JAEGER_OTLP_HTTP_PORT", otlp_http_port.to_string())
            .env_remove("PROMETHEUS_URL")
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut jaeger = Jaeger {
            child,
            query_port,
            otlp_grpc_port,
            otlp_http_port,
            log,
            rt,
            http: reqwest::Client::new(),
        };
        jaeger.wait_ready();
        jaeger
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while self.get("/api/services").is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "jaeger exited before it was ready ({status}):\n{}",
                    self.log_text()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "jaeger's query API did not answer within {DEADLINE:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_for_port(self.otlp_grpc_port);
        wait_for_port(self.otlp_http_port);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `path` of the query API as JSON, or `None` while it does not answer
    /// 200 with JSON.
    fn get(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.query_port);
        self.rt.block_on(async {
            let response = self.http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            serde_json::from_str(&response.text().await.ok()?).ok()
        })
    }

    /// Polls `path` until `done` holds for its JSON or the deadline passed;
    /// the JSON seen last.
    fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let seen = self.get(path).unwrap_or(Value::Null);
            if done(&seen) || started.elapsed() > DEADLINE {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One span of a trace from `/api/traces/{id}`, with its service resolved.
#[derive(Debug)]
struct Span {
    id: String,
    trace_id: String,
    name: String,
    service: String,
    kind: String,
    /// The span ids of its `CHILD_OF` references.
    parents: Vec<String>,
    /// Any other references (`FOLLOWS_FROM`); the demo makes none.
    other_refs: usize,
    tags: Value,
}

impl Span {
    fn tag(&self, key: &str) -> Option<&Value> {
        self.tags
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| &t["value"])
    }
}

/// The spans of the single trace in a `/api/traces/{id}` answer.
fn spans_of(answer: &Value) -> Vec<Span> {
    let Some(trace) = answer["data"].get(0) else {
        return Vec::new();
    };
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    trace["spans"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let refs = s["references"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut span = Span {
                id: str_of(&s["spanID"]),
                trace_id: str_of(&s["traceID"]),
                name: str_of(&s["operationName"]),
                service: str_of(&trace["processes"][str_of(&s["processID"])]["serviceName"]),
                kind: String::new(),
                parents: refs
                    .iter()
                    .filter(|r| r["refType"] == "CHILD_OF")
                    .map(|r| str_of(&r["spanID"]))
                    .collect(),
                other_refs: refs.iter().filter(|r| r["refType"] != "CHILD_OF").count(),
                tags: s["tags"].clone(),
            };
            span.kind = span.tag("span.kind").map(str_of).unwrap_or_default();
            span
        })
        .collect()
}

/// One line a span, for failure messages.
fn summary(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "  {} {:<9} {:<6} {:<24} parents {:?}\n",
                s.id, s.service, s.kind, s.name, s.parents
            )
        })
        .collect()
}

/// The services and the spans each checkout leaves: gateway's server span,
/// its gRPC and HTTP client spans, orders' server span and two client spans,
/// inventory's two server spans, pricing's server span.
const SERVICES: [&str; 4] = ["gateway", "orders", "inventory", "pricing"];
const SPANS_PER_CHECKOUT: usize = 9;

/// Runs the services exporting to Jaeger over `protocol` at `endpoint`, sends
/// one checkout as `tenant`, and checks the trace Jaeger shows for it.
fn checkout_is_one_trace_in_jaeger(
    jaeger: &Jaeger,
    protocol: &str,
    endpoint: String,
    tenant: &str,
) {
    let services = Services::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        // Jaeger takes traces only, as the collector forwards it only those
        // in docker-compose.yml.
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
    ]);
    let status = services.checkout("widget", tenant, "ann");
    assert!(status.is_success(), "checkout answered {status}");

    let lists = |v: &Value, service: &str| {
        v["data"]
            .as_array()
            .is_some_and(|d| d.contains(&Value::from(service)))
    };
    let listed = jaeger.poll("/api/services", |v| SERVICES.iter().all(|s| lists(v, s)));
    for service in SERVICES {
        assert!(
            lists(&listed, service),
            "{service} is not among Jaeger's services: {listed}"
        );
    }

    // The gateway's root span names the trace; then wait until every span
    // of it, from four processes, has arrived.
    let found = jaeger.poll("/api/traces?service=gateway&limit=20", |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    });
    let traces = found["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(traces.len(), 1, "one checkout, one gateway trace: {found}");
    let trace_id = traces[0]["traceID"]
        .as_str()
        .unwrap_or_else(|| panic!("a trace without traceID: {found}"))
        .to_owned();
    let answer = jaeger.poll(&format!("/api/traces/{trace_id}"), |v| {
        let spans = spans_of(v);
        spans.len() >= SPANS_PER_CHECKOUT
            && spans
                .iter()
                .all(|s| s.parents.iter().all(|p| spans.iter().any(|q| q.id == *p)))
    });
    let spans = spans_of(&answer);
    let tree = summary(&spans);
    assert_eq!(
        spans.len(),
        SPANS_PER_CHECKOUT,
        "trace {trace_id} is not one checkout's spans:\n{tree}"
    );

    let in_trace: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        in_trace,
        SERVICES.into_iter().collect(),
        "trace {trace_id} is not the four services:\n{tree}"
    );
    for span in &spans {
        assert_eq!(span.trace_id, trace_id, "a span of another trace:\n{tree}");
        assert_eq!(
            span.other_refs, 0,
            "{} has a non-CHILD_OF reference:\n{tree}",
            span.name
        );
        for parent in &span.parents {
            assert!(
                spans.iter().any(|s| s.id == *parent),
                "{} {}'s parent {parent} is not in the trace:\n{tree}",
                span.service,
                span.name
            );
        }
    }

    let find = |service: &str, kind: &str, name: &str| -> &Span {
        let mut matching = spans
            .iter()
            .filter(|s| s.service == service && s.kind == kind && s.name == name);
        let span = matching
            .next()
            .unwrap_or_else(|| panic!("no {service} {kind} span {name:?}:\n{tree}"));
        assert!(
            matching.next().is_none(),
            "more than one {service} {kind} span {name:?}:\n{tree}"
        );
        span
    };
    let assert_parent = |child: &Span, parent: &Span| {
        assert_eq!(
            child.parents,
            std::slice::from_ref(&parent.id),
            "{} {} {:?} is not a child of {} {} {:?}:\n{tree}",
            child.service,
            child.kind,
            child.name,
            parent.service,
            parent.kind,
            parent.name
        );
    };

    let root = find("gateway", "server", ROOT);
    assert!(
        root.parents.is_empty(),
        "the gateway's span has a parent:\n{tree}"
    );
    let roots = spans.iter().filter(|s| s.parents.is_empty()).count();
    assert_eq!(roots, 1, "more than one root:\n{tree}");

    // Each gRPC hop: the caller's client span under its server span, the
    // callee's server span of the same name under that.
    let hop = |caller: &Span, callee: &str, method: &str| {
        let client = find(&caller.service, "client", method);
        assert_parent(client, caller);
        let server = find(callee, "server", method);
        assert_parent(server, client);
        server
    };
    let place_order = hop(root, "orders", "shop.Orders/PlaceOrder");
    let reserve = hop(place_order, "inventory", "shop.Inventory/Reserve");
    hop(place_order, "inventory", "shop.Inventory/WatchStock");

    // The HTTP hop to pricing: the client span is named by the method alone
    // (it knows no route), the server span by its route template.
    let price_client = find("gateway", "client", "GET");
    assert_parent(price_client, root);
    assert_parent(find("pricing", "server", "GET /price/{sku}"), price_client);

    // The gateway put the tenant into baggage; inventory, two hops on,
    // records what arrived on its span.
    assert_eq!(
        reserve.tag("baggage.tenant"),
        Some(&Value::from(tenant)),
        "the gateway's baggage did not reach inventory:\n{tree}"
    );
}

#[test]
fn a_checkout_exported_over_otlp_grpc_is_one_trace_in_jaeger() {
    let jaeger = Jaeger::start("grpc");
    let endpoint = format!("http://127.0.0.1:{}", jaeger.otlp_grpc_port);
    checkout_is_one_trace_in_jaeger(&jaeger, "grpc", endpoint, "acme-grpc");
}

#[test]
fn a_checkout_exported_over_otlp_http_is_one_trace_in_jaeger() {
    let jaeger = Jaeger::start("http");
    let endpoint = format!("http://127.0.0.1:{}", jaeger.otlp_http_port);
    checkout_is_one_trace_in_jaeger(&jaeger, "http/protobuf", endpoint, "acme-http");
}
