//! The console exporters: the embedded default when no collector endpoint is
//! configured.
//!
//! [`ConsoleSpanExporter`] draws every finished trace as a tree with duration
//! bars; [`ConsoleMetricExporter`] prints a RED (rate, errors, duration) table
//! per service and route at each collection of a `PeriodicReader`.

mod red;
mod spans;
mod tree;

use std::io::{IsTerminal, Write};

use opentelemetry::Key;
use opentelemetry_sdk::Resource;

pub use red::ConsoleMetricExporter;
pub use spans::{ConsoleSpanExporter, plain_trees};
pub use tree::KEY_ATTRIBUTES;

/// The destination of console output: stdout by default, any writer in tests.
type Writer = Box<dyn Write + Send>;

/// The service label used when the resource has no `service.name`.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// The default writer and whether it should be colored: stdout, colored only
/// when it is a terminal and `NO_COLOR` is unset or empty.
fn stdout_writer() -> (Writer, bool) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = !no_color && std::io::stdout().is_terminal();
    (Box::new(std::io::stdout()), color)
}

/// `service.name` of `resource`, or [`UNKNOWN_SERVICE`].
fn service_name(resource: &Resource) -> String {
    resource
        .get(&Key::from_static_str("service.name"))
        .map_or_else(|| UNKNOWN_SERVICE.to_owned(), |v| v.as_str().into_owned())
}

/// ANSI styling that collapses to nothing when color is off, so rendering code
/// has one path for both.
#[derive(Clone, Copy, Debug)]
struct Style {
    color: bool,
}

impl Style {
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    const CYAN: &str = "\x1b[36m";
    const DIM: &str = "\x1b[2m";
    const BOLD: &str = "\x1b[1m";

    /// Appends `text` to `out`, wrapped in `code` when color is on.
    fn paint(self, out: &mut String, code: &str, text: &str) {
        if self.color {
            out.push_str(code);
            out.push_str(text);
            out.push_str("\x1b[0m");
        } else {
            out.push_str(text);
        }
    }
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= max {
        return text.into();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…").into()
}
