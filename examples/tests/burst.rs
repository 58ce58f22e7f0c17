//! A burst of concurrent checkouts through the whole demo chain (gateway →
//! orders → inventory, gateway → pricing), all in flight at once: every one
//! is answered, and each reply, log line and trace carries its own caller's
//! tenant and user, never another request's.
//!
//! `BURST_REQUESTS` sets how many (10,000 by default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton::testing::{Capture, LogRecord};
use baton_examples::{Providers, gateway, inventory, orders, pricing};
use futures_util::future::join_all;
use opentelemetry::trace::TraceId;
use serde_json::Value;
use tokio::net::TcpListener;

/// Checkouts sent at once unless `BURST_REQUESTS` says otherwise.
const DEFAULT_REQUESTS: usize = 10_000;

/// HTTP/2 connections the burst is spread over, each carrying up to the
/// gateway's 200 streams at once (hyper's default), so all 10,000 are in
/// flight together, as a few busy clients (or a load balancer) send them.
const CONNECTIONS: usize = 50;

/// Longest the burst may take, replies, spans and logs all in.
const WITHIN: Duration = Duration::from_secs(120);

/// Units of `widget` in the demo's catalog.
const WIDGET_STOCK: u64 = 120;

fn requests() -> usize {
    std::env::var("BURST_REQUESTS").map_or(DEFAULT_REQUESTS, |n| {
        n.parse()
            .unwrap_or_else(|err| panic!("BURST_REQUESTS={n:?}: {err}"))
    })
}

async fn loopback() -> (TcpListener, reqwest::Url) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound listener's address");
    (listener, format!("http://{addr}").parse().expect("a URL"))
}

/// Starts the four services on loopback, recording to the global providers
/// (the capture's), and returns the gateway's URL.
async fn start_demo() -> reqwest::Url {
    let (listener, inventory_url) = loopback().await;
    tokio::spawn(inventory::serve(listener, Providers::global()));
    let (listener, orders_url) = loopback().await;
    tokio::spawn(orders::serve(listener, inventory_url, Providers::global()));
    let (listener, pricing_url) = loopback().await;
    tokio::spawn(pricing::serve(listener, Providers::global()));
    let (listener, gateway_url) = loopback().await;
    tokio::spawn(gateway::serve(
        listener,
        orders_url,
        pricing_url,
        Providers::global(),
    ));
    gateway_url
}

/// What request `i` sends: its own tenant, user and quantity, so a reply,
/// a log line or a span showing another request's is caught.
struct Caller {
    tenant: String,
    user: String,
    quantity: u64,
}

impl Caller {
    fn new(i: usize) -> Self {
        Caller {
            tenant: format!("tenant-{i}"),
            user: format!("user-{i}"),
            quantity: (i % 100) as u64 + 1,
        }
    }
}

/// The reply to one checkout: its status, and its body when it is JSON.
async fn checkout(
    client: &reqwest::Client,
    url: &reqwest::Url,
    capture: &Capture,
    caller: &Caller,
) -> (TraceId, Result<(u16, Value), String>) {
    // A caller's trace the capture owns: the gateway links its new trace
    // to it, which tells which request each captured trace served.
    let headers = capture.caller();
    let traceparent = headers["traceparent"].to_str().expect("text").to_owned();
    let trace = TraceId::from_hex(&traceparent[3..35]).expect("a trace id");
    let reply = async {
        let response = client
            .get(url.join("/checkout/widget").expect("a URL"))
            .headers(headers)
            .header("x-tenant", &caller.tenant)
            .header("x-user", &caller.user)
            .header("x-quantity", caller.quantity.to_string())
            .send()
            .await
            .map_err(|err| format!("{err:?}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|err| format!("{err:?}"))?;
        let json = serde_json::from_str(&body).map_err(|_| format!("HTTP {status}: {body}"))?;
        Ok((status, json))
    }
    .await;
    (trace, reply)
}

/// Waits until `done` says the logs are complete, or panics at `deadline`.
async fn logs_when(
    capture: &Capture,
    deadline: Instant,
    done: impl Fn(&[LogRecord]) -> bool,
) -> Vec<LogRecord> {
    loop {
        let logs = capture.logs();
        if done(&logs) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "log lines missing at the deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_checkouts_is_answered_without_cross_talk() {
    let n = requests();
    let capture = Capture::start();
    let gateway = start_demo().await;
    let started = Instant::now();
    let deadline = started + WITHIN;
    let clients: Vec<reqwest::Client> = (0..CONNECTIONS)
        .map(|_| {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .expect("a client")
        })
        .collect();
    let callers: Vec<Caller> = (0..n).map(Caller::new).collect();

    // All requests in flight at once, each a task of its own.
    let tasks = callers.iter().enumerate().map(|(i, caller)| {
        let client = clients[i % CONNECTIONS].clone();
        let gateway = gateway.clone();
        let capture = &capture;
        async move { checkout(&client, &gateway, capture, caller).await }
    });
    let replies = tokio::time::timeout(WITHIN, join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("{n} checkouts not answered within {WITHIN:?}"));
    let answered_in = started.elapsed();

    // Replies: every one a 200 with its own caller's tenant and user.
    let mut failures: HashMap<String, usize> = HashMap::new();
    let mut request_of = HashMap::new();
    for (i, (trace, reply)) in replies.into_iter().enumerate() {
        request_of.insert(trace, i);
        let caller = &callers[i];
        match reply {
            Ok((200, body)) => {
                assert_eq!(
                    body["tenant"],
                    caller.tenant.as_str(),
                    "request {i}: {body}"
                );
                assert_eq!(body["user"], caller.user.as_str(), "request {i}: {body}");
                assert_eq!(body["quantity"], caller.quantity, "request {i}: {body}");
                assert_eq!(
                    body["remaining"],
                    WIDGET_STOCK - caller.quantity,
                    "request {i}: {body}"
                );
            }
            Ok((status, body)) => {
                *failures
                    .entry(format!("HTTP {status}: {body}"))
                    .or_default() += 1;
            }
            Err(err) => *failures.entry(err).or_default() += 1,
        }
    }
    let failed: usize = failures.values().sum();
    let mut kinds: Vec<_> = failures.into_iter().collect();
    kinds.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    kinds.truncate(3);
    assert!(
        failed == 0,
        "{failed} of {n} checkouts failed; most often: {kinds:?}"
    );

    // Spans: each gateway trace links to the caller's trace of one request;
    // its inventory spans carry that request's tenant.
    let spans = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        capture.spans(),
    )
    .await
    .expect("spans within the deadline");
    let mut served: HashMap<TraceId, usize> = HashMap::new();
    for span in spans.iter().filter(|s| !s.data().links.is_empty()) {
        let caller_trace = span.data().links[0].span_context.trace_id();
        let i = request_of[&caller_trace];
        assert!(
            served.insert(span.trace_id(), i).is_none(),
            "one root per gateway trace"
        );
    }
    assert_eq!(served.len(), n, "a gateway trace per request");
    let mut inventory_spans = 0;
    for span in spans.iter() {
        let Some(tenant) = span.attribute("baggage.tenant") else {
            continue;
        };
        let i = served[&span.trace_id()];
        assert_eq!(
            tenant.as_str(),
            callers[i].tenant.as_str(),
            "{} of request {i}",
            span.name()
        );
        inventory_spans += 1;
    }
    // Reserve and WatchStock, on the server side of inventory.
    assert_eq!(
        inventory_spans,
        2 * n,
        "inventory spans with baggage.tenant"
    );

    // Logs: inventory's lines name the tenant from baggage and the quantity
    // from the message, both of the request whose trace they are in.
    let logs = logs_when(&capture, deadline, |logs| {
        logs.iter().filter(|l| is_audit(l)).count() >= n
    })
    .await;
    let mut reserved = 0;
    for log in &logs {
        let trace = log.trace_id.expect("every line is in a trace");
        let i = served[&trace];
        if let Some(tenant) = log.attribute("tenant") {
            assert_eq!(tenant, callers[i].tenant, "{log:?}");
        }
        if log.body.as_deref() == Some("reserved") {
            assert_eq!(
                log.attribute("quantity"),
                Some(callers[i].quantity.to_string().as_str()),
                "{log:?}"
            );
            reserved += 1;
        }
    }
    assert_eq!(reserved, n, "a reservation logged per request");
    eprintln!(
        "{n} checkouts over {CONNECTIONS} connections: answered in {answered_in:?}, \
         spans and logs checked in {:?}",
        started.elapsed()
    );
}

fn is_audit(log: &LogRecord) -> bool {
    log.body
        .as_deref()
        .is_some_and(|body| body.starts_with("audit:"))
}
