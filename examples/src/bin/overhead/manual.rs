//! The `opentelemetry-manual` variant: the minimal instrumentation a user
//! would write by hand on the `opentelemetry` 0.33 API and `opentelemetry_sdk`
//! (the usual reference point). Spans only: no metrics, request id or
//! baggage, and no error status; three spans per request like the others.
//! Propagation is `opentelemetry_sdk`'s W3C Trace Context, over
//! `baton_propagators`' header carriers (the injector marks `traceparent`
//! never-indexed for HPACK, which a naive injector would not).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use baton_propagators::{HeaderCarrier, HeaderCarrierMut};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;

/// The gateway's SERVER span, as `axum::middleware::from_fn_with_state`
/// middleware. Added with `Router::layer`, it runs after routing, so the
/// route template (`MatchedPath`) is known.
pub(crate) async fn http_server(
    State(tracer): State<SdkTracer>,
    request: Request,
    next: Next,
) -> Response {
    let parent = TraceContextPropagator::new().extract(&HeaderCarrier(request.headers()));
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", request.uri().path().to_owned()),
        // A server sees origin-form URIs, without a scheme: plain HTTP here.
        KeyValue::new(
            "url.scheme",
            request.uri().scheme_str().unwrap_or("http").to_owned(),
        ),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    // Current while the handler runs, so that the gRPC client span it
    // starts is this span's child.
    let response = next.run(request).with_context(cx.clone()).await;
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    ));
    span.end();
    response
}

/// Starts an RPC span named after the request path (`/pkg.Svc/Method` →
/// `pkg.Svc/Method`) under `parent`; returns `parent` with it.
fn rpc_span(tracer: &SdkTracer, kind: SpanKind, path: &str, parent: &Context) -> Context {
    let method = path.strip_prefix('/').unwrap_or(path).to_owned();
    let span = tracer
        .span_builder(method.clone())
        .with_kind(kind)
        .with_attributes([
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.method", method),
        ])
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// What a hand-written layer returns when its future is not nameable.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An RPC span around each gRPC call: CLIENT around a tonic channel (child
/// of the current context, `traceparent` injected into the request), or
/// SERVER in a tonic server (child of the caller's `traceparent`, current
/// while the handler runs).
#[derive(Clone)]
pub(crate) struct GrpcLayer {
    pub(crate) tracer: SdkTracer,
    pub(crate) kind: SpanKind,
}

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = Grpc<S>;

    fn layer(&self, inner: S) -> Grpc<S> {
        Grpc {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Grpc<S> {
    inner: S,
    layer: GrpcLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for Grpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let propagator = TraceContextPropagator::new();
        let server = self.layer.kind == SpanKind::Server;
        // A client's parent is whatever the caller made current (the
        // gateway's span); a server's is the caller's, from the headers.
        let parent = if server {
            propagator.extract(&HeaderCarrier(request.headers()))
        } else {
            Context::current()
        };
        let path = request.uri().path();
        let cx = rpc_span(&self.layer.tracer, self.layer.kind.clone(), path, &parent);
        if !server {
            propagator.inject_context(&cx, &mut HeaderCarrierMut(request.headers_mut()));
        }
        // tonic's handler does its work when polled: the server's span is
        // current for every poll. A channel's future is transport only.
        let scope = server.then(|| cx.clone());
        let response = self.inner.call(request);
        // Unary: the response headers are the end of the call for this
        // measure; the body is not wrapped.
        Box::pin(async move {
            let result = match scope {
                Some(scope) => response.with_context(scope).await,
                None => response.await,
            };
            cx.span().end();
            result
        })
    }
}
