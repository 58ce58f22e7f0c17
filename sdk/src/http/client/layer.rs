//! The tower client layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Client;
use super::outgoing::{Outgoing, Plan, Target};
use crate::instrumentation::{Options, RequestView, client_options, options, service_accessors};
use crate::{InContext, Run};

/// Applies [`HttpClientService`] to a tower HTTP client (hyper-util's
/// `Client`, or any `Service<http::Request<B>, Response = http::Response<_>>`):
/// a CLIENT span, injection and RED metrics for every request. Takes the
/// [options every Baton middleware takes](crate::instrumentation). See the
/// [module docs](super).
///
/// Requests need an absolute URI (`http://host:port/path`), as hyper-util's
/// client requires: its authority is the `server.address` and `server.port`
/// recorded and what the baggage policy decides on (else the `Host` header).
///
/// ```
/// use baton::http::client::HttpClientLayer;
/// use tower::ServiceBuilder;
///
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<http_body_util::Empty<bytes::Bytes>>();
/// let client = ServiceBuilder::new().layer(HttpClientLayer::new()).service(client);
/// # drop(client);
/// ```
#[derive(Clone)]
pub struct HttpClientLayer {
    options: Options<Client>,
}

impl HttpClientLayer {
    /// A layer recording to the [global](crate::global) tracer and meter
    /// providers and injecting with the global propagator, as they are at
    /// each request; baggage goes to internal destinations only
    /// ([`BaggagePolicy::internal`](crate::instrumentation::BaggagePolicy::internal)).
    pub fn new() -> Self {
        HttpClientLayer {
            options: Options::new(),
        }
    }

    options!(Client);
    client_options!();
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer")
            .field("options", &self.options)
            .finish()
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientService::new(inner, self.clone())
    }
}

/// Traces, measures and injects each request, then sends it through the
/// inner client in the CLIENT span's context. Made by [`HttpClientLayer`].
#[derive(Clone, Debug)]
pub struct HttpClientService<S> {
    inner: S,
    /// Shared: clients are cloned freely.
    layer: Arc<HttpClientLayer>,
}

service_accessors!(HttpClientService, HttpClientLayer);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let options = &self.layer.options;
        let view =
            RequestView::from_parts(&parts.method, &parts.uri, &parts.headers, &parts.extensions);
        let plan = Plan::new(options, &view);
        let target = Target {
            method: &parts.method,
            host: parts.uri.host(),
            port: parts.uri.port_u16().or(match parts.uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            }),
        };
        let uri = &parts.uri;
        let outgoing = Outgoing::start(
            options,
            plan,
            &target,
            || super::url::full_uri(uri),
            &mut parts.headers,
        );
        let cx = outgoing
            .as_ref()
            .map_or_else(crate::current, |outgoing| outgoing.cx().clone());
        let req = Request::from_parts(parts, body);
        let inner = crate::run_sync(cx.clone(), || self.inner.call(req));
        ResponseFuture {
            inner: inner.in_context(cx),
            outgoing,
        }
    }
}

pin_project! {
    /// The response future of [`HttpClientService`]: waits for the inner
    /// client in the request's context and finishes the span and metrics
    /// when the response headers arrive.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Run<F>,
        // `None` for a filtered-out request, and once finished.
        outgoing: Option<Outgoing>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(task));
        if let Some(outgoing) = this.outgoing.take() {
            match &result {
                Ok(response) => outgoing.response(response.status(), response.version()),
                // Type names are few and fixed: a low-cardinality `error.type`.
                Err(_) => outgoing.error(std::any::type_name::<E>()),
            }
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
