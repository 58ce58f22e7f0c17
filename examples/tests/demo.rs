//! Runs the `demo` binary (README's first command) and checks what it prints:
//! whole trace trees per checkout, each span named by its own service,
//! loopback calls without network stalls, error statuses, correlated log
//! lines, the RED tables and the summary.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

/// The demo's stdout, split into its sections.
struct Output {
    requests: String,
    traces: String,
    red: String,
    summary: String,
}

fn run_demo() -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("NO_COLOR", "1")
        // The demo names its services itself and uses the default propagators.
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_PROPAGATORS")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(
        output.status.success(),
        "demo failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let section = |title: &str| {
        let start = stdout
            .find(&format!("══ {title}"))
            .unwrap_or_else(|| panic!("no {title} section in:\n{stdout}"));
        let body = &stdout[start..];
        let body = &body[body.find('\n').map_or(body.len(), |i| i + 1)..];
        body[..body.find("\n══ ").unwrap_or(body.len())].to_owned()
    };
    Output {
        requests: section("requests"),
        traces: section("traces"),
        red: section("RED metrics"),
        summary: section("summary"),
    }
}

/// The trace trees: each a header line and its span lines.
fn trees(traces: &str) -> Vec<Vec<&str>> {
    let mut trees: Vec<Vec<&str>> = Vec::new();
    for line in traces.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("trace ") {
            trees.push(vec![line]);
        } else {
            trees
                .last_mut()
                .unwrap_or_else(|| panic!("a span line before any trace header: {line}"))
                .push(line);
        }
    }
    trees
}

/// The 32-hex trace id after `trace_id=` or `trace `.
fn trace_id<'a>(line: &'a str, prefix: &str) -> &'a str {
    let start = line
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {line}"))
        + prefix.len();
    &line[start..start + 32]
}

/// One span line of a tree.
#[derive(Debug)]
struct Span<'a> {
    service: &'a str,
    /// Nesting below the root, in the name column's two-space steps.
    depth: usize,
    name: &'a str,
    kind: &'a str,
    duration: Duration,
}

fn not_a_span<T>(line: &str) -> T {
    panic!("not a span line: {line}")
}

/// A span line: service, indented name, kind, `│bar│`, duration in ms, …
fn span<'a>(line: &'a str) -> Span<'a> {
    let (service, rest) = line.split_once(' ').unwrap_or_else(|| not_a_span(line));
    let (columns, after_bar) = rest.split_once('│').unwrap_or_else(|| not_a_span(line));
    let (_, after_bar) = after_bar
        .split_once('│')
        .unwrap_or_else(|| not_a_span(line));
    // Where the indented name starts: its depth, as the service column has
    // one width per tree.
    let name_start = line.len() - rest.trim_start().len();
    let columns = columns.trim_end();
    let (name, kind) = columns.rsplit_once(' ').unwrap_or_else(|| not_a_span(line));
    let ms: f64 = after_bar
        .split_whitespace()
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| not_a_span(line));
    Span {
        service,
        depth: name_start,
        name: name.trim(),
        kind,
        duration: Duration::from_secs_f64(ms / 1000.0),
    }
}

/// The time each CLIENT span spends outside the SERVER span right below it
/// (the other side of the same call): the loopback network, the HTTP/2 and
/// gRPC framing on both sides, and any wait for a TCP delayed ACK.
fn call_gaps(tree: &[&str]) -> Vec<(String, Duration)> {
    let spans: Vec<_> = tree[1..].iter().map(|l| span(l)).collect();
    spans
        .windows(2)
        .filter(|w| w[0].kind == "CLI" && w[1].kind == "SRV" && w[1].depth > w[0].depth)
        .map(|w| {
            let call = format!(
                "{} {} → {} {}",
                w[0].service, w[0].name, w[1].service, w[1].name
            );
            (call, w[0].duration.saturating_sub(w[1].duration))
        })
        .collect()
}

/// The tree whose root span answered with HTTP `status`.
fn tree_with_status<'a, 'b>(trees: &'a [Vec<&'b str>], status: u16) -> &'a [&'b str] {
    let code = format!("http.route=/checkout/{{sku}} http.response.status_code={status}");
    let mut found = trees.iter().filter(|t| t[1].contains(&code));
    let tree = found
        .next()
        .unwrap_or_else(|| panic!("no checkout tree with status {status}"));
    assert!(found.next().is_none(), "one checkout with status {status}");
    tree
}

#[test]
fn the_demo_prints_one_whole_tree_per_checkout_the_red_table_and_a_summary() {
    let out = run_demo();
    let trees = trees(&out.traces);

    // One tree per checkout, each its own trace, rooted at the gateway, and
    // nothing drawn apart from its request (/healthz is filtered out).
    assert_eq!(trees.len(), 6, "{}", out.traces);
    let ids: HashSet<_> = trees.iter().map(|t| trace_id(t[0], "trace ")).collect();
    assert_eq!(ids.len(), 6, "one trace id per checkout");
    for tree in &trees {
        let header = tree[0];
        assert!(header.contains("· GET /checkout/{sku} ·"), "{header}");
        assert!(!header.contains("incomplete"), "{header}");
        assert!(!out.traces.contains("/healthz"));
        // gateway → orders and gateway → pricing, client and server side.
        for span in [
            "shop.Orders/PlaceOrder                     CLI",
            "shop.Orders/PlaceOrder                   SRV",
            "  GET                                        CLI",
            "GET /price/{sku}                         SRV",
            "shop.Inventory/Reserve                 CLI",
            "shop.Inventory/Reserve               SRV",
        ] {
            assert!(
                tree.iter().any(|l| l.contains(span)),
                "no {span:?} in\n{}",
                tree.join("\n")
            );
        }
        // Baggage set at the gateway arrived two hops later.
        assert!(
            tree.iter()
                .any(|l| l.contains("shop.Inventory/Reserve") && l.contains("baggage.tenant=")),
            "{}",
            tree.join("\n")
        );
    }

    // Each span is drawn with the service that recorded it, and the trace
    // is named by the service at its root.
    for tree in &trees {
        assert!(tree[0].contains(" · gateway · "), "{}", tree[0]);
        for line in &tree[1..] {
            let span = span(line);
            let service = match (span.name, span.kind) {
                ("GET /checkout/{sku}", "SRV")
                | ("shop.Orders/PlaceOrder", "CLI")
                | ("GET", "CLI") => "gateway",
                ("shop.Orders/PlaceOrder", "SRV")
                | ("shop.Inventory/Reserve" | "shop.Inventory/WatchStock", "CLI") => "orders",
                ("shop.Inventory/Reserve" | "shop.Inventory/WatchStock", "SRV") => "inventory",
                ("GET /price/{sku}", "SRV") => "pricing",
                _ => panic!("an unexpected span: {line}"),
            };
            assert_eq!(span.service, service, "{line}");
        }
    }

    // Loopback calls do not stall: with TCP_NODELAY off, a reply waits for
    // the caller's delayed ACK, at least 40 ms on Linux, and the CLIENT span
    // outlasts its SERVER span by that much.
    let gaps: Vec<_> = trees.iter().flat_map(|t| call_gaps(t)).collect();
    // PlaceOrder, Reserve and the price per checkout; WatchStock per placed order.
    assert_eq!(gaps.len(), 6 * 3 + 4, "{gaps:?}");
    for (call, gap) in &gaps {
        assert!(
            *gap < Duration::from_millis(40),
            "{call} waits {gap:?} outside the server: a delayed ACK?\n{}",
            out.traces
        );
    }
    // And the typical call spends well under a millisecond on loopback
    // outside its server (the median: one call may meet a busy machine).
    let mut sorted: Vec<_> = gaps.iter().map(|(_, gap)| *gap).collect();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median < Duration::from_millis(1),
        "a loopback call typically waits {median:?} outside its server: {gaps:?}"
    );
    // The three that went through: the streaming call too.
    let ok: Vec<_> = trees
        .iter()
        .filter(|t| t[1].contains("http.response.status_code=200"))
        .collect();
    assert_eq!(ok.len(), 3);
    for tree in ok {
        assert!(
            tree.iter()
                .any(|l| l.contains("shop.Inventory/WatchStock") && l.contains("SRV"))
        );
    }
    // The failures, each where it happened.
    let not_found = tree_with_status(&trees, 404);
    assert!(not_found.iter().any(|l| l.contains("ERROR: NOT_FOUND")));
    let conflict = tree_with_status(&trees, 409);
    assert!(
        conflict
            .iter()
            .any(|l| l.contains("ERROR: FAILED_PRECONDITION"))
    );
    let bad_gateway = tree_with_status(&trees, 502);
    assert!(bad_gateway[1].contains("ERROR"), "a 5xx is a server error");
    assert!(
        bad_gateway
            .iter()
            .any(|l| l.contains("GET /price/{sku}") && l.contains("status_code=500"))
    );

    // Log lines from every service carry the ids and the baggage; each
    // belongs to one of the drawn traces, background work included.
    for target in ["gateway", "orders", "inventory", "pricing"] {
        let lines: Vec<_> = out
            .requests
            .lines()
            .filter(|l| l.contains(&format!("baton_examples::{target}:")))
            .collect();
        assert!(
            !lines.is_empty(),
            "no {target} log lines in\n{}",
            out.requests
        );
        for line in lines {
            assert!(ids.contains(trace_id(line, "trace_id=")), "{line}");
            assert!(line.contains(" span_id="), "{line}");
            assert!(line.contains(" baggage.tenant=\""), "{line}");
            assert!(line.contains(" baggage.user=\""), "{line}");
        }
    }
    assert!(
        out.requests
            .lines()
            .filter(|l| l.contains("baton_examples::gateway:"))
            .all(|l| l.contains(" request_id="))
    );
    assert_eq!(
        out.requests
            .lines()
            .filter(|l| l.contains("audit: order recorded (background task)"))
            .count(),
        4,
        "one audit line per placed order (`broken` is placed, then fails at pricing)"
    );

    // The RED tables, one per service: every route and method, counted
    // once per checkout, in the row of the service that served or called.
    let headers = out
        .red
        .lines()
        .filter(|l| {
            l.starts_with("SERVICE ")
                && ["KIND", "ROUTE", "REQS", "ERRORS", "P50 ms", "P99 ms"]
                    .iter()
                    .all(|c| l.contains(c))
        })
        .count();
    assert_eq!(headers, 4, "{}", out.red);
    for (service, kind, route, requests) in [
        ("gateway", "http server", "GET /checkout/{sku}", 6),
        ("gateway", "http client", "GET 127.0.0.1", 6),
        ("gateway", "rpc client", "shop.Orders/PlaceOrder", 6),
        ("orders", "rpc server", "shop.Orders/PlaceOrder", 6),
        ("orders", "rpc client", "shop.Inventory/Reserve", 6),
        ("orders", "rpc client", "shop.Inventory/WatchStock", 4),
        ("inventory", "rpc server", "shop.Inventory/Reserve", 6),
        ("inventory", "rpc server", "shop.Inventory/WatchStock", 4),
        ("pricing", "http server", "GET /price/{sku}", 6),
    ] {
        let row = out
            .red
            .lines()
            .find(|l| {
                l.contains(kind) && l.contains(route) && l.starts_with(&format!("{service} "))
            })
            .unwrap_or_else(|| panic!("no {service} {kind} {route} row in\n{}", out.red));
        let after = &row[row.find(route).map_or(0, |i| i + route.len())..];
        assert_eq!(
            after.split_whitespace().next(),
            Some(requests.to_string().as_str()),
            "{row}"
        );
    }
    assert!(!out.red.contains("healthz"));

    // The summary: every request got the status it should have.
    let summary: Vec<_> = out.summary.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(summary.len(), 7, "{}", out.summary);
    assert!(summary.iter().all(|l| l.contains(" ✓ ")), "{}", out.summary);
    for status in ["200 OK", "404 Not Found", "409 Conflict", "502 Bad Gateway"] {
        assert!(out.summary.contains(status), "{}", out.summary);
    }
}
