//! The current span and the request's remote parent, read without
//! OpenTelemetry's extension traits.
//!
//! ```
//! use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
//!
//! assert!(baton::trace::span_context().is_none(), "no span yet");
//! let remote = SpanContext::new(
//!     TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
//!     SpanId::from(0xb7ad6b7169203331),
//!     TraceFlags::SAMPLED,
//!     true,
//!     TraceState::NONE,
//! );
//! let cx = baton::Context::new().with_remote_span_context(remote.clone());
//! # use opentelemetry::trace::TraceContextExt as _;
//! baton::run_sync(cx, || {
//!     let current = baton::trace::span_context().expect("a span");
//!     assert_eq!(current.trace_id(), remote.trace_id());
//!     assert!(current.is_sampled());
//! });
//! ```

use opentelemetry::trace::TraceContextExt as _;
pub use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use crate::context::with_current;
use crate::request_id::RequestId;

/// The current span's context (trace id, span id, flags, tracestate);
/// `None` outside any span.
#[must_use]
pub fn span_context() -> Option<SpanContext> {
    with_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| context.clone())
    })
}

/// The current trace id; `None` outside any span.
#[must_use]
pub fn trace_id() -> Option<TraceId> {
    span_context().map(|cx| cx.trace_id())
}

/// The current span id; `None` outside any span.
#[must_use]
pub fn span_id() -> Option<SpanId> {
    span_context().map(|cx| cx.span_id())
}

/// Whether the current span is sampled (recorded and exported).
#[must_use]
pub fn is_sampled() -> bool {
    with_current(|cx| cx.span().span_context().is_sampled())
}

/// The span context the caller sent with the request being handled, as
/// Baton's HTTP or gRPC server layer extracted it: the parent of the
/// server span, or, on a [public endpoint](crate::instrumentation), the
/// span it links to. `None` when the caller sent none (or an invalid one),
/// and outside a server layer.
#[must_use]
pub fn remote_parent() -> Option<SpanContext> {
    with_current(|cx| cx.get::<Incoming>().and_then(|i| i.remote.clone()))
}

/// What a server layer puts in the handler's context: one entry, since
/// each entry added copies the context's map.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) remote: Option<SpanContext>,
    pub(crate) request_id: RequestId,
}
