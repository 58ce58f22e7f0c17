//! Spec-exact propagators for OpenTelemetry: W3C Trace Context (Level 2),
//! W3C Baggage, B3 and Jaeger, with carriers for `http::HeaderMap` and tonic
//! metadata.
//!
//! PLACEHOLDER: crate docs are finished once all modules land.

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
pub use carrier::{HeaderCarrier, HeaderCarrierMut};
#[cfg(feature = "tonic")]
pub use carrier::{MetadataCarrier, MetadataCarrierMut};
pub use composite::CompositePropagator;
pub use env::from_env;
pub use jaeger::JaegerPropagator;
pub use report::{DropReason, Dropped, Propagator};
pub use trace_context::TraceContextPropagator;
