//! Redirects followed by the reqwest client the middleware builds, over
//! real servers on loopback: baggage reaches only the hosts the baggage
//! policy allows, on every hop, whatever redirect policy the builder had. The policy allows `localhost` and not `127.0.0.1`,
//! so one server is inside the allowed set or outside it by the name it is
//! called by.

#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod http_support;

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton::http::client::{ClientBuildError, HttpClientMiddleware, Redirects, TooManyRedirects};
use baton::instrumentation::BaggagePolicy;
use baton::testing::Capture;
use http_support::Server;
use reqwest_middleware::ClientWithMiddleware;

/// What one server received: (host header, path, baggage, traceparent, body).
type Seen = (String, String, Option<String>, Option<String>, String);

/// Redirects (path to status and `Location`) and what was received, shared
/// by both servers.
#[derive(Clone, Default)]
struct Hops {
    redirects: Arc<Mutex<HashMap<String, (StatusCode, String)>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn hop(State(hops): State<Hops>, uri: Uri, headers: HeaderMap, body: String) -> Response {
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
        body,
    ));
    let location = hops.redirects.lock().unwrap().get(uri.path()).cloned();
    match location {
        Some((status, location)) => (status, [("location", location)]).into_response(),
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
        self.redirect_with(StatusCode::FOUND, from, to);
    }

    fn redirect_with(&self, status: StatusCode, from: &str, to: String) {
        self.hops
            .redirects
            .lock()
            .unwrap()
            .insert(from.to_owned(), (status, to));
    }

    /// The body of each request received, in order.
    fn bodies(&self) -> Vec<String> {
        let seen = self.hops.seen.lock().unwrap();
        seen.iter().map(|seen| seen.4.clone()).collect()
    }

    /// `(path, baggage)` of each request received, in order; each had a traceparent.
    fn seen(&self) -> Vec<(String, Option<String>)> {
        let seen = self.hops.seen.lock().unwrap();
        seen.iter()
            .map(|(_, path, baggage, traceparent, _)| {
                assert!(traceparent.is_some(), "trace context on every hop: {path}");
                (path.clone(), baggage.clone())
            })
            .collect()
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
    }

    fn middleware(&self) -> HttpClientMiddleware {
        HttpClientMiddleware::new()
            .with_baggage_policy(BaggagePolicy::none().allow_hosts(["localhost"]))
    }

    /// `localhost` is 127.0.0.1 whatever the resolver prefers.
    fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().resolve("localhost", self.a.addr)
    }

    fn client(&self, limit: usize) -> ClientWithMiddleware {
        self.middleware()
            .with_redirects(Redirects::limited(limit))
            .client(self.builder())
            .unwrap()
    }
}

fn session(capture: &Capture) -> opentelemetry::Context {
    baton::baggage::set_in(&capture.context(), "session", "s3cr3t").unwrap()
}

/// GETs `url` with `client` in a context with the session baggage.
async fn get(capture: &Capture, client: &ClientWithMiddleware, url: &str) -> reqwest::Response {
    baton::run(session(capture), client.get(url).send())
        .await
        .unwrap()
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

    let response = get(&capture, &client, &setup.url('a', "localhost", "/start")).await;

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

    let response = get(&capture, &client, &setup.url('a', "localhost", "/one")).await;

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

    let response = get(&capture, &client, &setup.url('a', "localhost", "/start")).await;

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

    let response = get(&capture, &client, &setup.url('a', "127.0.0.1", "/start")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    setup.stop().await;
}

/// reqwest's default policy, set again, is no policy of the builder's own:
/// the client still checks every hop.
#[tokio::test]
async fn a_builder_with_reqwests_default_policy_has_every_hop_checked() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('b', "127.0.0.1", "/end"));
    let builder = setup
        .builder()
        .redirect(reqwest::redirect::Policy::limited(10));
    let client = setup.middleware().client(builder).unwrap();

    let response = get(&capture, &client, &setup.url('a', "localhost", "/start")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    setup.stop().await;
}

/// A builder's own policy would be replaced without a word (a client meant
/// to follow no redirect would follow ten): it is refused, with the way out.
#[test]
fn a_builder_with_a_redirect_policy_of_its_own_is_refused() {
    use reqwest::redirect::Policy;
    type Make = fn() -> Policy;
    let policies: [(&str, Make); 3] = [
        ("none", Policy::none),
        ("limited(3)", || Policy::limited(3)),
        ("custom", || Policy::custom(|attempt| attempt.follow())),
    ];
    for (name, policy) in policies {
        let builder = || reqwest::Client::builder().redirect(policy());
        let error = HttpClientMiddleware::new().client(builder()).unwrap_err();
        assert!(
            matches!(error, ClientBuildError::RedirectPolicy),
            "{name}: {error:?}"
        );
        assert!(error.to_string().contains("with_redirects"), "{error}");
        let refused = HttpClientMiddleware::new().client_builder(builder());
        assert!(
            matches!(refused, Err(ClientBuildError::RedirectPolicy)),
            "{name}"
        );
    }
    // Everything else a builder holds is its own business.
    let mut headers = http::HeaderMap::new();
    headers.insert("x-note", "redirect_policy: Policy(None)".parse().unwrap());
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .user_agent("shop/1.0")
        .default_headers(headers);
    assert!(HttpClientMiddleware::new().client(builder).is_ok());
}

#[tokio::test]
async fn no_redirects_hands_the_redirect_back() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('b', "127.0.0.1", "/end"));
    let client = setup
        .middleware()
        .with_redirects(Redirects::none())
        .client(setup.builder())
        .unwrap();

    let response = get(&capture, &client, &setup.url('a', "localhost", "/start")).await;

    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(setup.seen(), [row("/start", SESSION)]);
    setup.stop().await;
}

#[tokio::test]
async fn a_307_out_of_the_allowed_set_sends_the_body_again_without_the_baggage() {
    let capture = Capture::start();
    let setup = Setup::start().await;
    let to = setup.url('b', "127.0.0.1", "/end");
    setup.redirect_with(StatusCode::TEMPORARY_REDIRECT, "/start", to);
    let client = setup.client(10);

    let url = setup.url('a', "localhost", "/start");
    let request = client.post(&url).body("order 42");
    let response = baton::run(session(&capture), request.send()).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    assert_eq!(setup.bodies(), ["order 42", "order 42"]);
    setup.stop().await;
}

/// Middleware added to the client builder runs inside Baton's, each hop
/// still checked.
#[tokio::test]
async fn middleware_added_to_the_builder_keeps_every_hop_checked() {
    struct Tag(Arc<AtomicUsize>);
    impl reqwest_middleware::Middleware for Tag {
        fn handle<'a, 'b, 'c, 'f>(
            &'a self,
            req: reqwest::Request,
            extensions: &'b mut http::Extensions,
            next: reqwest_middleware::Next<'c>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'f>,
        >
        where
            'a: 'f,
            'b: 'f,
            'c: 'f,
        {
            // Inside Baton's middleware: the request already carries the
            // trace context it injected.
            assert!(req.headers().contains_key("traceparent"));
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(next.run(req, extensions))
        }
    }
    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('b', "127.0.0.1", "/end"));
    let calls = Arc::new(AtomicUsize::new(0));
    let client = setup
        .middleware()
        .client_builder(setup.builder())
        .unwrap()
        .with(Tag(calls.clone()))
        .build();

    let response = get(&capture, &client, &setup.url('a', "localhost", "/start")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.seen(), [row("/start", SESSION), row("/end", None)]);
    // The first request, and the hop Baton sent without the baggage.
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    setup.stop().await;
}

/// A tower stack with its redirect layer outside `HttpClientLayer`: the
/// layer sees every hop and decides on each.
#[tokio::test]
async fn a_tower_redirect_layer_outside_the_client_layer_has_every_hop_checked() {
    use baton::http::client::HttpClientLayer;
    use bytes::Bytes;
    use http_body_util::Empty;
    use tower::{ServiceBuilder, ServiceExt as _};
    use tower_http::follow_redirect::FollowRedirectLayer;

    let capture = Capture::start();
    let setup = Setup::start().await;
    setup.redirect("/start", setup.url('a', "localhost", "/next"));
    setup.redirect("/next", setup.url('b', "127.0.0.1", "/end"));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(
            HttpClientLayer::new()
                .with_baggage_policy(BaggagePolicy::none().allow_hosts(["localhost"])),
        )
        .service(client);

    let request = http::Request::get(setup.url('a', "localhost", "/start"))
        .body(Empty::new())
        .unwrap();
    let response = baton::run(session(&capture), client.oneshot(request))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        setup.seen(),
        [
            row("/start", SESSION),
            row("/next", SESSION),
            row("/end", None)
        ]
    );
    setup.stop().await;
}
