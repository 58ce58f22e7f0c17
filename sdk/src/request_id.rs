//! The request id: taken from `x-request-id` when it is safe to reuse,
//! generated otherwise, carried in the context, echoed in the response and
//! sent on by the HTTP and gRPC clients, so one id follows a request across
//! hops.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use crate::Local;

/// The header that carries a request id.
pub const HEADER: &str = "x-request-id";

/// A request id. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

static REQUEST_ID: Local<RequestId> = Local::new();

impl RequestId {
    /// Longest incoming id reused; a longer one is replaced, not echoed.
    pub const MAX_LEN: usize = 128;

    /// `value` as a request id, if it is safe to log and echo: 1 to
    /// [`MAX_LEN`](Self::MAX_LEN) characters of `A-Z a-z 0-9 - _ . : /`.
    /// Anything else came from outside and is not worth the risk.
    pub fn parse(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
        ok.then(|| RequestId(value.into()))
    }

    /// A fresh random id: 32 lowercase hex digits.
    pub fn generate() -> Self {
        // By hand rather than `format!`: one of these per request, and the
        // formatting machinery cost 5x the rest of it.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0; 32];
        let bits = (u128::from(next_random()) << 64) | u128::from(next_random());
        for (i, digit) in text.iter_mut().enumerate() {
            *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
        }
        // Hex digits are ASCII; the fallback is never taken.
        RequestId(std::str::from_utf8(&text).unwrap_or_default().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The current context's request id.
    pub fn current() -> Option<Self> {
        REQUEST_ID.get()
    }

    /// `cx` with this request id.
    pub fn set_in(self, cx: &opentelemetry::Context) -> opentelemetry::Context {
        REQUEST_ID.set_in(cx, self)
    }

    /// The request id of an incoming request: its `x-request-id` when
    /// [`parse`](Self::parse) accepts it, a [generated](Self::generate) one
    /// otherwise.
    #[cfg_attr(not(any(feature = "http", feature = "grpc")), allow(dead_code))]
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Self {
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generate)
    }

    /// Writes `cx`'s request id into an outgoing request's `headers`, unless
    /// they already carry one (set by the caller on purpose).
    #[cfg_attr(not(any(feature = "http", feature = "grpc")), allow(dead_code))]
    pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
        let Some(id) = REQUEST_ID.get_in(cx) else {
            return;
        };
        if headers.contains_key(HEADER) {
            return;
        }
        // Parsed or generated ids are valid header values; `ok()` only
        // avoids a panic path.
        if let Ok(mut value) = http::HeaderValue::from_str(id.as_str()) {
            baton_propagators::never_index(&mut value);
            headers.insert(HEADER, value);
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-thread xorshift seeded from the OS-randomised `RandomState`: ids need
/// to be unique, not secret, and this costs a few nanoseconds.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_safe_ids() {
        // (input, accepted, why)
        let rows = [
            ("abc-123_x.y:z/1", true, "the allowed alphabet"),
            ("", false, "empty"),
            ("a b", false, "space"),
            ("a\r\nx-evil: 1", false, "header injection"),
            ("<script>", false, "markup"),
        ];
        for (input, accepted, why) in rows {
            assert_eq!(RequestId::parse(input).is_some(), accepted, "{why}");
        }
        assert!(RequestId::parse(&"a".repeat(129)).is_none(), "too long");
    }

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{a}"
        );
        // Every position varies, so no digit is stuck (a shift gone wrong).
        let ids: Vec<RequestId> = (0..64).map(|_| RequestId::generate()).collect();
        for position in 0..32 {
            let first = ids[0].as_str().as_bytes()[position];
            assert!(
                ids.iter()
                    .any(|id| id.as_str().as_bytes()[position] != first),
                "position {position} never changes"
            );
        }
    }
}
