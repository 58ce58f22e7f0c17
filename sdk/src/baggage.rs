//! Reading and changing the current context's W3C baggage without touching
//! `opentelemetry` types.
//!
//! Contexts are immutable: [`set`] and [`remove`] return a new context to run
//! code in with [`run`](crate::run) or [`enter`](crate::enter). Dropping it
//! changes nothing, so the compiler warns:
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! baton::baggage::remove("tenant"); // does nothing: the new context is dropped
//! ```
//!
//! Entries keep their W3C properties (`tenant=acme;ttl=60`):
//!
//! ```
//! let cx = baton::baggage::set_with_properties("tenant", "acme", "ttl=60").expect("valid");
//! baton::run_sync(cx, || {
//!     let entry = baton::baggage::entry("tenant").expect("set");
//!     assert_eq!((entry.value.as_str(), entry.properties.as_str()), ("acme", "ttl=60"));
//! });
//! ```
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

use baton_propagators::BaggagePropagator;
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
    /// A property is not `key` or `key=value` as W3C Baggage defines them.
    InvalidProperties,
}

impl std::fmt::Display for BaggageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BaggageError::InvalidKey => "baggage key is not a valid token",
            BaggageError::LimitExceeded => "baggage would exceed 64 entries or 8192 bytes",
            BaggageError::InvalidProperties => "baggage properties are not valid",
        })
    }
}

impl std::error::Error for BaggageError {}

/// One baggage entry: key, value and its W3C properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value, decoded.
    pub value: String,
    /// The `;`-separated properties after the value (`ttl=60`), in the
    /// form they are sent; empty for none.
    pub properties: String,
}

/// The value of baggage entry `key` in the current context.
#[must_use]
pub fn get(key: &str) -> Option<String> {
    with_current(|cx| cx.baggage().get(key).map(|v| v.as_str().to_owned()))
}

/// Baggage entry `key` of the current context, with its properties.
#[must_use]
pub fn entry(key: &str) -> Option<Entry> {
    with_current(|cx| {
        let (value, metadata) = cx.baggage().get_with_metadata(key)?;
        Some(Entry {
            key: key.to_owned(),
            value: value.as_str().to_owned(),
            properties: metadata.as_str().to_owned(),
        })
    })
}

/// All baggage entries of the current context with their properties,
/// sorted by key.
#[must_use]
pub fn entries() -> Vec<Entry> {
    let mut all: Vec<_> = with_current(|cx| {
        cx.baggage()
            .iter()
            .map(|(k, (v, m))| Entry {
                key: k.as_str().to_owned(),
                value: v.as_str().to_owned(),
                properties: m.as_str().to_owned(),
            })
            .collect()
    });
    all.sort_by(|a, b| a.key.cmp(&b.key));
    all
}

/// The current context with baggage entry `key` set to `value`.
#[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
pub fn set(key: &str, value: &str) -> Result<Context, BaggageError> {
    with_current(|cx| set_in(cx, key, value))
}

/// `cx` with baggage entry `key` set to `value`.
#[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
pub fn set_in(cx: &Context, key: &str, value: &str) -> Result<Context, BaggageError> {
    set_with_properties_in(cx, key, value, "")
}

/// The current context with baggage entry `key` set to `value` with
/// `properties` (`;`-separated, without the leading `;`: `ttl=60`).
#[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
pub fn set_with_properties(
    key: &str,
    value: &str,
    properties: &str,
) -> Result<Context, BaggageError> {
    with_current(|cx| set_with_properties_in(cx, key, value, properties))
}

/// `cx` with baggage entry `key` set to `value` with `properties`.
#[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
pub fn set_with_properties_in(
    cx: &Context,
    key: &str,
    value: &str,
    properties: &str,
) -> Result<Context, BaggageError> {
    if key.is_empty() || !key.bytes().all(is_tchar) {
        return Err(BaggageError::InvalidKey);
    }
    let properties = if properties.trim().is_empty() {
        String::new()
    } else {
        BaggagePropagator::properties(properties).ok_or(BaggageError::InvalidProperties)?
    };
    let mut baggage = copy(cx.baggage());
    // `Baggage::insert` returns `None` both for "inserted" and for "refused at
    // a limit"; reading the value back is the only way to tell them apart.
    baggage.insert_with_metadata(key.to_owned(), value.to_owned(), properties);
    if baggage.get(key).map(|v| v.as_str()) != Some(value) {
        return Err(BaggageError::LimitExceeded);
    }
    Ok(cx.with_baggage(baggage))
}

/// The current context without baggage entry `key`.
#[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
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
