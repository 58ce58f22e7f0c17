//! The warning recorded for a variable whose value was not used as given.

use std::fmt;

/// A variable whose value was malformed or unsupported, and what was done
/// instead (usually: the value was ignored and the default applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable's name, e.g. `OTEL_BSP_MAX_QUEUE_SIZE`.
    pub variable: &'static str,
    /// The value as found; for `*_HEADERS` variables every header value is
    /// replaced by `***`, since they usually carry credentials.
    pub value: String,
    /// What was wrong and what was done about it.
    pub reason: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

impl std::error::Error for ConfigWarning {}
