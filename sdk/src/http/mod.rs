//! HTTP middleware: a tower [server layer](server) for axum and hyper, and a
//! reqwest [client middleware](client).
//!
//! Both carry Baton's context across the hop (extracting and injecting with
//! the [configured propagator](crate::propagation)) and record one span and
//! the RED metrics per request, following the OpenTelemetry semantic
//! conventions 1.42.0 for HTTP (the version `opentelemetry-semantic-conventions`
//! 0.33.1 tracks).
//!
//! Telemetry goes to the global tracer and meter providers as they are when
//! the layer or middleware is built, or to providers given explicitly.

pub mod client;
pub mod server;

mod semconv;
pub(crate) mod telemetry;
