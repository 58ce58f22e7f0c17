//! The two line formats, written by hand into a reused buffer: one event is
//! one line, whatever its fields contain.

use std::fmt::{self, Write as _};

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use tracing::Event;
use tracing::field::{Field, Visit};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

use crate::request_id::RequestId;

/// How [`CorrelationLayer`](super::CorrelationLayer) writes each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// One JSON object per line:
    ///
    /// ```text
    /// {"timestamp":"2025-05-01T12:00:00.000000Z","level":"INFO","target":"shop::cart",
    ///  "message":"added","fields":{"sku":"a-1","qty":2},"trace_id":"4bf9…","span_id":"00f0…",
    ///  "request_id":"7c1e…","baggage":{"tenant":"acme"}}
    /// ```
    ///
    /// `fields`, the ids and `baggage` are left out when empty or absent.
    /// Event fields are nested under `fields` so that none can shadow the
    /// correlation keys.
    #[default]
    Json,
    /// One human-readable line:
    ///
    /// ```text
    /// 2025-05-01T12:00:00.000000Z  INFO shop::cart: added sku="a-1" qty=2 trace_id=4bf9… span_id=00f0… request_id=7c1e… baggage.tenant="acme"
    /// ```
    ///
    /// Control characters (newlines included) are escaped everywhere, so a
    /// value cannot forge a line.
    Human,
}

/// Writes `event` as one line, ending in `\n`, to `out`: `cx` gives the
/// trace and span ids, the request id and the values of `baggage_keys`.
pub(crate) fn write_line(
    format: Format,
    out: &mut String,
    event: &Event<'_>,
    cx: &Context,
    baggage_keys: &[Box<str>],
) {
    // Events bridged from the `log` crate carry their real target and
    // location in `log.*` fields; report those as the `log` caller meant.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let mut fields = Fields {
        out,
        format,
        skip_log_fields: event.is_log(),
        message: true,
        written: 0,
    };

    // Writing to a `String` fails only if a value's own `Debug` or `Display`
    // does; its text is then cut short but the line stays well formed, which
    // is all the logging path can do about it.
    match format {
        Format::Json => {
            fields.out.push_str("{\"timestamp\":\"");
            let _ = SystemTime.format_time(&mut Writer::new(fields.out));
            fields.out.push_str("\",\"level\":\"");
            fields.out.push_str(meta.level().as_str());
            fields.out.push_str("\",\"target\":");
            quoted(fields.out, meta.target());
            fields.out.push_str(",\"message\":\"");
            event.record(&mut fields);
            fields.out.push('"');

            fields.message = false;
            let mark = fields.out.len();
            fields.out.push_str(",\"fields\":{");
            event.record(&mut fields);
            close_or_drop(fields.out, mark, fields.written);
        }
        Format::Human => {
            let _ = SystemTime.format_time(&mut Writer::new(fields.out));
            let _ = write!(fields.out, " {:>5} ", meta.level().as_str());
            let _ = Escape::new(fields.out, false).write_str(meta.target());
            fields.out.push(':');
            event.record(&mut fields);
            fields.message = false;
            event.record(&mut fields);
        }
    }
    write_correlation(format, fields.out, cx, baggage_keys);
    out.push_str(match format {
        Format::Json => "}\n",
        Format::Human => "\n",
    });
}

/// The ids and chosen baggage entries of `cx`, each left out when absent.
fn write_correlation(format: Format, out: &mut String, cx: &Context, baggage_keys: &[Box<str>]) {
    let span = cx.span();
    let span_cx = span.span_context();
    if span_cx.is_valid() {
        let _ = match format {
            Format::Json => write!(
                out,
                ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                span_cx.trace_id(),
                span_cx.span_id()
            ),
            Format::Human => write!(
                out,
                " trace_id={} span_id={}",
                span_cx.trace_id(),
                span_cx.span_id()
            ),
        };
    }
    // Validated on the way in (`RequestId::parse`): nothing to escape.
    if let Some(id) = RequestId::current() {
        out.push_str(match format {
            Format::Json => ",\"request_id\":\"",
            Format::Human => " request_id=",
        });
        out.push_str(id.as_str());
        if format == Format::Json {
            out.push('"');
        }
    }

    let baggage = cx.baggage();
    let mark = out.len();
    let mut written = 0;
    if format == Format::Json {
        out.push_str(",\"baggage\":{");
    }
    for key in baggage_keys {
        let Some(value) = baggage.get(key) else {
            continue;
        };
        // Baggage comes from other services' headers: escape key and value.
        match format {
            Format::Json => {
                if written > 0 {
                    out.push(',');
                }
                quoted(out, key);
                out.push(':');
            }
            Format::Human => {
                out.push_str(" baggage.");
                let _ = Escape::new(out, false).write_str(key);
                out.push('=');
            }
        }
        quoted(out, value.as_str());
        written += 1;
    }
    if format == Format::Json {
        close_or_drop(out, mark, written);
    }
}

/// Ends an object opened at `mark`, or removes it if nothing was written in it.
fn close_or_drop(out: &mut String, mark: usize, written: usize) {
    if written == 0 {
        out.truncate(mark);
    } else {
        out.push('}');
    }
}

/// `s` as a double-quoted, escaped string (valid in JSON and in human lines).
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    let _ = Escape::new(out, true).write_str(s);
    out.push('"');
}

/// Visits an event's fields, in one of two passes: the message alone, or
/// every other field.
struct Fields<'a> {
    out: &'a mut String,
    format: Format,
    /// The event came from `log` through `tracing-log`: its `log.*` fields are
    /// already in the normalized metadata.
    skip_log_fields: bool,
    /// This pass writes only the message.
    message: bool,
    /// How many fields other than the message have been written.
    written: usize,
}

impl Fields<'_> {
    /// Writes the separator and key for `field` and returns `true`, or
    /// returns `false` if this pass does not write `field`.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        let is_message = name == "message";
        if is_message != self.message || (self.skip_log_fields && name.starts_with("log.")) {
            return false;
        }
        if is_message {
            if self.format == Format::Human {
                self.out.push(' ');
            }
        } else {
            match self.format {
                Format::Json => {
                    if self.written > 0 {
                        self.out.push(',');
                    }
                    quoted(self.out, name);
                    self.out.push(':');
                }
                Format::Human => {
                    self.out.push(' ');
                    let _ = Escape::new(self.out, false).write_str(name);
                    self.out.push('=');
                }
            }
            self.written += 1;
        }
        true
    }

    /// A value written as its `Debug` text: a JSON string, or bare in a
    /// human line (as `tracing`'s own formatter does).
    fn text(&mut self, value: &dyn fmt::Debug) {
        // The message's JSON string is opened and closed by `write_line`.
        let json = self.format == Format::Json && !self.message;
        if json {
            self.out.push('"');
        }
        let _ = write!(
            Escape::new(self.out, self.format == Format::Json),
            "{value:?}"
        );
        if json {
            self.out.push('"');
        }
    }

    /// A number or boolean, the same in both formats.
    fn bare(&mut self, value: impl fmt::Display) {
        let _ = write!(self.out, "{value}");
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.text(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.key(field) {
            return;
        }
        if self.message {
            let _ = Escape::new(self.out, self.format == Format::Json).write_str(value);
        } else {
            quoted(self.out, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            self.bare(value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            self.bare(value);
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.key(field) {
            self.bare(value);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.key(field) {
            self.bare(value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.bare(value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.key(field) {
            return;
        }
        // JSON has no NaN or infinity: those become strings.
        if value.is_finite() || self.format == Format::Human {
            self.bare(value);
        } else {
            self.text(&value);
        }
    }
}

/// Writes text with control characters escaped (so it stays on one line)
/// and, when `quote`, `"` and `\` too (so it stays inside its quotes). The
/// escapes are JSON's, which also read well in human lines.
struct Escape<'a> {
    out: &'a mut String,
    quote: bool,
}

impl<'a> Escape<'a> {
    fn new(out: &'a mut String, quote: bool) -> Self {
        Escape { out, quote }
    }
}

impl fmt::Write for Escape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' if self.quote => "\\\"",
                '\\' if self.quote => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c.is_control() => "",
                _ => continue,
            };
            // `i` and `plain` are char boundaries of `s`.
            self.out.push_str(&s[plain..i]);
            if escape.is_empty() {
                // Every control character is below U+00A0: four hex digits.
                write!(self.out, "\\u{:04x}", u32::from(c))?;
            } else {
                self.out.push_str(escape);
            }
            plain = i + c.len_utf8();
        }
        self.out.push_str(&s[plain..]);
        Ok(())
    }
}
