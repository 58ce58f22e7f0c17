//! A propagator made of several, run in order.
//!
//! `opentelemetry::propagation::TextMapCompositePropagator` does the same for
//! `TextMapPropagator`s, but cannot pass on what its parts dropped; this one
//! holds [`Propagator`]s and reports every drop.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};

use crate::report::{Dropped, Propagator, text_map_propagator};

/// Runs several propagators in order.
///
/// Extraction hands each propagator the context the previous one produced,
/// so when two of them carry a span context the *last* valid one wins (as
/// with `TextMapCompositePropagator`); one whose header is absent or
/// malformed leaves the context as it was. Injection runs all of them. The
/// fields are the union of theirs, each name once. The default is empty and
/// extracts and injects nothing.
///
/// ```
/// use baton_propagators::{B3Propagator, CompositePropagator, HeaderCarrier, JaegerPropagator};
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
///
/// let propagator = CompositePropagator::default()
///     .push(B3Propagator::new())
///     .push(JaegerPropagator::new());
/// let mut headers = http::HeaderMap::new();
/// headers.insert("uber-trace-id", "1:2:0:1".parse().unwrap());
/// let cx = propagator.extract(&HeaderCarrier(&headers));
/// assert_eq!(cx.span().span_context().span_id().to_string(), "0000000000000002");
/// assert_eq!(propagator.fields().collect::<Vec<_>>(), ["b3", "uber-trace-id"]);
/// ```
#[derive(Debug, Default)]
pub struct CompositePropagator {
    propagators: Vec<Box<dyn Propagator>>,
    fields: Vec<String>,
}

impl CompositePropagator {
    /// A composite of `propagators`, run in the given order.
    pub fn new(propagators: Vec<Box<dyn Propagator>>) -> Self {
        propagators.into_iter().fold(
            CompositePropagator::default(),
            CompositePropagator::push_boxed,
        )
    }

    /// This composite with `propagator` appended (run after the others).
    #[must_use]
    pub fn push(self, propagator: impl Propagator + 'static) -> Self {
        self.push_boxed(Box::new(propagator))
    }

    fn push_boxed(mut self, propagator: Box<dyn Propagator>) -> Self {
        for field in propagator.field_names() {
            if !self.fields.contains(field) {
                self.fields.push(field.clone());
            }
        }
        self.propagators.push(propagator);
        self
    }
}

impl Propagator for CompositePropagator {
    fn extract_reporting(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        self.propagators.iter().fold(cx.clone(), |cx, p| {
            p.extract_reporting(&cx, extractor, dropped)
        })
    }

    fn inject_reporting(
        &self,
        cx: &Context,
        injector: &mut dyn Injector,
        dropped: &mut Vec<Dropped>,
    ) {
        for p in &self.propagators {
            p.inject_reporting(cx, injector, dropped);
        }
    }

    fn extract_from_header_map(
        &self,
        cx: &Context,
        headers: &http::HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) -> Context {
        self.propagators.iter().fold(cx.clone(), |cx, p| {
            p.extract_from_header_map(&cx, headers, dropped)
        })
    }

    fn inject_into_header_map(
        &self,
        cx: &Context,
        headers: &mut http::HeaderMap,
        dropped: &mut Vec<Dropped>,
    ) {
        for p in &self.propagators {
            p.inject_into_header_map(cx, headers, dropped);
        }
    }

    fn field_names(&self) -> &[String] {
        &self.fields
    }
}

text_map_propagator!(CompositePropagator);
