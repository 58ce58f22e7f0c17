//! `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` and
//! `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`: how long a span's attribute values
//! may be.

use std::fmt;

use super::env::Env;

const SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT";
const ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT";

/// Limits on what one span may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanLimits {
    /// `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`: the most characters a string
    /// attribute value (or each string of an array value) keeps, on the span
    /// and on its events and links; longer ones are cut at that many
    /// characters before the span is queued for export. Other values are
    /// never cut.
    ///
    /// The specification's default is no limit; Baton's is
    /// [`DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT`](Self::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT)
    /// (4096), because instrumentation copies request data (headers, URLs,
    /// user agents) into attributes: uncapped, one client sending a 300 KB
    /// header makes every span of its requests 300 KB, which multiplies the
    /// export queue's memory and pushes export requests past what collectors
    /// accept. 4096 characters keep any realistic URL, query or user agent
    /// whole. Set a larger value to keep longer ones.
    pub attribute_value_length: usize,
}

impl SpanLimits {
    /// Baton's default attribute value length limit, in characters.
    pub const DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT: usize = 4096;

    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let generic = env.limit(ATTRIBUTE_VALUE_LENGTH_LIMIT);
        let span = env.limit(SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT);
        Self {
            attribute_value_length: span
                .or(generic)
                .unwrap_or(Self::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT),
        }
    }
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            attribute_value_length: Self::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT,
        }
    }
}

impl fmt::Display for SpanLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attribute_value_length={}", self.attribute_value_length)
    }
}
