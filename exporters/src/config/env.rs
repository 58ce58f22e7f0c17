//! Reading variables from an injectable source, with the specification's
//! rules for empty values, booleans and numbers, recording a warning for
//! every value that is not used as given.

use std::ffi::OsString;
use std::time::Duration;

use super::ConfigWarning;
use super::keyvalue;

/// Where values come from: `Ok(None)` for unset, `Err` for a value that is
/// set but not valid Unicode (only the process environment has those).
pub(crate) type Source<'a> = &'a dyn Fn(&str) -> Result<Option<String>, OsString>;

/// The largest number the specification requires SDKs to accept (2³¹ − 1);
/// larger values are treated as out of range rather than silently capped.
const MAX_NUMBER: u64 = 0x7fff_ffff;

/// A source plus the warnings found so far.
pub(crate) struct Env<'a> {
    source: Source<'a>,
    warnings: Vec<ConfigWarning>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(source: Source<'a>) -> Self {
        Self {
            source,
            warnings: Vec::new(),
        }
    }

    /// The trimmed value of `name`, or `None` when it is unset or blank
    /// (the specification treats empty as unset) or not valid Unicode.
    pub(crate) fn get(&mut self, name: &'static str) -> Option<String> {
        match (self.source)(name) {
            Ok(value) => value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            Err(raw) => {
                self.warn(name, &raw.to_string_lossy(), "not valid unicode; ignored");
                None
            }
        }
    }

    /// Records (and logs) a warning. Header lists are redacted here, so no
    /// caller can forget to.
    pub(crate) fn warn(&mut self, variable: &'static str, value: &str, reason: impl Into<String>) {
        let value = if variable.ends_with("_HEADERS") {
            keyvalue::redact(value)
        } else {
            value.to_owned()
        };
        let warning = ConfigWarning {
            variable,
            value,
            reason: reason.into(),
        };
        tracing::warn!("{warning}");
        self.warnings.push(warning);
    }

    /// The value of `name` converted by `parse`, or `None` (with a warning
    /// carrying `parse`'s reason) when it does not convert.
    pub(crate) fn parsed<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.get(name)?;
        match parse(&raw) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.warn(name, &raw, format!("{reason}; ignored"));
                None
            }
        }
    }

    /// A boolean: only `true` (any case) is true. Anything but `false` is
    /// still false, but warned about, as the specification asks.
    pub(crate) fn flag(&mut self, name: &'static str) -> bool {
        let Some(raw) = self.get(name) else {
            return false;
        };
        if raw.eq_ignore_ascii_case("true") {
            true
        } else {
            if !raw.eq_ignore_ascii_case("false") {
                self.warn(name, &raw, "not \"true\" or \"false\"; using false");
            }
            false
        }
    }

    /// A count (queue or batch size): a whole number from 1 to 2³¹ − 1.
    pub(crate) fn count(&mut self, name: &'static str) -> Option<usize> {
        self.parsed(name, |raw| {
            positive(raw).and_then(|n| usize::try_from(n).map_err(|_| "too large".to_owned()))
        })
    }

    /// A limit: a whole number from 0 to 2³¹ − 1 (0 is a valid limit).
    pub(crate) fn limit(&mut self, name: &'static str) -> Option<usize> {
        self.parsed(name, |raw| {
            if raw == "0" {
                return Ok(0);
            }
            positive(raw)
                .map_err(|_| "not a whole number".to_owned())
                .and_then(|n| usize::try_from(n).map_err(|_| "too large".to_owned()))
        })
    }

    /// A duration given as a whole number of milliseconds from 1 to 2³¹ − 1.
    pub(crate) fn millis(&mut self, name: &'static str) -> Option<Duration> {
        self.parsed(name, |raw| {
            positive(raw)
                .map(Duration::from_millis)
                .map_err(|reason| format!("{reason} (milliseconds)"))
        })
    }

    pub(crate) fn into_warnings(self) -> Vec<ConfigWarning> {
        self.warnings
    }
}

/// Strict: ASCII digits only (no sign, unit, fraction or exponent), and not
/// zero, because a zero size, interval or timeout would stall or spin the
/// processors that use it.
fn positive(raw: &str) -> Result<u64, String> {
    const NOT: &str = "not a positive whole number";
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NOT.to_owned());
    }
    match raw.parse::<u64>() {
        Ok(0) => Err(NOT.to_owned()),
        Ok(n) if n <= MAX_NUMBER => Ok(n),
        _ => Err(format!("larger than {MAX_NUMBER}")),
    }
}
