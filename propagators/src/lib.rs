//! Spec-exact propagators for OpenTelemetry: W3C Trace Context (Level 2),
//! W3C Baggage, B3 and Jaeger, with carriers for `http::HeaderMap` and tonic
//! metadata.
//!
//! PLACEHOLDER: crate docs are finished once all modules land.

mod baggage;
mod carrier;
mod percent;
pub mod report;

pub use baggage::BaggagePropagator;
pub use carrier::{HeaderCarrier, HeaderCarrierMut};
#[cfg(feature = "tonic")]
pub use carrier::{MetadataCarrier, MetadataCarrierMut};
pub use report::{DropReason, Dropped, Propagator};
