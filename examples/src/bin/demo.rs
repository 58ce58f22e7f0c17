//! The demo shop in one process: `gateway`, `orders`, `inventory` and
//! `pricing` on loopback ports, still talking real HTTP and gRPC to each
//! other. It sends a fixed mix of checkouts (some failing on purpose), then
//! prints each request's trace tree, the RED table and a summary, and exits:
//! 0 when every request got the status it should, 1 otherwise.
//!
//! Run: `cargo run -p baton-examples --bin demo`

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use baton_examples::{gateway, inventory, orders, pricing, telemetry};
use reqwest::StatusCode;
use tokio::net::TcpListener;

/// Longer than the demo runs, so only the explicit flushes print, each under
/// its header.
const EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Time for background work (the orders audit) to finish after the last
/// response, so its log lines come before the traces.
const SETTLE: Duration = Duration::from_millis(250);

/// Longest a demo request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One checkout the demo sends, and the status it should get.
struct Checkout {
    sku: &'static str,
    tenant: &'static str,
    user: &'static str,
    quantity: u32,
    expected: StatusCode,
    why: &'static str,
}

const CHECKOUTS: [Checkout; 6] = [
    Checkout {
        sku: "widget",
        tenant: "acme",
        user: "alice",
        quantity: 2,
        expected: StatusCode::OK,
        why: "ok",
    },
    Checkout {
        sku: "gadget",
        tenant: "globex",
        user: "bob",
        quantity: 1,
        expected: StatusCode::OK,
        why: "ok",
    },
    Checkout {
        sku: "gizmo",
        tenant: "initech",
        user: "carol",
        quantity: 1,
        expected: StatusCode::OK,
        why: "ok",
    },
    Checkout {
        sku: "unobtainium",
        tenant: "acme",
        user: "dave",
        quantity: 1,
        expected: StatusCode::NOT_FOUND,
        why: "unknown sku: inventory answers NOT_FOUND",
    },
    Checkout {
        sku: pricing::BROKEN_SKU,
        tenant: "globex",
        user: "erin",
        quantity: 1,
        expected: StatusCode::BAD_GATEWAY,
        why: "pricing answers 500",
    },
    Checkout {
        sku: "gizmo",
        tenant: "initech",
        user: "frank",
        quantity: 10,
        expected: StatusCode::CONFLICT,
        why: "not enough stock: inventory answers FAILED_PRECONDITION",
    },
];

fn section(title: &str) {
    println!(
        "\n══ {title} {}",
        "═".repeat(72_usize.saturating_sub(title.len()))
    );
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot listen on a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, addr)
}

/// Runs `server` in the background, reporting if it stops.
fn start<E: std::fmt::Display>(
    name: &'static str,
    server: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(err) = server.await {
            eprintln!("{name} stopped: {err}");
        }
    });
}

/// What one request got: its status and body, or why there was none.
async fn get(
    client: &reqwest::Client,
    url: String,
    checkout: Option<&Checkout>,
) -> Result<(StatusCode, String), String> {
    let mut request = client.get(url);
    if let Some(c) = checkout {
        request = request
            .header("x-tenant", c.tenant)
            .header("x-user", c.user)
            .header("x-quantity", c.quantity.to_string());
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Whether `result` has the `expected` status, and a line saying what came back.
fn outcome(result: &Result<(StatusCode, String), String>, expected: StatusCode) -> (bool, String) {
    match result {
        Ok((status, body)) if *status == expected => (true, format!("✓ {status} {body}")),
        Ok((status, body)) => (false, format!("✗ {status} (expected {expected}) {body}")),
        Err(err) => (false, format!("✗ no response: {err}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = telemetry::init(EXPORT_INTERVAL);

    let (inventory_listener, inventory_addr) = bind().await;
    let (orders_listener, orders_addr) = bind().await;
    let (pricing_listener, pricing_addr) = bind().await;
    let (gateway_listener, gateway_addr) = bind().await;
    let url = |addr: SocketAddr| -> reqwest::Url {
        format!("http://{addr}")
            .parse()
            .expect("a socket address makes a valid URL")
    };
    // Each service records to its own providers, so each is named by its
    // own `service.name` in the trees and the RED tables.
    start(
        "inventory",
        inventory::serve(inventory_listener, telemetry.providers("inventory")),
    );
    start(
        "orders",
        orders::serve(
            orders_listener,
            url(inventory_addr),
            telemetry.providers("orders"),
        ),
    );
    start(
        "pricing",
        pricing::serve(pricing_listener, telemetry.providers("pricing")),
    );
    start(
        "gateway",
        gateway::serve(
            gateway_listener,
            url(orders_addr),
            url(pricing_addr),
            telemetry.providers("gateway"),
        ),
    );

    section("services");
    println!("gateway    http://{gateway_addr}");
    println!("orders     grpc://{orders_addr}");
    println!("inventory  grpc://{inventory_addr}");
    println!("pricing    http://{pricing_addr}");

    section("requests (log lines from all four services)");
    // A hung service should fail the demo, not hang it.
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client without TLS builds");
    // One at a time, so each trace shows what one request costs; the
    // `context` binary and the burst test show concurrent requests keeping
    // their own contexts.
    let mut results = Vec::new();
    for c in CHECKOUTS.iter() {
        let url = format!("http://{gateway_addr}/checkout/{}", c.sku);
        results.push(get(&client, url, Some(c)).await);
    }
    let health = get(&client, format!("http://{gateway_addr}/healthz"), None).await;
    tokio::time::sleep(SETTLE).await;

    section("traces (one tree per checkout; /healthz is filtered out)");
    telemetry.flush_traces();
    section("RED metrics (a table per service)");
    telemetry.flush_metrics();

    section("summary");
    let mut all_expected = true;
    for (c, result) in CHECKOUTS.iter().zip(&results) {
        let (ok, line) = outcome(result, c.expected);
        all_expected &= ok;
        let request = format!(
            "GET /checkout/{} ({} {} ×{})",
            c.sku, c.tenant, c.user, c.quantity
        );
        println!("{request:<44} {line}   [{}]", c.why);
    }
    let (ok, line) = outcome(&health, StatusCode::OK);
    all_expected &= ok;
    println!("{:<44} {line}   [not traced]", "GET /healthz");
    if all_expected {
        ExitCode::SUCCESS
    } else {
        eprintln!("some requests did not get the status they should have");
        ExitCode::FAILURE
    }
}
