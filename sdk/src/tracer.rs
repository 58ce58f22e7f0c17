//! How Baton's middleware starts spans: its instrumentation scope and a
//! tracer type that needs no type parameter.
#![cfg_attr(
    not(any(feature = "http", feature = "grpc")),
    allow(dead_code, reason = "spans are started by the middleware features")
)]

use std::sync::Arc;

use opentelemetry::trace::{SpanBuilder, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope};

/// The instrumentation scope of every span and metric Baton's middleware makes.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("baton")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(opentelemetry_semantic_conventions::SCHEMA_URL)
        .build()
}

/// Starts spans for the layers, which need no type parameter for the
/// tracer. Not `opentelemetry::global::BoxedTracer`: it boxes every span
/// it starts, and the context boxes it again; this boxes it once.
pub(crate) trait StartSpan: Send + Sync {
    /// `base` with a span from `builder`, a child of `parent`'s span.
    fn start_in(&self, builder: SpanBuilder, parent: &Context, base: &Context) -> Context;

    /// `parent` with a span from `builder`, a child of its span.
    fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
        self.start_in(builder, parent, parent)
    }
}

impl<T> StartSpan for T
where
    T: Tracer + Send + Sync,
    T::Span: Send + Sync + 'static,
{
    fn start_in(&self, builder: SpanBuilder, parent: &Context, base: &Context) -> Context {
        base.with_span(builder.start_with_context(self, parent))
    }
}

impl std::fmt::Debug for dyn StartSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

/// A layer's tracer.
pub(crate) type LayerTracer = Arc<dyn StartSpan>;

/// Baton's tracer from `provider`.
pub(crate) fn from_provider<P>(provider: &P) -> LayerTracer
where
    P: TracerProvider,
    P::Tracer: Send + Sync + 'static,
    <P::Tracer as Tracer>::Span: Send + Sync + 'static,
{
    Arc::new(provider.tracer_with_scope(scope()))
}
