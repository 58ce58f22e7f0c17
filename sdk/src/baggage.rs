//! Reading and changing the current context's W3C baggage without touching
//! `opentelemetry` types.
//!
//! Contexts are immutable: [`set`] and [`remove`] return a new context to run
//! code in with [`run`](crate::run) or [`enter`](crate::enter).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let cx = baton::baggage::set("tenant", "acme").expect("valid entry");
//! baton::run(cx, async {
//!     assert_eq!(baton::baggage::get("tenant").as_deref(), Some("acme"));
//!     let without = baton::baggage::remove("tenant");
//!     baton::run(without, async { assert_eq!(baton::baggage::get("tenant"), None) }).await;
//! })
//! .await;
//! # }
//! ```

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};

use crate::context::with_current;

/// Why a baggage entry was not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaggageError {
    /// The key is not an RFC 7230 token, as W3C Baggage requires.
    InvalidKey,
    /// The baggage would exceed 64 entries or 8192 bytes.
    LimitExceeded,
}

impl std::fmt::Display for BaggageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BaggageError::InvalidKey => "baggage key is not a valid token",
            BaggageError::LimitExceeded => "baggage would exceed 64 entries or 8192 bytes",
        })
    }
}

impl std::error::Error for BaggageError {}

/// The value of baggage entry `key` in the current context.
pub fn get(key: &str) -> Option<String> {
    with_current(|cx| cx.baggage().get(key).map(|v| v.as_str().to_owned()))
}

/// All baggage entries of the current context, sorted by key.
pub fn entries() -> Vec<(String, String)> {
    let mut all: Vec<_> = with_current(|cx| {
        cx.baggage()
            .iter()
            .map(|(k, (v, _))| (k.as_str().to_owned(), v.as_str().to_owned()))
            .collect()
    });
    all.sort();
    all
}

/// The current context with baggage entry `key` set to `value`.
pub fn set(key: &str, value: &str) -> Result<Context, BaggageError> {
    with_current(|cx| set_in(cx, key, value))
}

/// `cx` with baggage entry `key` set to `value`.
pub fn set_in(cx: &Context, key: &str, value: &str) -> Result<Context, BaggageError> {
    if key.is_empty() || !key.bytes().all(is_tchar) {
        return Err(BaggageError::InvalidKey);
    }
    let mut baggage = copy(cx.baggage());
    // `Baggage::insert` returns `None` both for "inserted" and for "refused at
    // a limit"; reading the value back is the only way to tell them apart.
    baggage.insert(key.to_owned(), value.to_owned());
    if baggage.get(key).map(|v| v.as_str()) != Some(value) {
        return Err(BaggageError::LimitExceeded);
    }
    Ok(cx.with_baggage(baggage))
}

/// The current context without baggage entry `key`.
pub fn remove(key: &str) -> Context {
    with_current(|cx| {
        let mut baggage = copy(cx.baggage());
        baggage.remove(key);
        cx.with_baggage(baggage)
    })
}

/// `Baggage` is not `Clone` in opentelemetry 0.33.
fn copy(baggage: &Baggage) -> Baggage {
    baggage
        .iter()
        .map(|(k, (v, m))| (k.clone(), (v.clone(), m.clone())))
        .collect()
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
