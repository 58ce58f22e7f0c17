//! Drop reports: what a propagator left out, and the [`Propagator`] trait that returns them.
//!
//! `TextMapPropagator` cannot tell its caller that it dropped anything; bad
//! input must not fail a request, but a silent drop hides bugs. Every
//! propagator here therefore also implements [`Propagator`], whose methods
//! push one [`Dropped`] per left-out entry into a caller-owned `Vec` (which
//! never allocates when nothing is dropped).

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};

/// Why an entry was left out of an extracted context or an injected header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The entry or header does not match the grammar of its specification.
    Malformed,
    /// The entry would exceed the specification's limit on the number of entries.
    TooMany,
    /// The entry or header would exceed the specification's size limit.
    TooLong,
    /// The key was already present; the specification keeps only one.
    Duplicate,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::Malformed => "malformed",
            DropReason::TooMany => "too many entries",
            DropReason::TooLong => "too long",
            DropReason::Duplicate => "duplicate key",
        })
    }
}

/// One entry a propagator left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The header (or header prefix) the entry belonged to, such as `"baggage"`.
    pub header: &'static str,
    /// The entry's key when it is valid for the header's grammar, otherwise empty:
    /// a key that came from outside is never handed on unvalidated.
    pub key: String,
    /// Why it was left out.
    pub reason: DropReason,
}

impl Dropped {
    /// A drop of `key` from `header`; `key` must already be known to be valid (or empty).
    pub fn new(header: &'static str, key: impl Into<String>, reason: DropReason) -> Self {
        Dropped {
            header,
            key: key.into(),
            reason,
        }
    }
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: entry dropped: {}", self.header, self.reason)
        } else {
            write!(
                f,
                "{}: entry {:?} dropped: {}",
                self.header, self.key, self.reason
            )
        }
    }
}

/// A propagator that reports what it drops.
///
/// Every propagator in this crate implements both this trait and
/// [`TextMapPropagator`](opentelemetry::propagation::TextMapPropagator); the
/// latter calls these methods and discards the report.
pub trait Propagator: Send + Sync + std::fmt::Debug {
    /// Extracts this propagator's fields into a context derived from `cx`,
    /// pushing one [`Dropped`] per left-out entry. Invalid input never fails:
    /// it is treated as absent.
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context;

    /// Injects this propagator's fields from `cx`, pushing one [`Dropped`] per
    /// entry left out so that only valid headers go out.
    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        dropped: &mut Vec<Dropped>,
    );

    /// [`extract_reporting`](Self::extract_reporting) from an
    /// `http::HeaderMap` (a tonic `MetadataMap` is one underneath). The
    /// default reads through [`HeaderCarrier`](crate::HeaderCarrier);
    /// propagators override it to skip that indirection's allocations.
    fn extract_from_header_map(
        &self,
        cx: &Context,
        headers: &http::HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        self.extract_reporting(cx, &crate::HeaderCarrier(headers), dropped)
    }

    /// [`inject_reporting`](Self::inject_reporting) into an
    /// `http::HeaderMap`; the default writes through
    /// [`HeaderCarrierMut`](crate::HeaderCarrierMut).
    fn inject_into_header_map(
        &self,
        cx: &Context,
        headers: &mut http::HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) {
        self.inject_reporting(cx, &mut crate::HeaderCarrierMut(headers), dropped);
    }

    /// The header names this propagator reads and writes (for
    /// `TextMapPropagator::fields`, which wants `String`s: keep them in a
    /// `static LazyLock<[String; N]>`).
    fn field_names(&self) -> &[String];
}

/// Implements `TextMapPropagator` for a type that implements [`Propagator`].
///
/// An orphan rule forbids a blanket impl, so each type gets this one-liner.
macro_rules! text_map_propagator {
    ($ty:ty) => {
        impl opentelemetry::propagation::TextMapPropagator for $ty {
            fn inject_context(
                &self,
                cx: &opentelemetry::Context,
                injector: &mut dyn opentelemetry::propagation::Injector,
            ) {
                let mut dropped = Vec::new();
                $crate::Propagator::inject_reporting(self, cx, injector, &mut dropped);
                $crate::report::log_dropped("inject", &dropped);
            }

            fn extract_with_context(
                &self,
                cx: &opentelemetry::Context,
                extractor: &dyn opentelemetry::propagation::Extractor,
            ) -> opentelemetry::Context {
                let mut dropped = Vec::new();
                let cx = $crate::Propagator::extract_reporting(self, cx, extractor, &mut dropped);
                $crate::report::log_dropped("extract", &dropped);
                cx
            }

            fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
                opentelemetry::propagation::text_map_propagator::FieldIter::new(
                    $crate::Propagator::field_names(self),
                )
            }
        }
    };
}
pub(crate) use text_map_propagator;

/// Drops seen through the plain `TextMapPropagator` API are only logged, at
/// debug level: bad input from peers is normal and must not flood the logs.
pub(crate) fn log_dropped(op: &'static str, dropped: &[Dropped]) {
    for d in dropped {
        tracing::debug!(operation = op, "{d}");
    }
}
