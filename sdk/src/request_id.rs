//! The request id: taken from `x-request-id` when it is safe to reuse,
//! generated otherwise, carried in the context, echoed in the response and
//! sent on by the HTTP and gRPC clients, so one id follows a request across
//! hops.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use http::HeaderValue;

use crate::context::with_current;
use crate::trace::Incoming;

/// The header that carries a request id.
pub const HEADER: &str = "x-request-id";
/// [`HEADER`] prebuilt: a lookup by `&str` parses the name every time.
#[cfg(feature = "_middleware")]
pub(crate) static HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);

/// A request id. Cheap to clone.
///
/// Kept as the header value it travels as: an incoming id is reused without
/// a copy, and echoing or sending it on costs a reference count. It is its
/// own context entry rather than a [`Local`](crate::Local), whose shared
/// entry would be copied on every request just to add it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Longest incoming id reused; a longer one is replaced, not echoed.
    pub const MAX_LEN: usize = 128;

    /// `value` as a request id, if it is safe to log and echo: 1 to
    /// [`MAX_LEN`](Self::MAX_LEN) characters of `A-Z a-z 0-9 - _ . : /`.
    /// Anything else came from outside and is not worth the risk.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        safe(value.as_bytes())
            .then(|| HeaderValue::from_str(value).ok().map(RequestId))
            .flatten()
    }

    /// A fresh random id: 32 lowercase hex digits.
    #[must_use]
    pub fn generate() -> Self {
        // By hand rather than `format!`: one of these per request, and the
        // formatting machinery cost 5x the rest of it.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0; 32];
        let bits = (u128::from(next_random()) << 64) | u128::from(next_random());
        for (i, digit) in text.iter_mut().enumerate() {
            *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
        }
        // Shared from the start: a copied slice would allocate again when
        // first cloned (to echo it). Hex digits are a valid header value; the
        // fallback is never taken.
        let shared = bytes::Bytes::from_owner(text);
        RequestId(HeaderValue::from_maybe_shared(shared).unwrap_or(HeaderValue::from_static("0")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only safe ASCII gets in: the fallback is never taken.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    #[cfg_attr(not(feature = "_middleware"), allow(dead_code))]
    pub(crate) fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// The current context's request id.
    #[must_use]
    pub fn current() -> Option<Self> {
        with_current(|cx| Self::of(cx).cloned())
    }

    /// `cx`'s request id: one set on purpose, else the server layer's.
    pub(crate) fn of(cx: &opentelemetry::Context) -> Option<&Self> {
        cx.get::<RequestId>()
            .or_else(|| cx.get::<Incoming>().map(|incoming| &incoming.request_id))
    }

    /// `cx` with this request id.
    #[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
    pub fn set_in(self, cx: &opentelemetry::Context) -> opentelemetry::Context {
        cx.with_value(self)
    }

    /// The request id of an incoming request: its `x-request-id` when
    /// [`parse`](Self::parse) accepts it, a [generated](Self::generate) one
    /// otherwise.
    #[cfg(any(feature = "http-server", feature = "tonic"))]
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Self {
        headers
            .get(&HEADER_NAME)
            .filter(|value| safe(value.as_bytes()))
            .map(|value| RequestId(value.clone()))
            .unwrap_or_else(RequestId::generate)
    }

    /// Writes `cx`'s request id into an outgoing request's `headers`, unless
    /// they already carry one (set by the caller on purpose).
    #[cfg(any(feature = "_http-client", feature = "tonic"))]
    pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
        let Some(id) = Self::of(cx) else {
            return;
        };
        if headers.contains_key(&HEADER_NAME) {
            return;
        }
        let mut value = id.header_value();
        baton_propagators::never_index(&mut value);
        headers.insert(HEADER_NAME.clone(), value);
    }
}

/// Whether `id` is a request id worth reusing: see [`RequestId::parse`].
fn safe(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= RequestId::MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b))
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
