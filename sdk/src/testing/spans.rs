//! Captured spans: routing them to their capture, and reading them as trees.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::{Entry, Inner, diff, lock, owner_of, text};

/// Shown by the console exporter, left out of [`Spans::tree`]: its port
/// changes from run to run on loopback.
const UNSTABLE_ATTRIBUTE: &str = "url.full";

/// What is known of a span between its start and its end.
#[derive(Debug)]
pub(super) struct Started {
    pub(super) name: String,
    baggage: Vec<(String, String)>,
}

/// The span processor of the shared tracer provider: it gives each span to
/// the capture owning its trace.
#[derive(Debug)]
pub(super) struct Router;

impl Router {
    fn owner(span: &Span, parent: &Context, trace_id: TraceId) -> Option<Arc<Inner>> {
        if let Some(Entry(inner)) = parent.get::<Entry>() {
            return Some(Arc::clone(inner));
        }
        if let Some(inner) = owner_of(trace_id) {
            return Some(inner);
        }
        // A new root in a context of no capture: linked to a captured trace
        // (a public endpoint's), or started where a capture's context is current.
        let linked = span.exported_data().and_then(|data| {
            data.links
                .iter()
                .find_map(|link| owner_of(link.span_context.trace_id()))
        });
        linked.or_else(|| Context::map_current(|cx| cx.get::<Entry>().map(|e| Arc::clone(&e.0))))
    }
}

impl SpanProcessor for Router {
    fn on_start(&self, span: &mut Span, parent: &Context) {
        use opentelemetry::trace::Span as _;
        let sc = span.span_context().clone();
        let Some(inner) = Self::owner(span, parent, sc.trace_id()) else {
            return;
        };
        inner.claim(sc.trace_id());
        let baggage = parent
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.as_str().to_owned()))
            .collect();
        let name = span
            .exported_data()
            .map(|d| d.name.into_owned())
            .unwrap_or_default();
        lock(&inner.open).insert(sc.span_id(), Started { name, baggage });
    }

    fn on_end(&self, span: SpanData) {
        let Some(inner) = owner_of(span.span_context.trace_id()) else {
            return;
        };
        let baggage = lock(&inner.open)
            .remove(&span.span_context.span_id())
            .map(|s| s.baggage)
            .unwrap_or_default();
        lock(&inner.finished).push(CapturedSpan {
            data: span,
            baggage,
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// One finished span, with the baggage of the context it started in.
#[derive(Clone, Debug)]
pub struct CapturedSpan {
    data: SpanData,
    baggage: Vec<(String, String)>,
}

impl CapturedSpan {
    /// The span's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.data.name
    }

    /// The span's kind.
    #[must_use]
    pub fn kind(&self) -> &SpanKind {
        &self.data.span_kind
    }

    /// The span's status.
    #[must_use]
    pub fn status(&self) -> &Status {
        &self.data.status
    }

    /// Whether the span's status is an error.
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self.data.status, Status::Error { .. })
    }

    /// The value of attribute `key` (the last one, if set more than once).
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.data
            .attributes
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// Asserts that attribute `key` is `expected`.
    ///
    /// # Panics
    ///
    /// When it is missing or different, naming the span, the key, both
    /// values and the span's attributes.
    #[track_caller]
    pub fn assert_attribute(&self, key: &str, expected: impl Into<Value>) -> &Self {
        let expected = expected.into();
        match self.attribute(key) {
            Some(found) if *found == expected => self,
            Some(found) => panic!(
                "span `{}`: attribute `{key}` is {found:?}, expected {expected:?}; attributes: {}",
                self.name(),
                self.attribute_list()
            ),
            None => panic!(
                "span `{}` has no attribute `{key}` (expected {expected:?}); attributes: {}",
                self.name(),
                self.attribute_list()
            ),
        }
    }

    /// Asserts that attribute `key` is not set.
    ///
    /// # Panics
    ///
    /// When it is, naming the span, the key and the value.
    #[track_caller]
    pub fn assert_no_attribute(&self, key: &str) -> &Self {
        if let Some(found) = self.attribute(key) {
            panic!(
                "span `{}` has attribute `{key}` = {found:?}, expected none",
                self.name()
            );
        }
        self
    }

    /// The value of baggage entry `key` in the context the span started in.
    #[must_use]
    pub fn baggage(&self, key: &str) -> Option<&str> {
        self.baggage
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every baggage entry of the context the span started in, sorted by key.
    #[must_use]
    pub fn baggage_entries(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<_> = self
            .baggage
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.sort_unstable();
        all
    }

    /// The span's trace.
    #[must_use]
    pub fn trace_id(&self) -> TraceId {
        self.data.span_context.trace_id()
    }

    /// The span's id.
    #[must_use]
    pub fn span_id(&self) -> SpanId {
        self.data.span_context.span_id()
    }

    /// The parent's id; [`SpanId::INVALID`] for a root.
    #[must_use]
    pub fn parent_span_id(&self) -> SpanId {
        self.data.parent_span_id
    }

    /// Whether the parent is another process's (extracted from a request).
    #[must_use]
    pub fn has_remote_parent(&self) -> bool {
        self.data.parent_span_is_remote
    }

    /// Everything OpenTelemetry recorded: events, links, times, scope.
    #[must_use]
    pub fn data(&self) -> &SpanData {
        &self.data
    }

    fn attribute_list(&self) -> String {
        let all: Vec<String> = self
            .data
            .attributes
            .iter()
            .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
            .collect();
        format!("[{}]", all.join(", "))
    }
}

/// The finished spans of a capture, in the order they started.
#[derive(Clone, Debug)]
pub struct Spans {
    spans: Vec<CapturedSpan>,
}

impl Spans {
    pub(super) fn new(mut spans: Vec<CapturedSpan>) -> Self {
        spans.sort_by_key(|s| s.data.start_time);
        Spans { spans }
    }

    /// The spans, in the order they started.
    pub fn iter(&self) -> impl Iterator<Item = &CapturedSpan> {
        self.spans.iter()
    }

    /// How many spans there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The spans named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a CapturedSpan> {
        self.spans.iter().filter(move |s| s.name() == name)
    }

    /// The one span named `name`.
    ///
    /// # Panics
    ///
    /// When there is none or more than one, showing the tree.
    #[track_caller]
    #[must_use]
    pub fn one(&self, name: &str) -> &CapturedSpan {
        let found: Vec<&CapturedSpan> = self.spans.iter().filter(|s| s.name() == name).collect();
        match found.as_slice() {
            [one] => one,
            _ => panic!(
                "expected one span named `{name}`, found {}:\n{}",
                found.len(),
                self.tree()
            ),
        }
    }

    /// The parent of `span`, when it was captured.
    #[must_use]
    pub fn parent(&self, span: &CapturedSpan) -> Option<&CapturedSpan> {
        self.spans
            .iter()
            .find(|s| s.trace_id() == span.trace_id() && s.span_id() == span.parent_span_id())
    }

    /// The children of `span`, in the order they started.
    #[must_use]
    pub fn children(&self, span: &CapturedSpan) -> Vec<&CapturedSpan> {
        self.spans
            .iter()
            .filter(|s| s.trace_id() == span.trace_id() && s.parent_span_id() == span.span_id())
            .collect()
    }

    /// Asserts that the one span named `child` has the one span named
    /// `parent` as its parent.
    ///
    /// # Panics
    ///
    /// When it has another parent or none, naming it, and showing the tree.
    #[track_caller]
    pub fn assert_parent(&self, child: &str, parent: &str) {
        let span = self.one(child);
        let expected = self.one(parent);
        if span.trace_id() == expected.trace_id() && span.parent_span_id() == expected.span_id() {
            return;
        }
        let actual = match self.parent(span) {
            Some(p) => format!("`{}`", p.name()),
            None if span.parent_span_id() == SpanId::INVALID => "none (a root)".to_owned(),
            None => format!("{} (not captured)", span.parent_span_id()),
        };
        panic!(
            "span `{child}` has parent {actual}, expected `{parent}`:\n{}",
            self.tree()
        );
    }

    /// The traces the spans belong to, in the order they started.
    #[must_use]
    pub fn trace_ids(&self) -> Vec<TraceId> {
        let mut seen = HashSet::new();
        self.spans
            .iter()
            .map(CapturedSpan::trace_id)
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The spans as trees, one per trace: the kind and name of each span
    /// indented under its parent, its status and the attributes the console
    /// exporter shows (`http.request.method`, `http.route`,
    /// `http.response.status_code`, `rpc.method`, `rpc.response.status_code`,
    /// `error.type`, `server.address`, and a few for messaging and databases;
    /// not `url.full`, whose port changes on loopback), then its `baggage.*`
    /// attributes. Nothing that changes from run to run (ids, times) is
    /// shown, so the text can be compared.
    #[must_use]
    pub fn tree(&self) -> String {
        self.tree_with(&tree_attributes())
    }

    /// [`tree`](Self::tree), showing the attributes `attributes` instead.
    #[must_use]
    pub fn tree_with(&self, attributes: &[&str]) -> String {
        let data: Vec<SpanData> = self.spans.iter().map(|s| s.data.clone()).collect();
        baton_exporters::plain_trees(&data, attributes)
    }

    /// Asserts that [`tree`](Self::tree) is `expected`, ignoring the common
    /// indentation of `expected`'s lines, trailing spaces, and blank lines
    /// before and after.
    ///
    /// # Panics
    ///
    /// When they differ, with a line diff (`-` expected, `+` captured).
    #[track_caller]
    pub fn assert_tree(&self, expected: &str) {
        self.assert_tree_with(&tree_attributes(), expected);
    }

    /// [`assert_tree`](Self::assert_tree) on [`tree_with`](Self::tree_with).
    ///
    /// # Panics
    ///
    /// When they differ, with a line diff (`-` expected, `+` captured).
    #[track_caller]
    pub fn assert_tree_with(&self, attributes: &[&str], expected: &str) {
        let actual = self.tree_with(attributes);
        if let Some(diff) = diff::lines(&diff::normalize(expected), &diff::normalize(&actual)) {
            panic!("span trees differ (- expected, + captured):\n{diff}");
        }
    }
}

/// The attributes [`Spans::tree`] shows.
fn tree_attributes() -> Vec<&'static str> {
    baton_exporters::KEY_ATTRIBUTES
        .iter()
        .copied()
        .filter(|key| *key != UNSTABLE_ATTRIBUTE)
        .collect()
}

impl fmt::Display for Spans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tree())
    }
}

impl<'a> IntoIterator for &'a Spans {
    type Item = &'a CapturedSpan;
    type IntoIter = std::slice::Iter<'a, CapturedSpan>;

    fn into_iter(self) -> Self::IntoIter {
        self.spans.iter()
    }
}
