//! Redirects under the baggage policy, for reqwest.
//!
//! reqwest follows redirects below any middleware and keeps every header
//! but credentials on a cross-host hop, `baggage` included, and a middleware
//! cannot change the redirect policy of a client it did not build: so the
//! middleware builds the client, with the policy here. The middleware marks
//! the context it sends a request in with the baggage policy; this redirect
//! policy, which reqwest calls in that context, stops before a hop the
//! baggage may not go to, and the middleware sends that hop itself without
//! the baggage.

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use http::{Method, StatusCode};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Request, Url};

use crate::instrumentation::BaggagePolicy;

/// Which redirects a client built by
/// [`HttpClientMiddleware`](super::HttpClientMiddleware) follows, as
/// reqwest's `redirect::Policy::limited` and `Policy::none` do; on every
/// followed hop the baggage policy is checked again. The default is
/// `limited(10)`, reqwest's default.
///
/// ```
/// use baton::http::client::{HttpClientMiddleware, Redirects};
///
/// // A proxy hands redirects back to its caller.
/// let client = HttpClientMiddleware::new()
///     .with_redirects(Redirects::none())
///     .client(reqwest::Client::builder())
///     .expect("a client");
/// # drop(client);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirects {
    /// `None`: no redirect is followed.
    limit: Option<usize>,
}

impl Redirects {
    /// Follows at most `limit` redirects in a chain; past it the request
    /// fails with [`TooManyRedirects`].
    #[must_use]
    pub const fn limited(limit: usize) -> Self {
        Redirects { limit: Some(limit) }
    }

    /// Follows no redirect: the caller gets the redirect response.
    #[must_use]
    pub const fn none() -> Self {
        Redirects { limit: None }
    }

    /// The reqwest policy: before a hop to a host the baggage policy of the
    /// request's [`Chain`] does not allow, it stops, and the middleware
    /// sends that hop (and the rest of the chain) without the baggage.
    pub(crate) fn policy(self) -> Policy {
        match self.limit {
            Some(limit) => Policy::custom(move |attempt| decide(limit, attempt)),
            None => Policy::none(),
        }
    }
}

impl Default for Redirects {
    fn default() -> Self {
        Redirects::limited(10)
    }
}

/// Whether `builder` has a redirect policy other than reqwest's default.
/// reqwest has no accessor for it; its `Debug` shows the field exactly when
/// the policy is not the default, and before the default headers, whose
/// values are the caller's (reqwest 0.13's `Config::fmt_fields`). The
/// redirect tests check every kind of policy, and a header value that
/// reads like the field.
pub(crate) fn has_own_policy(builder: &reqwest::ClientBuilder) -> bool {
    let debug = format!("{builder:?}");
    let fields = debug
        .split_once("default_headers: ")
        .map_or(debug.as_str(), |(before, _)| before);
    fields.contains("redirect_policy: Policy(")
}

fn decide(limit: usize, attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let chain = opentelemetry::Context::map_current(|cx| cx.get::<Chain>().cloned());
    let followed = chain.as_ref().map_or(0, |chain| chain.followed);
    // `previous` starts with the first URL of this chain: its length is the
    // number of redirects once this one is followed.
    if followed + attempt.previous().len() > limit {
        return attempt.error(TooManyRedirects { limit });
    }
    let Some(chain) = chain else {
        return attempt.follow();
    };
    let allowed = chain.baggage.as_ref().is_none_or(|baggage| {
        attempt
            .url()
            .host_str()
            .is_some_and(|host| baggage.allows(host))
    });
    if allowed {
        return attempt.follow();
    }
    let stop = Stop {
        url: attempt.url().clone(),
        previous: attempt.previous().last().cloned(),
        followed: followed + attempt.previous().len(),
    };
    *chain.stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop);
    attempt.stop()
}

/// More redirects in a chain than [`Redirects::limited`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRedirects {
    limit: usize,
}

impl TooManyRedirects {
    /// The limit that was reached.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} redirects", self.limit)
    }
}

impl Error for TooManyRedirects {}

/// One chain of redirects reqwest follows for the middleware, in the
/// context it sends the request in.
#[derive(Clone)]
pub(crate) struct Chain(Arc<ChainState>);

pub(crate) struct ChainState {
    /// The policy, when the request carries baggage.
    baggage: Option<BaggagePolicy>,
    /// Redirects followed before this chain began.
    followed: usize,
    /// The hop the redirect policy stopped before.
    stopped: Mutex<Option<Stop>>,
}

impl std::ops::Deref for Chain {
    type Target = ChainState;

    fn deref(&self) -> &ChainState {
        &self.0
    }
}

impl Chain {
    pub(crate) fn new(baggage: Option<BaggagePolicy>, followed: usize) -> Self {
        Chain(Arc::new(ChainState {
            baggage,
            followed,
            stopped: Mutex::new(None),
        }))
    }

    pub(crate) fn take_stop(&self) -> Option<Stop> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A redirect the policy stopped before, for the baggage's sake.
pub(crate) struct Stop {
    url: Url,
    previous: Option<Url>,
    /// Redirects followed once this one is.
    pub(crate) followed: usize,
}

impl Stop {
    /// The request for this hop, made from a copy of the chain's first
    /// request as reqwest would. The caller re-injects the propagation
    /// headers.
    pub(crate) fn request(self, mut request: Request, status: StatusCode) -> Request {
        let to_get = match status {
            StatusCode::SEE_OTHER => *request.method() != Method::HEAD,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => *request.method() == Method::POST,
            _ => false,
        };
        if to_get {
            *request.method_mut() = Method::GET;
            *request.body_mut() = None;
            let headers = request.headers_mut();
            for name in [
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ] {
                headers.remove(name);
            }
        }
        let cross_origin = self.previous.as_ref().is_none_or(|previous| {
            previous.host_str() != self.url.host_str()
                || previous.port_or_known_default() != self.url.port_or_known_default()
                || previous.scheme() != self.url.scheme()
        });
        if cross_origin {
            // What reqwest removes on a cross-host hop.
            let headers = request.headers_mut();
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                headers.remove(name);
            }
            headers.remove("cookie2");
        }
        *request.url_mut() = self.url;
        request
    }
}
