//! The reqwest middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

use super::Client;
use super::outgoing::{Outgoing, Plan, Target};
use crate::instrumentation::{Options, RequestView, client_options, options};

/// Traces, measures and propagates the context of every request a
/// `reqwest_middleware` client sends. Takes the [options every Baton
/// middleware takes](crate::instrumentation). See the [module docs](super).
///
/// ```
/// use baton::http::client::HttpClientMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(HttpClientMiddleware::new())
///     .build();
/// # drop(client);
/// ```
#[derive(Clone)]
pub struct HttpClientMiddleware {
    options: Options<Client>,
}

impl HttpClientMiddleware {
    /// A middleware recording to the [global](crate::global) tracer and
    /// meter providers and injecting with the global propagator, as they
    /// are at each request; baggage goes to internal destinations only
    /// ([`BaggagePolicy::internal`](crate::instrumentation::BaggagePolicy::internal)).
    pub fn new() -> Self {
        HttpClientMiddleware {
            options: Options::new(),
        }
    }

    options!(Client);
    client_options!();

    async fn send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let options = &self.options;
        let plan = Plan::new(options, &RequestView::from_reqwest(&req));
        // Out of the request while it is read: no copy of its URL.
        let mut headers = std::mem::take(req.headers_mut());
        let url = req.url();
        let target = Target {
            method: req.method(),
            host: url.host_str(),
            port: url.port_or_known_default(),
        };
        let outgoing = Outgoing::start(
            options,
            plan,
            &target,
            || super::url::full(url),
            &mut headers,
        );
        *req.headers_mut() = headers;
        let Some(outgoing) = outgoing else {
            return next.run(req, extensions).await;
        };
        let result = crate::run(outgoing.cx().clone(), next.run(req, extensions)).await;
        match &result {
            Ok(response) => outgoing.response(response.status(), response.version()),
            Err(error) => outgoing.error(transport_error_type(error)),
        }
        result
    }
}

/// A low-cardinality name for a request that got no response.
fn transport_error_type(error: &reqwest_middleware::Error) -> &'static str {
    let reqwest_middleware::Error::Reqwest(error) = error else {
        return "_OTHER";
    };
    match error {
        e if e.is_timeout() => "timeout",
        e if e.is_connect() => "connect",
        e if e.is_redirect() => "redirect",
        e if e.is_request() => "request",
        e if e.is_body() => "body",
        e if e.is_decode() => "decode",
        e if e.is_builder() => "builder",
        _ => "_OTHER",
    }
}

impl Default for HttpClientMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpClientMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientMiddleware")
            .field("options", &self.options)
            .finish()
    }
}

// `Middleware` is an `async_trait`; this is its expansion, written out so as
// not to depend on `async-trait` for one impl.
impl Middleware for HttpClientMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.send(req, extensions, next))
    }
}
