//! [`ConsoleSpanExporter`]: buffers spans until their trace's local root ends,
//! then draws the trace.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::tree::{self, ServiceSpan, TreeOptions};
use super::{Style, UNKNOWN_SERVICE, Writer, service_name, stdout_writer};

/// Default width of the duration bar, in cells.
const DEFAULT_BAR_WIDTH: usize = 30;
/// Default number of span lines drawn per trace.
const DEFAULT_MAX_LINES: usize = 200;
/// Default number of spans held while waiting for their root.
const DEFAULT_MAX_BUFFERED: usize = 10_000;
/// Default time a span waits for its root before its trace is drawn incomplete.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30);

/// A [`SpanExporter`] that draws each finished trace as a tree in the terminal.
///
/// Spans are exported as they end, so children usually arrive before their
/// parent and a trace's local root (a span without a parent, or with a remote
/// one) arrives last. The exporter holds spans per trace until that root
/// arrives, then draws the root and everything below it:
///
/// ```text
/// trace 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a · checkout · GET /orders/{id} · 120.00 ms · 3 spans
/// checkout  GET /orders/{id}                             SRV │██████████████████████████████│   120.00 ms  ERROR  http.request.method=GET http.route=/orders/{id} http.response.status_code=502
/// checkout    load order                                 INT │  ██████████▌                 │    40.00 ms  OK
/// checkout      SELECT orders                            CLI │     ██████▎                  │    25.00 ms  -  db.system.name=postgresql
/// ```
///
/// Each line shows the service (`service.name` of the resource), the span
/// name indented by depth, the kind, a bar placing the span within the root's
/// duration, the duration, the status (`OK`, `-` for unset, `ERROR: message`)
/// and key attributes such as `http.route` or `error.type`, then any
/// `baggage.*` attributes. Children are ordered by start time.
///
/// Memory stays bounded: a span that waits longer than
/// [`with_max_age`](Self::with_max_age) for its root (say, a background task
/// that outlives its request) is drawn in an incomplete tree on the next
/// export, and beyond [`with_max_buffered_spans`](Self::with_max_buffered_spans)
/// the oldest waiting trace is dropped. Drops are counted, reported in the
/// output and available from [`dropped_spans`](Self::dropped_spans).
///
/// Output goes to stdout unless [`with_writer`](Self::with_writer) says
/// otherwise; it is colored only on a terminal without `NO_COLOR`.
///
/// Several services in one process, each with its own tracer provider and
/// `service.name`, can draw into the same trees: give each provider an
/// exporter from [`share`](Self::share), and each line names the service of
/// its own span.
pub struct ConsoleSpanExporter {
    shared: Arc<Shared>,
    service: Arc<str>,
    options: TreeOptions<'static>,
    max_buffered: usize,
    max_age: Duration,
    shut_down: AtomicBool,
}

/// What the exporters made by [`ConsoleSpanExporter::share`] have in common.
struct Shared {
    state: Mutex<State>,
    /// Exporters neither shut down nor dropped: the last one to go draws
    /// what still waits, as no other can bring its root any more.
    open: AtomicUsize,
}

/// What export calls change.
struct State {
    writer: Writer,
    pending: HashMap<TraceId, Pending>,
    /// Spans across all of `pending`, to enforce the bound cheaply.
    buffered: usize,
    dropped: u64,
    /// `dropped` as of the last report line, so each drop is reported once.
    reported: u64,
}

/// Spans of one trace waiting for their local root.
struct Pending {
    first_arrival: Instant,
    spans: Vec<ServiceSpan>,
}

impl ConsoleSpanExporter {
    /// An exporter writing to stdout, colored when stdout is a terminal and
    /// `NO_COLOR` is unset.
    pub fn new() -> Self {
        let (writer, color) = stdout_writer();
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    writer,
                    pending: HashMap::new(),
                    buffered: 0,
                    dropped: 0,
                    reported: 0,
                }),
                open: AtomicUsize::new(1),
            }),
            service: UNKNOWN_SERVICE.into(),
            options: TreeOptions {
                bar_width: DEFAULT_BAR_WIDTH,
                max_lines: DEFAULT_MAX_LINES,
                style: Style { color },
                keys: tree::KEY_ATTRIBUTES,
                timings: true,
            },
            max_buffered: DEFAULT_MAX_BUFFERED,
            max_age: DEFAULT_MAX_AGE,
            shut_down: AtomicBool::new(false),
        }
    }

    /// Writes to `writer` instead of stdout, uncolored unless
    /// [`with_color`](Self::with_color) is called afterwards.
    pub fn with_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.lock().writer = Box::new(writer);
        self.options.style.color = false;
        self
    }

    /// Turns ANSI color on or off.
    pub fn with_color(mut self, color: bool) -> Self {
        self.options.style.color = color;
        self
    }

    /// Sets the duration bar's width in cells (default 30).
    pub fn with_bar_width(mut self, cells: usize) -> Self {
        self.options.bar_width = cells;
        self
    }

    /// Sets how many span lines a trace gets before the rest are summarised
    /// in one line (default 200).
    pub fn with_max_lines(mut self, lines: usize) -> Self {
        self.options.max_lines = lines;
        self
    }

    /// Sets how many spans may wait for their root; beyond it the oldest
    /// waiting trace is dropped (default 10 000).
    pub fn with_max_buffered_spans(mut self, spans: usize) -> Self {
        self.max_buffered = spans;
        self
    }

    /// Sets how long spans wait for their root before their trace is drawn
    /// as incomplete (default 30 s).
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Another exporter drawing into the same trees: both buffer spans
    /// together, so a trace recorded by several providers (one per service
    /// in one process) is drawn whole once its root arrives through either,
    /// and each line shows the `service.name` of the provider that recorded
    /// the span. It starts with this exporter's options; the writer, the
    /// buffer and its bound are shared.
    ///
    /// Shutting one down stops only that one; the last to shut down draws
    /// whatever still waits for its root. [`force_flush`](SpanExporter::force_flush)
    /// on any of them draws every waiting trace.
    pub fn share(&self) -> Self {
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
            service: Arc::clone(&self.service),
            options: self.options,
            max_buffered: self.max_buffered,
            max_age: self.max_age,
            shut_down: AtomicBool::new(false),
        }
    }

    /// How many spans were dropped because the buffer was full.
    pub fn dropped_spans(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while writing leaves the buffer consistent; keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks this exporter closed, once; true when it was the last open one.
    fn close(&self) -> bool {
        !self.shut_down.swap(true, Ordering::AcqRel)
            && self.shared.open.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Buffers `batch`, draws the traces whose roots arrived, then expires
    /// and bounds what is left.
    fn export_batch(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let now = Instant::now();
        let mut state = self.lock();
        let mut out = String::new();

        let mut roots = Vec::new();
        for span in batch {
            let span = ServiceSpan {
                service: Arc::clone(&self.service),
                span,
            };
            if is_local_root(&span.span) {
                roots.push(span);
            } else {
                state.buffer(span, now);
            }
        }
        // Children first, so a root sees children exported in the same batch.
        for root in roots {
            let descendants = state.take_descendants(&root.span);
            tree::render(&mut out, &root, &descendants, false, &self.options);
        }

        let max_age = self.max_age;
        let expired: Vec<TraceId> = state
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_arrival) >= max_age)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let spans = state.take_trace(&id);
            render_incomplete(&mut out, spans, &self.options);
        }

        state.enforce_bound(self.max_buffered);
        state.report_drops(&mut out, self.max_buffered);
        state.write(&out)
    }

    /// Draws every waiting trace as incomplete.
    fn flush_pending(&self) -> OTelSdkResult {
        let mut state = self.lock();
        let ids: Vec<TraceId> = state.pending.keys().copied().collect();
        let mut out = String::new();
        for id in ids {
            let spans = state.take_trace(&id);
            render_incomplete(&mut out, spans, &self.options);
        }
        state.report_drops(&mut out, self.max_buffered);
        state.write(&out)
    }
}

impl State {
    fn buffer(&mut self, span: ServiceSpan, now: Instant) {
        let trace_id = span.span.span_context.trace_id();
        self.pending
            .entry(trace_id)
            .or_insert_with(|| Pending {
                first_arrival: now,
                spans: Vec::new(),
            })
            .spans
            .push(span);
        self.buffered += 1;
    }

    /// Removes and returns the buffered spans below `root`.
    fn take_descendants(&mut self, root: &SpanData) -> Vec<ServiceSpan> {
        let trace_id = root.span_context.trace_id();
        let Some(pending) = self.pending.get_mut(&trace_id) else {
            return Vec::new();
        };
        let taken = take_subtree(&mut pending.spans, root.span_context.span_id());
        if pending.spans.is_empty() {
            self.pending.remove(&trace_id);
        }
        self.buffered -= taken.len();
        taken
    }

    /// Removes and returns every buffered span of trace `id`.
    fn take_trace(&mut self, id: &TraceId) -> Vec<ServiceSpan> {
        let spans = self.pending.remove(id).map(|p| p.spans).unwrap_or_default();
        self.buffered -= spans.len();
        spans
    }

    /// Drops the oldest waiting traces until at most `max` spans wait.
    fn enforce_bound(&mut self, max: usize) {
        while self.buffered > max {
            let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_arrival)
                .map(|(id, _)| *id)
            else {
                return;
            };
            let dropped = self.take_trace(&oldest).len();
            self.dropped += dropped as u64;
        }
    }

    /// Appends a line about spans dropped since the last report.
    fn report_drops(&mut self, out: &mut String, max: usize) {
        if self.dropped > self.reported {
            let _ = writeln!(
                out,
                "console exporter: dropped {} span(s) waiting for their root ({} in total; buffer holds {max})",
                self.dropped - self.reported,
                self.dropped,
            );
            self.reported = self.dropped;
        }
    }

    fn write(&mut self, out: &str) -> OTelSdkResult {
        if out.is_empty() {
            return Ok(());
        }
        self.writer
            .write_all(out.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|err| OTelSdkError::InternalFailure(format!("console exporter: {err}")))
    }
}

/// Draws spans whose root never arrived: each span whose parent is missing
/// heads its own incomplete tree.
fn render_incomplete(out: &mut String, mut spans: Vec<ServiceSpan>, opts: &TreeOptions<'_>) {
    spans.sort_by_key(|s| s.span.start_time);
    while !spans.is_empty() {
        let ids: HashSet<SpanId> = spans
            .iter()
            .map(|s| s.span.span_context.span_id())
            .collect();
        // Falling back to the first span breaks parent cycles in odd data.
        let head = spans
            .iter()
            .position(|s| !ids.contains(&s.span.parent_span_id))
            .unwrap_or(0);
        let head = spans.swap_remove(head);
        let descendants = take_subtree(&mut spans, head.span.span_context.span_id());
        tree::render(out, &head, &descendants, true, opts);
        spans.sort_by_key(|s| s.span.start_time);
    }
}

/// Draws `spans` as the trees [`ConsoleSpanExporter`] draws, without what
/// changes from one run to the next (trace ids, services, bars, durations)
/// and without color: a text to compare in tests.
///
/// Each line is the span's kind and name, indented by depth, its status and
/// the attributes named in `attributes` (in that order), then every
/// `baggage.*` attribute. Traces come in the order their first span started;
/// within one, children are ordered by start time. A span whose parent is
/// not among `spans` heads a tree marked incomplete, unless that parent is
/// remote (another process's).
///
/// ```
/// use baton_exporters::plain_trees;
///
/// assert_eq!(plain_trees(&[], &["http.route"]), "");
/// ```
#[must_use]
pub fn plain_trees(spans: &[SpanData], attributes: &[&str]) -> String {
    let opts = TreeOptions {
        bar_width: 0,
        max_lines: usize::MAX,
        style: Style { color: false },
        keys: attributes,
        timings: false,
    };
    let mut traces: Vec<(TraceId, Vec<ServiceSpan>)> = Vec::new();
    let mut sorted: Vec<&SpanData> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start_time);
    for span in sorted {
        let id = span.span_context.trace_id();
        let span = ServiceSpan {
            service: Arc::from(""),
            span: span.clone(),
        };
        match traces.iter_mut().find(|(trace, _)| *trace == id) {
            Some((_, members)) => members.push(span),
            None => traces.push((id, vec![span])),
        }
    }
    let mut out = String::new();
    for (_, mut members) in traces {
        while let Some(at) = members.iter().position(|s| is_local_root(&s.span)) {
            let root = members.remove(at);
            let descendants = take_subtree(&mut members, root.span.span_context.span_id());
            tree::render(&mut out, &root, &descendants, false, &opts);
        }
        render_incomplete(&mut out, members, &opts);
    }
    out
}

/// A span whose parent is not in this process: no parent, or a remote one.
fn is_local_root(span: &SpanData) -> bool {
    span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote
}

/// Removes from `spans` and returns the descendants of span `root`.
fn take_subtree(spans: &mut Vec<ServiceSpan>, root: SpanId) -> Vec<ServiceSpan> {
    let mut children: HashMap<SpanId, Vec<SpanId>> = HashMap::new();
    for ServiceSpan { span, .. } in spans.iter() {
        children
            .entry(span.parent_span_id)
            .or_default()
            .push(span.span_context.span_id());
    }
    let mut members = HashSet::new();
    let mut frontier = vec![root];
    while let Some(id) = frontier.pop() {
        for child in children.get(&id).into_iter().flatten() {
            // The set check also stops parent cycles in odd data.
            if *child != root && members.insert(*child) {
                frontier.push(*child);
            }
        }
    }
    let (taken, kept) = std::mem::take(spans)
        .into_iter()
        .partition(|s| members.contains(&s.span.span_context.span_id()));
    *spans = kept;
    taken
}

impl Drop for ConsoleSpanExporter {
    fn drop(&mut self) {
        // Dropped without a shutdown: the others must not wait for this one
        // (and, as when unshared, what waits is not drawn).
        self.close();
    }
}

impl Default for ConsoleSpanExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleSpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSpanExporter")
            .field("service", &self.service)
            .field("options", &self.options)
            .field("max_buffered", &self.max_buffered)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl SpanExporter for ConsoleSpanExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Rendering is synchronous and cheap, so the future is ready at once.
        std::future::ready(self.export_batch(batch))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // While another exporter is open it may still bring the roots.
        if self.close() {
            self.flush_pending()
        } else {
            Ok(())
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush_pending()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = service_name(resource).into();
    }
}
