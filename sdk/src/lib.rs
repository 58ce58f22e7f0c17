//! Baton: request-scoped context for Rust services, the way Node's
//! `AsyncLocalStorage` does it, on top of OpenTelemetry.
//!
//! PLACEHOLDER crate docs.

mod context;
mod future;
mod local;
mod task;

pub mod baggage;
#[cfg(tokio_unstable)]
pub mod runtime;

pub use context::{EnterGuard, current, enter, leaked_guards, run_sync, with_current};
pub use future::{InContext, Run, run};
pub use local::Local;
pub use opentelemetry::Context;
pub use task::{Snapshot, bind, snapshot, spawn, spawn_blocking, spawn_thread};
