//! How Baton's middleware starts spans: its instrumentation scope and a
//! tracer type that needs no type parameter.
#![cfg_attr(
    not(feature = "_middleware"),
    allow(dead_code, reason = "spans are started by the middleware features")
)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, Status, TraceContextExt, TraceFlags, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

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
    #[cfg(feature = "_http")]
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
        in_context(builder.start_with_context(self, parent), parent, base)
    }
}

/// `base` with `span`, a child of `parent`'s, its random flag restored.
pub(crate) fn in_context<S>(span: S, parent: &Context, base: &Context) -> Context
where
    S: Span + Send + Sync + 'static,
{
    match random_flag_lost(parent, span.span_context()) {
        None => base.with_span(span),
        // A span the sampler dropped records nothing: its context alone
        // carries everything it would have done.
        Some(sc) if !span.is_recording() => base.with_remote_span_context(sc),
        Some(sc) => base.with_span(WithFlags { span, sc }),
    }
}

/// W3C Trace Context Level 2's random-trace-id flag (#random-trace-id-flag).
const RANDOM: u8 = 0x02;

/// The span context `started` should have when it lacks the random flag:
/// kept from a parent of the same trace that has it (a MUST), or set on a
/// new trace (a SHOULD when the trace id is random).
///
/// Hand-written because `opentelemetry_sdk` 0.33.1 offers no hook for trace
/// flags (neither `ShouldSample` nor `IdGenerator` returns any) and loses
/// the flag twice. Measured through the layers over loopback
/// (`tests/random_flag.rs`) without this function: a span its sampler drops
/// gets `TraceFlags::default()`, so a `…-02` parent, or a `…-03` one under
/// `AlwaysOff`, reaches the next hop as `…-00`; a new trace takes the empty
/// parent's flags and goes out as `…-01` (`…-00` unsampled) although
/// `RandomIdGenerator`, the SDK's default and what Baton's pipeline uses,
/// draws all 128 bits at random. Sampled children of a random parent
/// already keep it (`…-03`).
fn random_flag_lost(parent: &Context, started: &SpanContext) -> Option<SpanContext> {
    let flags = started.trace_flags().to_u8();
    if !started.is_valid() || flags & RANDOM != 0 {
        return None;
    }
    let parent_span = parent.span();
    let parent = parent_span.span_context();
    let random = if parent.is_valid() {
        parent.trace_id() == started.trace_id() && parent.trace_flags().to_u8() & RANDOM != 0
    } else {
        // No parent: the tracer drew the trace id from its id generator.
        true
    };
    random.then(|| {
        SpanContext::new(
            started.trace_id(),
            started.span_id(),
            TraceFlags::new(flags | RANDOM),
            started.is_remote(),
            started.trace_state().clone(),
        )
    })
}

/// An SDK span that records and exports as usual, but shows `sc`, its own
/// context with the random flag, to whatever propagates it or starts a
/// child under it.
#[derive(Debug)]
struct WithFlags<S> {
    span: S,
    sc: SpanContext,
}

impl<S: Span> Span for WithFlags<S> {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        self.span
            .add_event_with_timestamp(name, timestamp, attributes);
    }

    fn span_context(&self) -> &SpanContext {
        &self.sc
    }

    fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        self.span.set_attribute(attribute);
    }

    fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.span.set_attributes(attributes);
    }

    fn set_status(&mut self, status: Status) {
        self.span.set_status(status);
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        self.span.update_name(new_name);
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        self.span.add_link(span_context, attributes);
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.span.end_with_timestamp(timestamp);
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
