//! HTTP middleware: a tower [server layer](server) for hyper, axum and any
//! tower server, and [clients](client): a tower layer (hyper-util) and a
//! reqwest middleware.
//!
//! They carry Baton's context across the hop (extracting and injecting with
//! the [global](crate::global) propagator, or their own) and record one span and
//! the RED metrics per request, following the OpenTelemetry semantic
//! conventions 1.42.0 for HTTP (the version `opentelemetry-semantic-conventions`
//! 0.33.1 tracks).
//!
//! Telemetry goes to the [global](crate::global) tracer and meter
//! providers as they are at each request, or to providers given explicitly:
//! both take the [options every Baton middleware
//! takes](crate::instrumentation).

#[cfg(feature = "_http-client")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "http-client", feature = "reqwest"))))]
pub mod client;
#[cfg(feature = "http-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-server")))]
pub mod server;

mod semconv;
pub(crate) mod telemetry;
