//! The reqwest middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::Extensions;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next, Result};

use super::Client;
use super::outgoing::{Outgoing, Plan, Target};
use super::redirect::{Chain, Redirects};
use crate::instrumentation::{Options, RequestView, client_options, options};
use crate::propagation::inject;

/// Traces, measures and propagates the context of every request a reqwest
/// client sends, as a `reqwest_middleware` middleware. Takes the [options
/// every Baton middleware takes](crate::instrumentation), and which
/// [`Redirects`] to follow. See the [module docs](super).
///
/// It builds the client itself, from a `reqwest::ClientBuilder` with
/// whatever else configured: reqwest follows redirects below any middleware,
/// so only a client with Baton's redirect policy checks the baggage policy
/// on every hop ([`client`](Self::client), or
/// [`client_builder`](Self::client_builder) to add other middleware).
///
/// ```
/// use std::time::Duration;
///
/// use baton::http::client::HttpClientMiddleware;
///
/// let client = HttpClientMiddleware::new()
///     .client(reqwest::Client::builder().timeout(Duration::from_secs(5)))
///     .expect("a client");
/// # drop(client);
/// ```
///
/// A client built elsewhere does not take it: its redirect policy would
/// carry the baggage to any host.
///
/// ```compile_fail,E0277
/// use baton::http::client::HttpClientMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(HttpClientMiddleware::new())
///     .build();
/// ```
#[derive(Clone)]
pub struct HttpClientMiddleware {
    options: Options<Client>,
    redirects: Redirects,
}

impl HttpClientMiddleware {
    /// A middleware recording to the [global](crate::global) tracer and
    /// meter providers and injecting with the global propagator, as they
    /// are at each request; baggage goes to internal destinations only
    /// ([`BaggagePolicy::internal`](crate::instrumentation::BaggagePolicy::internal)).
    pub fn new() -> Self {
        HttpClientMiddleware {
            options: Options::new(),
            redirects: Redirects::default(),
        }
    }

    options!(Client);
    client_options!();

    /// Which redirects the client follows (default: at most 10, as reqwest).
    #[must_use]
    pub fn with_redirects(mut self, redirects: Redirects) -> Self {
        self.redirects = redirects;
        self
    }

    async fn send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let options = &self.options;
        let plan = Plan::new(options, &RequestView::from_reqwest(&req));
        let with_baggage = plan.with_baggage();
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
        let cx = outgoing
            .as_ref()
            .map_or_else(crate::current, |outgoing| outgoing.cx().clone());
        let result = self.follow(cx, req, with_baggage, extensions, next).await;
        if let Some(outgoing) = outgoing {
            match &result {
                Ok(response) => outgoing.response(response.status(), response.version()),
                Err(error) => outgoing.error(transport_error_type(error)),
            }
        }
        result
    }

    /// Sends `req` in `cx`, marked for the client's redirect policy: a
    /// redirect it stops before, so as not to carry the baggage to a host
    /// the policy does not allow, is sent from here without the baggage.
    async fn follow(
        &self,
        cx: Context,
        req: Request,
        with_baggage: bool,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        // Only the baggage needs watching: trace context goes everywhere.
        let baggage =
            (with_baggage && !cx.baggage().is_empty()).then(|| self.options.baggage.clone());
        let Some(baggage) = baggage else {
            return crate::run(cx, next.run(req, extensions)).await;
        };
        let chain = Chain::new(Some(baggage), 0);
        // To send again if a redirect is stopped; `None` for a streamed body.
        let copy = req.try_clone();
        let response = crate::run(
            cx.with_value(chain.clone()),
            next.clone().run(req, extensions),
        )
        .await?;
        let Some(stop) = chain.take_stop() else {
            return Ok(response);
        };
        // A body that cannot be sent again: the caller gets the redirect.
        let Some(copy) = copy else {
            return Ok(response);
        };
        let followed = stop.followed;
        let mut req = stop.request(copy, response.status());
        self.options.with(|resolved| {
            let headers = req.headers_mut();
            for name in resolved.propagator.field_names() {
                headers.remove(name.as_str());
            }
            inject(resolved.propagator, &cx, headers, false);
        });
        crate::run(
            cx.with_value(Chain::new(None, followed)),
            next.run(req, extensions),
        )
        .await
    }

    /// A client for `builder` with this middleware and its redirect policy,
    /// so that no redirect carries baggage where the baggage policy does not
    /// allow it. Which redirects it follows is set with
    /// [`with_redirects`](Self::with_redirects), not on `builder`.
    ///
    /// ```
    /// use baton::http::client::HttpClientMiddleware;
    ///
    /// let client = HttpClientMiddleware::new()
    ///     .client(reqwest::Client::builder())
    ///     .expect("a client");
    /// # drop(client);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ClientBuildError::RedirectPolicy`] if `builder` has a redirect
    /// policy of its own (it would otherwise be replaced without a word);
    /// [`ClientBuildError::Build`] with what [`reqwest::ClientBuilder::build`]
    /// fails with.
    pub fn client(
        self,
        builder: reqwest::ClientBuilder,
    ) -> std::result::Result<ClientWithMiddleware, ClientBuildError> {
        Ok(self.client_builder(builder)?.build())
    }

    /// As [`client`](Self::client), for adding other middleware: what is
    /// added runs inside this one, in the request's CLIENT span (a retry
    /// middleware's attempts share that span).
    ///
    /// ```
    /// use baton::http::client::HttpClientMiddleware;
    ///
    /// let client = HttpClientMiddleware::new()
    ///     .client_builder(reqwest::Client::builder())
    ///     .expect("a client")
    ///     // .with(another_middleware)
    ///     .build();
    /// # drop(client);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`client`](Self::client).
    pub fn client_builder(
        self,
        builder: reqwest::ClientBuilder,
    ) -> std::result::Result<reqwest_middleware::ClientBuilder, ClientBuildError> {
        if super::redirect::has_own_policy(&builder) {
            return Err(ClientBuildError::RedirectPolicy);
        }
        let client = builder
            .redirect(self.redirects.policy())
            .build()
            .map_err(ClientBuildError::Build)?;
        Ok(reqwest_middleware::ClientBuilder::new(client).with(Installed(self)))
    }
}

/// Why [`HttpClientMiddleware::client`] built no client.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// The `reqwest::ClientBuilder` has a redirect policy of its own: set
    /// which redirects to follow with
    /// [`HttpClientMiddleware::with_redirects`] instead.
    RedirectPolicy,
    /// reqwest could not build the client.
    Build(reqwest::Error),
}

impl fmt::Display for ClientBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientBuildError::RedirectPolicy => f.write_str(
                "the reqwest client builder has a redirect policy of its own: \
                 set redirects with HttpClientMiddleware::with_redirects",
            ),
            ClientBuildError::Build(_) => f.write_str("building the reqwest client failed"),
        }
    }
}

impl std::error::Error for ClientBuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientBuildError::RedirectPolicy => None,
            ClientBuildError::Build(error) => Some(error),
        }
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
            .field("redirects", &self.redirects)
            .finish()
    }
}

/// The middleware on a client it built: not public, so that it never runs
/// on a client whose redirect policy would carry the baggage anywhere.
struct Installed(HttpClientMiddleware);

// `Middleware` is an `async_trait`; this is its expansion, written out so as
// not to depend on `async-trait` for one impl.
impl Middleware for Installed {
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
        Box::pin(self.0.send(req, extensions, next))
    }
}
