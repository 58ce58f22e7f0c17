//! Redirects followed by a reqwest client with the middleware, over real
//! servers on loopback: baggage reaches only the hosts the baggage policy
//! allows, on every hop. The policy allows `localhost` and not `127.0.0.1`,
//! so one server is inside the allowed set or outside it by the name it is
//! called by.

#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod http_support;

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton::http::client::{HttpClientMiddleware, TooManyRedirects, redirect_policy};
use baton::instrumentation::BaggagePolicy;
use baton::testing::Capture;
use http_support::Server;
use reqwest_middleware::ClientWithMiddleware;

/// What one server received: (host header, path, baggage, traceparent).
type Seen = (String, String, Option<String>, Option<String>);

/// Redirects (path to `Location`) and what was received, shared by both servers.
#[derive(Clone, Default)]
struct Hops {
    redirects: Arc<Mutex<HashMap<String, String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn hop(State(hops): State<Hops>, uri: Uri, headers: HeaderMap) -> Response {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = get("host").unwrap_or_default();
    hops.seen.lock().unwrap().push((
        host,
        uri.path().to_owned(),
        get("baggage"),
        get("traceparent"),
    ));
    let location = hops.redirects.lock().unwrap().get(uri.path()).cloned();
    match location {
        Some(location) => (StatusCode::FOUND, [("location", location)]).into_response(),
        None => "done".into_response(),
    }
}

struct Setup {
    hops: Hops,
    a: Server,
    b: Server,
}

impl Setup {
    async fn start() -> Self {
        let hops = Hops::default();
        let app = || Router::new().fallback(hop).with_state(hops.clone());
        let a = Server::start(app()).await;
        let b = Server::start(app()).await;
        Setup { hops, a, b }
    }

    /// `path` on server `a` or `b`, by the name `host`.
    fn url(&self, server: char, host: &str, path: &str) -> String {
        let port = if server == 'a' {
            self.a.addr.port()
        } else {
            self.b.addr.port()
        };
        format!("http://{host}:{port}{path}")
    }

    fn redirect(&self, from: &str, to: String) {
        self.hops
            .redirects
            .lock()
            .unwrap()
            .insert(from.to_owned(), to);
    }

    /// `(path, baggage)` of each request received, in order; each had a traceparent.
    fn seen(&self) -> Vec<(String, Option<String>)> {
        let seen = self.hops.seen.lock().unwrap();
        seen.iter()
            .map(|(_, path, baggage, traceparent)| {
                assert!(traceparent.is_some(), "trace context on every hop: {path}");
                (path.clone(), baggage.clone())
            })
            .collect()
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
    }

    fn client(&self, limit: usize) -> ClientWithMiddleware {
        let middleware = HttpClientMiddleware::new()
            .with_baggage_policy(BaggagePolicy::none().allow_hosts(["localhost"]));
        let client = reqwest::Client::builder()
            // `localhost` is 127.0.0.1 whatever the resolver prefers.
            .resolve("localhost", self.a.addr)
            .redirect(redirect_policy(limit))
            .build()
            .unwrap();
        reqwest_middleware::ClientBuilder::new(client)
            .with(middleware)
            .build()
    }
}

fn session(capture: &Capture) -> opentelemetry::Context {
    baton::baggage::set_in(&capture.context(), "session", "s3cr3t").unwrap()
}

const SESSION: Option<&str> = Some("session=s3cr3t");

fn row(path: &str, baggage: Option<&str>) -> (String, Option<String>) {
    (path.to_owned(), baggage.map(str::to_owned))
}

#[tokio::test]
async fn a_redirect_out_of_the_allowed_set_loses_the_baggage() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('b', "127.0.0.1", "/end"));
    let client = setup.client(10);

    let url = setup.url('a', "localhost", "/start");
    let response = baton::run(session(&capture), client.get(&url).send())
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().as_str(), setup.url('b', "127.0.0.1", "/end"));
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    setup.stop().await;
}

#[tokio::test]
async fn a_chain_that_leaves_the_allowed_set_keeps_the_baggage_until_it_does() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    // Inside, inside, outside, then back to an allowed name: once dropped,
    // the baggage stays dropped.
    setup.redirect("/one", setup.url('a', "localhost", "/two"));
    setup.redirect("/two", setup.url('b', "127.0.0.1", "/three"));
    setup.redirect("/three", setup.url('a', "127.0.0.1", "/four"));
    setup.redirect("/four", setup.url('a', "localhost", "/end"));
    let client = setup.client(10);

    let url = setup.url('a', "localhost", "/one");
    let response = baton::run(session(&capture), client.get(&url).send())
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        setup.seen(),
        [
            row("/one", SESSION),
            row("/two", SESSION),
            row("/three", None),
            row("/four", None),
            row("/end", None),
        ]
    );
    setup.stop().await;
}

#[tokio::test]
async fn a_redirect_within_the_allowed_set_keeps_the_baggage() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('a', "localhost", "/end"));
    let client = setup.client(10);

    let url = setup.url('a', "localhost", "/start");
    let response = baton::run(session(&capture), client.get(&url).send())
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", SESSION)]);
    setup.stop().await;
}

#[tokio::test]
async fn the_limit_counts_the_hops_sent_without_baggage() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/one", setup.url('b', "127.0.0.1", "/two"));
    setup.redirect("/two", setup.url('b', "127.0.0.1", "/three"));
    let client = setup.client(1);

    let url = setup.url('a', "localhost", "/one");
    let error = baton::run(session(&capture), client.get(&url).send())
        .await
        .unwrap_err();

    let reqwest_middleware::Error::Reqwest(error) = error else {
        panic!("a reqwest error: {error:?}");
    };
    assert!(error.is_redirect(), "{error:?}");
    let limit = error
        .source()
        .and_then(|e| e.downcast_ref::<TooManyRedirects>());
    assert_eq!(limit.map(TooManyRedirects::limit), Some(1));
    assert_eq!(setup.seen(), [row("/one", SESSION), row("/two", None)]);
    setup.stop().await;
}

#[tokio::test]
async fn the_one_call_client_drops_the_baggage_on_redirect() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    // The default policy: `127.0.0.1` is internal, a public name is not.
    setup.redirect("/start", setup.url('b', "public.example", "/end"));
    let client = HttpClientMiddleware::new()
        .client(reqwest::Client::builder().resolve("public.example", setup.b.addr))
        .unwrap();

    let url = setup.url('a', "127.0.0.1", "/start");
    let response = baton::run(session(&capture), client.get(&url).send())
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    setup.stop().await;
}
