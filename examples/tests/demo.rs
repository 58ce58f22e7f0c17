//! Runs the `demo` binary (README's first command) and checks what it prints:
//! whole trace trees per checkout, error statuses, correlated log lines, the
//! RED table and the summary.

use std::collections::HashSet;
use std::process::Command;

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
        // The demo names itself and uses the default propagators.
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

    // The RED table: every route and method, counted once per checkout.
    assert!(
        out.red.lines().any(|l| l.starts_with("SERVICE ")
            && ["KIND", "ROUTE", "REQS", "ERRORS", "P50 ms", "P99 ms"]
                .iter()
                .all(|c| l.contains(c))),
        "{}",
        out.red
    );
    for (kind, route, requests) in [
        ("http server", "GET /checkout/{sku}", 6),
        ("http server", "GET /price/{sku}", 6),
        ("http client", "GET 127.0.0.1", 6),
        ("rpc server", "shop.Orders/PlaceOrder", 6),
        ("rpc client", "shop.Orders/PlaceOrder", 6),
        ("rpc server", "shop.Inventory/Reserve", 6),
        ("rpc server", "shop.Inventory/WatchStock", 4),
    ] {
        let row = out
            .red
            .lines()
            .find(|l| l.contains(kind) && l.contains(route))
            .unwrap_or_else(|| panic!("no {kind} {route} row in\n{}", out.red));
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
