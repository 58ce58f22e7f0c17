//! Baton: request-scoped context for Rust services, the way Node's
//! `AsyncLocalStorage` does it, on top of OpenTelemetry.
//!
//! A request's context (trace context, baggage, typed values such as a tenant
//! or a request id) is established once with [`run`] and is then current
//! everywhere inside, however many `.await`s, timers or spawned tasks deep;
//! concurrent requests never see each other's; nobody threads a `ctx`
//! argument by hand.
//!
//! | `AsyncLocalStorage` | Baton |
//! |---|---|
//! | `als.run(store, cb)` | [`run`]`(cx, future)`, [`run_sync`]`(cx, f)`, [`Local::run`] |
//! | `als.getStore()` | [`current`], [`with_current`], [`Local::get`] |
//! | separate instances | one `static` [`Local<T>`] per key, all carried together |
//! | `AsyncLocalStorage.bind(fn)` | [`bind`] |
//! | `AsyncLocalStorage.snapshot()` | [`snapshot`] |
//! | `als.enterWith(store)` | [`enter`] (scoped guard), `runtime::enter_task` (rest of the task) |
//! | automatic through `setTimeout`, promises | [`InContext`], [`spawn`], [`spawn_blocking`], [`spawn_thread`]; plain `tokio::spawn` with `runtime` hooks |
//!
//! The current context *is* `opentelemetry::Context::current()`: spans started
//! through the plain `opentelemetry` API inside a [`run`] nest under the
//! request's span, and baggage set through either API is seen by both.
//! [`baggage`] reads and changes W3C baggage without touching OpenTelemetry
//! types; [`propagators`] (the `baton-propagators` crate) moves the context
//! across HTTP and gRPC hops.
//!
//! # Example
//!
//! ```
//! use baton::Local;
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct Tenant(&'static str);
//! static TENANT: Local<Tenant> = Local::new();
//!
//! async fn repository_call() -> Option<Tenant> {
//!     // Deep inside: no argument threaded through.
//!     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!     TENANT.get()
//! }
//!
//! # #[tokio::main] async fn main() {
//! let handles: Vec<_> = ["acme", "globex"]
//!     .into_iter()
//!     .map(|t| tokio::spawn(TENANT.run(Tenant(t), async move {
//!         let in_task = baton::spawn(repository_call()).await.expect("task");
//!         (in_task, repository_call().await)
//!     })))
//!     .collect();
//! for (h, t) in handles.into_iter().zip(["acme", "globex"]) {
//!     assert_eq!(h.await.expect("task"), (Some(Tenant(t)), Some(Tenant(t))));
//! }
//! # }
//! ```
//!
//! # Guards and leaks
//!
//! [`enter`] returns a `!Send`, `#[must_use]` guard for synchronous code. A
//! guard held across an `.await` would leak its context into whatever the
//! thread polls next (plain `opentelemetry` has this problem on a
//! current-thread runtime and inside `join!`). Baton prevents and catches it:
//! `tokio::spawn` rejects such a future (it is not `Send`); every poll of a
//! [`run`] future, and of every task under the `runtime` hooks, attaches its
//! own context, so a leaked one never decides what another sees; and a guard
//! that outlives its poll panics in debug builds and is counted by
//! [`leaked_guards`] in release builds. Add the workspace's `clippy.toml` line
//! `await-holding-invalid-types` to flag it at compile time.
//!
//! # Instrumentation
//!
//! Each is one line to add, and makes the request's context current (through
//! [`run`]) for the whole handler, so everything above works inside:
//!
//! - `http::server::HttpServerLayer`: tower and hyper HTTP servers, axum
//!   among them (SERVER span `{method} {route}`, request id);
//! - `http::client::HttpClientLayer`: tower HTTP clients such as
//!   hyper-util's; `http::client::HttpClientMiddleware`: reqwest (CLIENT
//!   span, injection);
//! - `grpc::server::GrpcServerLayer`, `grpc::client::GrpcClientLayer`,
//!   `grpc::interceptor::InjectInterceptor`: tonic;
//! - `logs::CorrelatedFormat` and `logs::otel_layer`: `trace_id`, `span_id`,
//!   `request_id` and chosen baggage keys on every line
//!   `tracing_subscriber::fmt` writes; `tracing` spans as children of the
//!   current OpenTelemetry span.
//!
//! The four middlewares take one option set (`instrumentation`: providers,
//! propagator, filter, span names, server address, public endpoints, a
//! baggage policy sending baggage to internal destinations only by
//! default), and find the [`global`] providers and propagator per request,
//! so they can be built before [`init`] runs. All record RED metrics with
//! the OpenTelemetry semantic conventions 1.42.0 names, units and seconds
//! buckets ([`metrics::DURATION_BOUNDARIES`]). Handlers read their span and
//! their caller's through [`trace`].
//!
//! # Features
//!
//! Nothing is on by default, as in tower-http: each integration brings its
//! framework along, and Cargo cannot turn off a default feature that some
//! dependency left on. A library that only carries context depends on
//! `baton` with `default-features = false`; an application enables `full`,
//! or the integrations it uses.
//!
//! | feature | enables |
//! |---|---|
//! | (none) | the context model: [`run`], [`current`], [`Local`], hand-offs, [`baggage`], guards, [`global`], [`propagators`] |
//! | `http-server` | `http::server`: the HTTP server layer for tower and hyper, the route from a `Route` extension or `with_route` |
//! | `axum` | `http-server`, with route templates from axum's `MatchedPath` |
//! | `http-client` | `http::client::HttpClientLayer`: a tower HTTP client layer (hyper-util's client, any tower HTTP service) |
//! | `reqwest` | `http::client::HttpClientMiddleware`: reqwest-middleware |
//! | `tonic` | `grpc`: tonic server and client layers, injecting interceptor |
//! | `logs` | `logs`: correlation in `tracing_subscriber::fmt`'s output, `tracing` ↔ OpenTelemetry bridging |
//! | `export` | `logs`, and [`init`]: one-call setup from the `OTEL_*` variables, OTLP or console export (`baton-exporters`) |
//! | `full` | all of the above |
//! | `testing` | `testing`: capture the spans, metric points and log records one test's code produced, and assert on them (for dev-dependencies) |
//!
//! One `--cfg` flag, since it needs tokio's unstable API:
//!
//! | flag | enables |
//! |---|---|
//! | `--cfg tokio_unstable` | `runtime`: automatic inheritance across plain `tokio::spawn` through tokio's task hooks |
//!
//! Minimum supported Rust version: 1.88.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod context;
mod future;
#[cfg(feature = "_middleware")]
mod intern;
mod local;
mod propagation;
mod task;
mod tracer;

pub mod baggage;
pub mod global;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod grpc;
#[cfg(feature = "_http")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "http-server", feature = "http-client", feature = "reqwest")))
)]
pub mod http;
#[cfg(feature = "export")]
mod init;
#[cfg(feature = "_middleware")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "http-server",
        feature = "http-client",
        feature = "reqwest",
        feature = "tonic"
    )))
)]
pub mod instrumentation;
#[cfg(feature = "logs")]
#[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
pub mod logs;
pub mod metrics;
pub mod request_id;
#[cfg(tokio_unstable)]
#[cfg_attr(docsrs, doc(cfg(tokio_unstable)))]
pub mod runtime;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

// Every Rust block of README.md compiles (and runs, unless `no_run`).
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../../README.md")]
mod readme {}

pub use baton_propagators as propagators;
pub use context::{EnterGuard, current, enter, leaked_guards, run_sync, with_current};
pub use future::{InContext, Run, run};
#[cfg(feature = "export")]
#[cfg_attr(docsrs, doc(cfg(feature = "export")))]
pub use init::{Init, InitError, Telemetry, init};
pub use local::Local;
/// The OpenTelemetry API Baton is built on, at the version it uses: no
/// version-matched dependency of your own is needed.
pub use opentelemetry;
pub use opentelemetry::Context;
/// The OpenTelemetry SDK Baton's middleware and setup use (providers,
/// exporters, samplers), at the version they use.
#[cfg(any(feature = "_middleware", feature = "export", feature = "testing"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "http-server",
        feature = "http-client",
        feature = "reqwest",
        feature = "tonic",
        feature = "export",
        feature = "testing"
    )))
)]
pub use opentelemetry_sdk;
pub use task::{Snapshot, bind, snapshot, spawn, spawn_blocking, spawn_thread};
