//! [`CorrelationLayer`]: one log line per `tracing` event, with the ids of
//! the current Baton context.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write as _};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, Layer};

use super::format::{Format, write_line};

/// A `tracing_subscriber` layer that writes every event as one line (JSON
/// or human-readable, see [`Format`]) with its timestamp, level, target,
/// message and fields, and, from the current context (the one
/// [`baton::with_current`](crate::with_current) sees): the `trace_id` and
/// `span_id` of the current OpenTelemetry span, the
/// [`request_id`](crate::request_id::RequestId), and the chosen baggage
/// entries.
///
/// Because the ids come from the current context rather than from `tracing`
/// spans, every event inside [`run`](crate::run), a [`spawn`](crate::spawn)ed
/// task or a `log` call bridged through [`LogTracer`](super::LogTracer)
/// carries them; inside a `tracing` span bridged by
/// [`otel_layer`](super::otel_layer), they are that span's.
///
/// ```
/// use baton::logs::{CorrelationLayer, Format};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let layer = CorrelationLayer::new()
///     .format(Format::Human)
///     .baggage_keys(["tenant", "user"])
///     .writer(std::io::stderr);
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!(answer = 42, "ready"));
/// ```
///
/// Each line is formatted into a buffer reused by the thread, then written
/// with one `write_all`, so lines from different threads do not interleave
/// on writers that serialise writes (stdout, stderr, a file). A failed
/// write loses that line and nothing else: the logging path never fails or
/// panics its caller.
pub struct CorrelationLayer<W = fn() -> io::Stdout> {
    format: Format,
    baggage_keys: Box<[Box<str>]>,
    writer: W,
}

impl CorrelationLayer {
    /// JSON lines to stdout, no baggage entries.
    pub fn new() -> Self {
        CorrelationLayer {
            format: Format::default(),
            baggage_keys: Box::default(),
            writer: io::stdout,
        }
    }
}

impl Default for CorrelationLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<W> CorrelationLayer<W> {
    /// Writes lines in `format`.
    #[must_use]
    pub fn format(self, format: Format) -> Self {
        CorrelationLayer { format, ..self }
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
        CorrelationLayer {
            baggage_keys: keys.into_iter().map(Into::into).collect(),
            ..self
        }
    }

    /// Writes lines to `writer` instead of stdout.
    ///
    /// The event's thread waits while its line is written; to keep slow
    /// output (a pipe, a file on a busy disk) off request paths, pass a
    /// non-blocking writer such as `tracing_appender::non_blocking`'s.
    pub fn writer<W2>(self, writer: W2) -> CorrelationLayer<W2>
    where
        W2: for<'w> MakeWriter<'w> + 'static,
    {
        CorrelationLayer {
            format: self.format,
            baggage_keys: self.baggage_keys,
            writer,
        }
    }
}

impl<W> fmt::Debug for CorrelationLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelationLayer")
            .field("format", &self.format)
            .field("baggage_keys", &self.baggage_keys)
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for CorrelationLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        with_buffer(|line| {
            crate::with_current(|cx| write_line(self.format, line, event, cx, &self.baggage_keys));
            // Nowhere to report a failed write from the logging path; the
            // next line tries again.
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
        });
    }
}

/// Calls `f` with an empty buffer: the thread's reused one, or a fresh one
/// when that is in use (the layer reentered on this thread, which `tracing`
/// mostly prevents) or gone (an event from a thread-local destructor).
fn with_buffer(f: impl FnOnce(&mut String)) {
    /// A buffer that grew past this for one huge line is not kept.
    const KEEP: usize = 64 * 1024;
    thread_local! {
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }

    let mut f = Some(f);
    let _ = BUFFER.try_with(|cell| {
        let Ok(mut buffer) = cell.try_borrow_mut() else {
            return;
        };
        buffer.clear();
        if let Some(f) = f.take() {
            f(&mut buffer);
        }
        if buffer.capacity() > KEEP {
            *buffer = String::new();
        }
    });
    if let Some(f) = f {
        f(&mut String::new());
    }
}
