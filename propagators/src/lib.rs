//! Spec-exact propagators for OpenTelemetry: W3C Trace Context (Level 2),
//! W3C Baggage, B3 and Jaeger, with carriers for `http::HeaderMap` and tonic
//! metadata.
//!
//! - [`TraceContextPropagator`]: `traceparent`/`tracestate` exactly as W3C
//!   Trace Context Level 2 says (strict lengths and hex, version rules, the
//!   random flag kept, the current tracestate key grammar with `@` allowed
//!   anywhere after the first character of a key of up to 256, at most 32
//!   members, repeated keys forwarded as received, repeated lines combined, no
//!   empty header sent), with a `HeaderMap` fast path that does not allocate
//!   for `traceparent`. It passes the cases of the official test suite
//!   (`test/test.py` at commit `e06b326492f25b21c41a26e68fd5b0ca7c97a301`)
//!   except where the specification has moved on since (the key grammar,
//!   duplicated keys), and there it follows the current text.
//! - [`BaggagePropagator`]: W3C Baggage with percent-encoding that is stable
//!   across any number of hops, properties kept as properties, and the limits
//!   (64 members, 8192 bytes) enforced by dropping entries, never the request.
//! - [`B3Propagator`] (single and multi header) and [`JaegerPropagator`]
//!   (`uber-trace-id`, `uberctx-*`).
//! - [`CompositePropagator`] and [`env::parse`] / [`from_env`] for
//!   `OTEL_PROPAGATORS` (`tracecontext,baggage,b3,b3multi,jaeger,none`).
//! - Carriers: [`HeaderCarrier`]/[`HeaderCarrierMut`] for `http::HeaderMap`
//!   (every line of a repeated header), [`MetadataCarrier`]/[`MetadataCarrierMut`]
//!   for tonic metadata. [`Propagator::extract_from_header_map`] and
//!   [`Propagator::inject_into_header_map`] read and write an
//!   `http::HeaderMap` directly (the trace-context fast path, also through a
//!   [`CompositePropagator`]); Baton's middleware uses them.
//!
//! Every propagator implements `opentelemetry::propagation::TextMapPropagator`,
//! so it drops into `opentelemetry::global::set_text_map_propagator`, and
//! [`Propagator`], whose methods also report each entry that was left out
//! ([`Dropped`]). Bad input never panics and never fails: it is treated as
//! absent, and what is injected is always valid for the next hop's parser.
//!
//! # Example
//!
//! ```
//! use baton_propagators::{HeaderCarrier, HeaderCarrierMut};
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let propagator = baton_propagators::env::parse("tracecontext,baggage").0;
//! let mut incoming = http::HeaderMap::new();
//! incoming.insert(
//!     "traceparent",
//!     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03".parse().unwrap(),
//! );
//! incoming.insert("baggage", "tenant=acme,note=100%25%20sure".parse().unwrap());
//!
//! let cx = propagator.extract(&HeaderCarrier(&incoming));
//! assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03, "random flag kept");
//!
//! let mut outgoing = http::HeaderMap::new();
//! propagator.inject_context(&cx, &mut HeaderCarrierMut(&mut outgoing));
//! assert_eq!(outgoing["traceparent"], incoming["traceparent"]);
//! assert_eq!(outgoing["baggage"], "note=100%25%20sure,tenant=acme");
//! ```
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `tonic` | yes | [`MetadataCarrier`], [`MetadataCarrierMut`] |
//!
//! Minimum supported Rust version: 1.88.

mod b3;
mod baggage;
mod carrier;
mod composite;
pub mod env;
mod jaeger;
mod percent;
pub mod report;
pub mod trace_context;

pub use b3::{B3Encoding, B3Propagator, DebugTrace};
pub use baggage::BaggagePropagator;
pub use carrier::{HeaderCarrier, HeaderCarrierMut, never_index};
#[cfg(feature = "tonic")]
pub use carrier::{MetadataCarrier, MetadataCarrierMut};
pub use composite::CompositePropagator;
pub use env::from_env;
pub use jaeger::JaegerPropagator;
pub use report::{DropReason, Dropped, Propagator};
pub use trace_context::TraceContextPropagator;
