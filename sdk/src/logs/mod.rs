//! Correlated logs, and `tracing` spans as OpenTelemetry spans.
//!
//! - [`CorrelatedFormat`] adds the current context's `trace_id`, `span_id`,
//!   `request_id` and chosen baggage entries to every line of your
//!   `tracing_subscriber::fmt` layer, text or JSON, however else it is
//!   configured.
//! - [`otel_layer`] turns `tracing` spans into OpenTelemetry spans that nest
//!   under the current context's span, and makes each one the current
//!   context while it is entered, so `tracing::Span::current()`,
//!   `opentelemetry::Context::current()` and [`baton::current`](crate::current)
//!   agree.
//! - [`LogTracer`] forwards records of the `log` crate to `tracing`, so
//!   libraries that log through `log` are correlated too.
//!
//! # Setup
//!
//! One `Registry`, the two layers, and the `log` bridge, once at startup:
//!
//! ```
//! # use tracing_log::log;
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let subscriber = tracing_subscriber::registry()
//!     // Filter the log lines, not the spans (see "Filters" below).
//!     .with(
//!         tracing_subscriber::fmt::layer()
//!             .json()
//!             .map_event_format(|f| baton::logs::CorrelatedFormat::new(f).baggage_keys(["tenant"]))
//!             .with_filter(LevelFilter::INFO),
//!     )
//!     .with(baton::logs::otel_layer(provider.tracer("checkout")));
//! tracing::subscriber::set_global_default(subscriber).expect("no subscriber yet");
//! baton::logs::LogTracer::init().expect("no `log` logger yet");
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
//! # rt.block_on(async {
//! let cx = baton::baggage::set("tenant", "acme").expect("valid entry");
//! baton::run(cx, async {
//!     // {"timestamp":"…","level":"INFO","fields":{"message":"paid"},"target":"…","baggage":{"tenant":"acme"}}
//!     tracing::info!("paid");
//!     let _span = tracing::info_span!("charge").entered();
//!     // Also carries the `charge` span's trace_id and span_id.
//!     log::warn!("slow card network");
//! })
//! .await;
//! # });
//! ```
//!
//! # Spans
//!
//! [`otel_layer`] is `tracing-opentelemetry`'s layer with context activation
//! on. A `tracing` span created without an explicit parent takes the
//! *current OpenTelemetry context* as its parent (not the current `tracing`
//! span), so it nests under the request span of the surrounding
//! [`run`](crate::run), and its context keeps that context's baggage and
//! [`Local`](crate::Local) values (the request id among them). Entering it
//! makes its context current until it is exited; OpenTelemetry spans started
//! inside are its children.
//!
//! A span therefore carries the context it was *created* in: a future
//! `.instrument(span)`ed inside a request keeps the request's baggage and
//! request id even when polled by a plain `tokio::spawn`. Where both wrap one
//! future, the outer wins while the inner is polled, so put `.instrument` on
//! the inside: `baton::run(cx, fut.instrument(span))`. A `tracing` span
//! entered *outside* a [`run`] is not current inside it (the run's context
//! is), although `tracing::Span::current()` still names it there.
//!
//! # Filters
//!
//! A span that a filter disables never exists: no OpenTelemetry span is
//! recorded for it and nothing is activated. What is inside it is not lost
//! or cut off: its events and child spans attach to the context current
//! around it (its nearest enabled ancestor, or the request span), so traces
//! stay connected and log lines carry that ancestor's `span_id`.
//!
//! Which spans a filter disables depends on where it sits:
//!
//! - a filter for the whole subscriber (`.with(LevelFilter::INFO)` on the
//!   registry, an `EnvFilter` added as a layer, or `tracing`'s
//!   `max_level_*` features) disables spans for every layer: `debug_span!`s
//!   disappear from traces as well as from logs;
//! - a per-layer filter (`layer.with_filter(..)`) disables them only for
//!   that layer. Filter the fmt layer to log less while
//!   [`otel_layer`] still records every span (and your sampler decides what
//!   is exported).
//!
//! [`run`]: crate::run

mod correlated;

pub use correlated::{CorrelatedFormat, Style};
/// Forwards records of the `log` crate to `tracing` (re-exported from
/// `tracing-log`): call `LogTracer::init()` once at startup.
pub use tracing_log::LogTracer;

use opentelemetry::trace::Tracer;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// A layer that records `tracing` spans as OpenTelemetry spans through
/// `tracer`, parented on the current context and made current while entered.
/// See the [module docs](self) for the parenting and filtering rules.
///
/// It is `tracing-opentelemetry`'s layer with context activation explicitly
/// on (it is what makes `opentelemetry::Context::current()` follow entered
/// spans, and what parents new spans on the current context); configure it
/// further with its own `with_*` methods.
pub fn otel_layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: Tracer + 'static,
    T::Span: Send + Sync,
{
    OpenTelemetryLayer::new(tracer).with_context_activation(true)
}

/// The log line format [`Init`](crate::Init) installs: one of
/// `tracing_subscriber::fmt`'s, through [`CorrelatedFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// fmt's JSON lines, one object per event.
    #[default]
    Json,
    /// fmt's full text format, one line per event.
    Human,
}
