//! [`CorrelatedFormat`]: `tracing_subscriber::fmt`'s own lines, with the ids
//! of the current Baton context added.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Compact, Format, Full, Json, Pretty, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps one of `tracing_subscriber::fmt`'s event formats (full, compact,
/// pretty or JSON, configured as you like) and adds, from the current
/// context (the one [`baton::with_current`](crate::with_current) sees): the
/// `trace_id` and `span_id` of the current OpenTelemetry span, the
/// [`request_id`](crate::request_id::RequestId), and the chosen baggage
/// entries. Each is left out when absent.
///
/// Text formats get ` trace_id=… span_id=… request_id=… baggage.tenant="acme"`
/// at the end of the line (values escaped as `Debug` escapes them, so a
/// newline cannot forge a line); the JSON format gets `"trace_id"`,
/// `"span_id"`, `"request_id"` and a `"baggage"` object as top-level keys.
///
/// Because the ids come from the current context rather than from `tracing`
/// spans, every event inside [`run`](crate::run), a [`spawn`](crate::spawn)ed
/// task or a `log` call bridged through [`LogTracer`](super::LogTracer)
/// carries them; inside a `tracing` span bridged by
/// [`otel_layer`](super::otel_layer), they are that span's.
///
/// ```
/// use baton::logs::CorrelatedFormat;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// // Your fmt layer, configured as usual; Baton only wraps its format.
/// let layer = tracing_subscriber::fmt::layer()
///     .json()
///     .with_writer(std::io::stderr)
///     .map_event_format(|format| CorrelatedFormat::new(format).baggage_keys(["tenant"]));
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!(answer = 42, "ready"));
/// ```
///
/// Colours follow the writer, as the fmt layer's `with_ansi` sets it.
#[derive(Clone, Debug)]
pub struct CorrelatedFormat<F> {
    plain: F,
    /// The same format with colours on, for a writer that takes them: a
    /// format writes colours only through the `Writer` it is given, and
    /// only the subscriber can make one that has them.
    colored: F,
    baggage_keys: Box<[Box<str>]>,
}

impl<F: Style> CorrelatedFormat<F> {
    /// `format`'s lines with the current context's ids; no baggage entries.
    pub fn new(format: F) -> Self {
        CorrelatedFormat {
            colored: format.clone().with_colors(true),
            plain: format.with_colors(false),
            baggage_keys: Box::default(),
        }
    }

    /// Adds the current context's baggage entries named `keys`, in this
    /// order, to every line that has them. Only chosen keys are written:
    /// baggage comes from callers and may hold anything.
    #[must_use]
    pub fn baggage_keys<I>(self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Box<str>>,
    {
        CorrelatedFormat {
            baggage_keys: keys.into_iter().map(Into::into).collect(),
            ..self
        }
    }
}

/// The event formats [`CorrelatedFormat`] knows where to add to: the four of
/// `tracing_subscriber::fmt::format`.
pub trait Style: Clone + sealed::Sealed {
    /// Whether lines are JSON objects.
    #[doc(hidden)]
    const JSON: bool;
    /// The format with colours on or off.
    #[doc(hidden)]
    fn with_colors(self, ansi: bool) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! style {
    ($($kind:ty => $json:expr),*) => {$(
        impl<T: Clone> sealed::Sealed for Format<$kind, T> {}
        impl<T: Clone> Style for Format<$kind, T> {
            const JSON: bool = $json;
            fn with_colors(self, ansi: bool) -> Self {
                self.with_ansi(ansi)
            }
        }
    )*};
}
style!(Full => false, Compact => false, Pretty => false, Json => true);

impl<S, N, F> FormatEvent<S, N> for CorrelatedFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N> + Style,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let format = if writer.has_ansi_escapes() {
            &self.colored
        } else {
            &self.plain
        };
        with_buffer(|line| {
            format.format_event(ctx, Writer::new(line), event)?;
            // Every format ends its line with a newline (a JSON line with
            // its closing brace before it): what is added goes before them.
            let newline = line.ends_with('\n');
            if newline {
                line.pop();
            }
            if F::JSON && line.ends_with('}') {
                line.pop();
                let empty = line.ends_with('{');
                let mark = line.len();
                crate::with_current(|cx| write_json(line, cx, &self.baggage_keys));
                if empty && line.len() > mark {
                    // No comma before the first key of an empty object.
                    line.remove(mark);
                }
                line.push('}');
            } else {
                crate::with_current(|cx| write_text(line, cx, &self.baggage_keys));
            }
            if newline {
                line.push('\n');
            }
            writer.write_str(line)
        })
    }
}

/// `,"trace_id":…` for each id of `cx` and a `"baggage"` object of the
/// chosen entries.
fn write_json(out: &mut String, cx: &Context, baggage_keys: &[Box<str>]) {
    let span = cx.span();
    let span_cx = span.span_context();
    if span_cx.is_valid() {
        let _ = write!(
            out,
            ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            span_cx.trace_id(),
            span_cx.span_id()
        );
    }
    // Validated on the way in (`RequestId::parse`): nothing to escape.
    if let Some(id) = crate::request_id::RequestId::of(cx) {
        let _ = write!(out, ",\"request_id\":\"{}\"", id.as_str());
    }
    let baggage = cx.baggage();
    let mut entries = baggage_keys
        .iter()
        .filter_map(|key| Some((key, baggage.get(&**key)?.as_str())))
        .peekable();
    if entries.peek().is_none() {
        return;
    }
    out.push_str(",\"baggage\":{");
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Baggage comes from other services' headers: escaped as JSON.
        let _ = write!(
            out,
            "{}:{}",
            serde_json::Value::from(&**key),
            serde_json::Value::from(value)
        );
    }
    out.push('}');
}

/// ` trace_id=…` for each id of `cx` and ` baggage.key="value"` for each
/// chosen entry.
fn write_text(out: &mut String, cx: &Context, baggage_keys: &[Box<str>]) {
    let span = cx.span();
    let span_cx = span.span_context();
    if span_cx.is_valid() {
        let _ = write!(
            out,
            " trace_id={} span_id={}",
            span_cx.trace_id(),
            span_cx.span_id()
        );
    }
    if let Some(id) = crate::request_id::RequestId::of(cx) {
        let _ = write!(out, " request_id={}", id.as_str());
    }
    let baggage = cx.baggage();
    for key in baggage_keys {
        if let Some(value) = baggage.get(&**key) {
            // `Debug` escapes quotes and control characters: no forged lines.
            let _ = write!(out, " baggage.{}={:?}", key.escape_debug(), value.as_str());
        }
    }
}

/// Calls `f` with an empty buffer: the thread's reused one, or a fresh one
/// when that is in use (an event formatted while formatting one) or gone
/// (an event from a thread-local destructor).
fn with_buffer(f: impl FnOnce(&mut String) -> fmt::Result) -> fmt::Result {
    /// A buffer that grew past this for one huge line is not kept.
    const KEEP: usize = 64 * 1024;
    thread_local! {
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }

    let mut f = Some(f);
    let reused = BUFFER.try_with(|cell| {
        let mut buffer = cell.try_borrow_mut().ok()?;
        let f = f.take()?;
        buffer.clear();
        let result = f(&mut buffer);
        if buffer.capacity() > KEEP {
            *buffer = String::new();
        }
        Some(result)
    });
    match reused {
        Ok(Some(result)) => result,
        // `f` is still here: the buffer was not lent.
        _ => f.map_or(Ok(()), |f| f(&mut String::new())),
    }
}
