//! Drawing one trace as an indented tree with duration bars.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

use super::{Style, truncate};

/// The attributes [`ConsoleSpanExporter`](crate::ConsoleSpanExporter) shows,
/// in display order: those worth a glance in a terminal (the rest of a span's
/// attributes would drown the tree).
pub const KEY_ATTRIBUTES: &[&str] = &[
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "rpc.method",
    "rpc.response.status_code",
    "error.type",
    "url.full",
    "server.address",
    "messaging.destination.name",
    "db.system.name",
    "db.query.summary",
];

/// Attributes with this prefix carry baggage copied onto the span; all of them are shown.
const BAGGAGE_PREFIX: &str = "baggage.";

/// Width of the indented span-name column, in characters.
const NAME_COLUMN: usize = 44;

/// Indentation stops growing past this depth so deep traces stay readable.
const MAX_INDENT_DEPTH: usize = 16;

/// Longest attribute value or status message shown before it is cut.
const MAX_VALUE: usize = 64;

/// Left-aligned partial blocks, one to seven eighths of a cell wide.
const EIGHTHS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// How a tree is drawn.
#[derive(Clone, Copy, Debug)]
pub(super) struct TreeOptions<'a> {
    /// Width of the duration bar in cells.
    pub(super) bar_width: usize,
    /// Span lines drawn per trace before the rest are summarised in one line.
    pub(super) max_lines: usize,
    /// Terminal styling.
    pub(super) style: Style,
    /// Attributes shown, in this order, before any `baggage.*` ones.
    pub(super) keys: &'a [&'a str],
    /// Whether lines show what differs from run to run (trace id, service,
    /// bar, duration); without them a tree is a text to compare in tests.
    pub(super) timings: bool,
}

/// A span and the `service.name` of the provider that recorded it.
#[derive(Debug)]
pub(super) struct ServiceSpan {
    pub(super) service: Arc<str>,
    pub(super) span: SpanData,
}

/// Appends the tree of `root` and its `descendants` to `out`, each line
/// naming the service of its span.
///
/// `incomplete` marks a tree whose root has a local parent that never
/// arrived, so the reader knows the trace is partial.
pub(super) fn render(
    out: &mut String,
    root: &ServiceSpan,
    descendants: &[ServiceSpan],
    incomplete: bool,
    opts: &TreeOptions<'_>,
) {
    let mut children: HashMap<SpanId, Vec<&ServiceSpan>> = HashMap::new();
    for s in descendants {
        children.entry(s.span.parent_span_id).or_default().push(s);
    }
    for siblings in children.values_mut() {
        siblings.sort_by(|a, b| {
            (a.span.start_time, &a.span.name).cmp(&(b.span.start_time, &b.span.name))
        });
    }
    // The window starts at the root; it ends at the latest end so a child
    // outliving its parent still fits inside the bar.
    let window_start = root.span.start_time;
    let window_end = descendants
        .iter()
        .map(|s| s.span.end_time)
        .fold(root.span.end_time, SystemTime::max);
    let window = window_end.duration_since(window_start).unwrap_or_default();
    let total = descendants.len() + 1;
    // One width for the service column, so names line up across services.
    let service_width = std::iter::once(root)
        .chain(descendants)
        .map(|s| s.service.chars().count())
        .max()
        .unwrap_or(0);

    write_header(out, &root.service, &root.span, total, incomplete, opts);
    let mut shown = 0;
    let mut visited = HashSet::new();
    // Depth-first with an explicit stack: a deep trace must not overflow ours.
    let mut stack = vec![(root, 0usize)];
    while let Some((s, depth)) = stack.pop() {
        // Duplicate span ids in odd data would otherwise be drawn twice or loop.
        if !visited.insert(s.span.span_context.span_id()) {
            continue;
        }
        if shown == opts.max_lines {
            break;
        }
        if opts.timings {
            let service = format!("{:service_width$}", s.service);
            write_line(out, &service, &s.span, depth, window_start, window, opts);
        } else {
            write_plain_line(out, &s.span, depth, opts);
        }
        shown += 1;
        if let Some(kids) = children.get(&s.span.span_context.span_id()) {
            stack.extend(kids.iter().rev().map(|kid| (*kid, depth + 1)));
        }
    }
    if shown < total {
        let _ = writeln!(out, "  … {} more spans not shown", total - shown);
    }
}

/// The line naming the trace above its spans.
fn write_header(
    out: &mut String,
    service: &str,
    root: &SpanData,
    spans: usize,
    incomplete: bool,
    opts: &TreeOptions<'_>,
) {
    let plural = if spans == 1 { "" } else { "s" };
    if !opts.timings {
        let name = truncate(&root.name, NAME_COLUMN);
        let _ = write!(out, "trace · {name} · {spans} span{plural}");
        if incomplete {
            out.push_str(" · incomplete: parent not captured");
        }
        out.push('\n');
        return;
    }
    let mut header = format!(
        "trace {} · {service} · {} · {} · {spans} span{}",
        root.span_context.trace_id(),
        truncate(&root.name, NAME_COLUMN),
        format_ms(duration(root)),
        plural,
    );
    if incomplete {
        let _ = write!(
            header,
            " · incomplete: parent {} not exported",
            root.parent_span_id
        );
    }
    opts.style.paint(out, Style::BOLD, &header);
    out.push('\n');
}

/// One span: service, indented name, kind, bar, duration, status, attributes.
fn write_line(
    out: &mut String,
    service: &str,
    span: &SpanData,
    depth: usize,
    window_start: SystemTime,
    window: Duration,
    opts: &TreeOptions<'_>,
) {
    let style = opts.style;
    let indent = depth.min(MAX_INDENT_DEPTH) * 2;
    let name = truncate(&span.name, NAME_COLUMN.saturating_sub(indent).max(1));
    let pad = NAME_COLUMN.saturating_sub(indent + name.chars().count());
    let _ = write!(
        out,
        "{service}  {:indent$}{name}{:pad$} {} ",
        "",
        "",
        kind(&span.span_kind)
    );

    let offset = span
        .start_time
        .duration_since(window_start)
        .unwrap_or_default();
    let bar = bar(offset, duration(span), window, opts.bar_width);
    out.push('│');
    let bar_color = match span.status {
        Status::Error { .. } => Style::RED,
        _ => Style::CYAN,
    };
    style.paint(out, bar_color, &bar);
    let _ = write!(out, "│ {:>11}  ", format_ms(duration(span)));

    write_status_and_attributes(out, span, opts);
}

/// One span without timings: indented kind and name, status, attributes.
fn write_plain_line(out: &mut String, span: &SpanData, depth: usize, opts: &TreeOptions<'_>) {
    let indent = depth.min(MAX_INDENT_DEPTH) * 2;
    let _ = write!(
        out,
        "{:indent$}{} {}  ",
        "",
        kind(&span.span_kind),
        span.name
    );
    write_status_and_attributes(out, span, opts);
}

/// The end of a line: status (`OK`, `-`, `ERROR: message`) and attributes.
fn write_status_and_attributes(out: &mut String, span: &SpanData, opts: &TreeOptions<'_>) {
    let style = opts.style;
    match &span.status {
        Status::Ok => style.paint(out, Style::GREEN, "OK"),
        Status::Unset => out.push('-'),
        Status::Error { description } if description.is_empty() => {
            style.paint(out, Style::RED, "ERROR");
        }
        Status::Error { description } => {
            let text = format!("ERROR: {}", truncate(description, MAX_VALUE));
            style.paint(out, Style::RED, &text);
        }
    }

    let attributes = attributes(span, opts.keys);
    if !attributes.is_empty() {
        out.push_str("  ");
        style.paint(out, Style::DIM, &attributes);
    }
    out.push('\n');
}

/// `key=value` pairs of the `keys` attributes in that order, then baggage.
fn attributes(span: &SpanData, keys: &[&str]) -> String {
    let key_attributes = keys
        .iter()
        .filter_map(|key| span.attributes.iter().find(|kv| kv.key.as_str() == *key));
    let baggage = span
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str().starts_with(BAGGAGE_PREFIX));
    let mut text = String::new();
    for kv in key_attributes.chain(baggage) {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(
            text,
            "{}={}",
            kv.key,
            truncate(&kv.value.as_str(), MAX_VALUE)
        );
    }
    text
}

/// The span's duration; zero when the clock went backwards between start and end.
fn duration(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
}

/// Milliseconds with two decimals, the resolution that matters in a terminal.
fn format_ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// A three-letter marker for the span kind.
fn kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "SRV",
        SpanKind::Client => "CLI",
        SpanKind::Producer => "PRD",
        SpanKind::Consumer => "CON",
        SpanKind::Internal => "INT",
    }
}

/// A bar of exactly `width` cells for a span starting `offset` into a window of
/// `window`, lasting `length`.
///
/// The start snaps down to a whole cell and the end has eighth-of-a-cell
/// precision; every span gets at least an eighth so instant spans stay visible.
pub(super) fn bar(offset: Duration, length: Duration, window: Duration, width: usize) -> String {
    let eighths = width * 8;
    if width == 0 {
        return String::new();
    }
    let window = window.as_secs_f64();
    let (start, end) = if window > 0.0 {
        let start = offset.as_secs_f64() / window * eighths as f64;
        let end = (offset + length).as_secs_f64() / window * eighths as f64;
        // Float to usize casts saturate, so odd inputs only clamp.
        (start.floor() as usize, end.ceil() as usize)
    } else {
        (0, 0)
    };
    let start_cell = start.min(eighths - 1) / 8;
    let end = end.clamp(start_cell * 8 + 1, eighths);
    (0..width)
        .map(|cell| {
            let low = cell * 8;
            if cell < start_cell || low >= end {
                ' '
            } else if end >= low + 8 {
                '█'
            } else {
                // `end - low` is 1..=7 here: the cell is partly covered.
                EIGHTHS[end - low - 1]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::bar;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_span_as_long_as_the_window_fills_the_bar() {
        assert_eq!(bar(Duration::ZERO, 100 * MS, 100 * MS, 10), "██████████");
    }

    #[test]
    fn the_end_has_eighth_precision_and_the_start_snaps_to_a_cell() {
        // 25..60 of 100 over 10 cells: starts in cell 2, ends at 6 cells exactly.
        assert_eq!(bar(25 * MS, 35 * MS, 100 * MS, 10), "  ████    ");
        // 0..15 of 100: one full cell and four eighths.
        assert_eq!(bar(Duration::ZERO, 15 * MS, 100 * MS, 10), "█▌        ");
    }

    #[test]
    fn instant_and_out_of_window_spans_stay_visible_and_inside() {
        assert_eq!(bar(50 * MS, Duration::ZERO, 100 * MS, 4), "  ▏ ");
        assert_eq!(bar(500 * MS, 10 * MS, 100 * MS, 4), "   █");
        assert_eq!(
            bar(Duration::ZERO, Duration::ZERO, Duration::ZERO, 4),
            "▏   "
        );
        assert_eq!(bar(Duration::ZERO, MS, MS, 0), "");
    }
}
