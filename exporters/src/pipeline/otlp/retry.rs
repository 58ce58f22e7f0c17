//! When and how soon a failed OTLP/gRPC export is tried again, as the OTLP
//! exporter specification says: transient failures are retried with
//! exponential backoff and jitter, a server's `RetryInfo` delay is honoured,
//! and everything else is permanent.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

/// The wait before the first retry; it doubles with each retry after.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two attempts, unless the server asks for more.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What an export failure calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not retried: the same request would fail again (a malformed or
    /// refused request, missing authentication, an unimplemented service).
    Permanent,
    /// Retried, after the server's delay when it gave one.
    Retry(Option<Duration>),
}

/// How the OTLP specification classifies a gRPC status.
pub(crate) fn classify(status: &tonic::Status) -> Verdict {
    let hint = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Verdict::Retry(hint),
        // Throttling: retryable only when the server says when to come back.
        Code::ResourceExhausted => match hint {
            Some(delay) => Verdict::Retry(Some(delay)),
            None => Verdict::Permanent,
        },
        _ => Verdict::Permanent,
    }
}

/// The waits between attempts: exponential, each drawn between half and
/// all of the current step so that exporters failing together do not retry
/// in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            step: INITIAL_BACKOFF,
        }
    }

    /// The wait before the next attempt: the server's `hint` when given,
    /// else the jittered step, which then doubles up to [`MAX_BACKOFF`].
    pub(crate) fn next(&mut self, hint: Option<Duration>) -> Duration {
        if let Some(hint) = hint {
            return hint;
        }
        let step = self.step;
        self.step = (step * 2).min(MAX_BACKOFF);
        let half = step / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A number in [0, 1) from the standard library's per-process random hash
/// keys: enough to spread retries, with no extra dependency.
fn unit_random() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    // The top 53 bits fill an f64's mantissa exactly.
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn statuses_are_classified_as_the_otlp_specification_says() {
        let hint = Duration::from_secs(3);
        let with_hint = |code| {
            tonic::Status::with_error_details(
                code,
                "throttled",
                ErrorDetails::with_retry_info(Some(hint)),
            )
        };
        // (status, verdict)
        let rows = [
            (tonic::Status::cancelled("x"), Verdict::Retry(None)),
            (tonic::Status::deadline_exceeded("x"), Verdict::Retry(None)),
            (tonic::Status::aborted("x"), Verdict::Retry(None)),
            (tonic::Status::out_of_range("x"), Verdict::Retry(None)),
            (tonic::Status::unavailable("x"), Verdict::Retry(None)),
            (tonic::Status::data_loss("x"), Verdict::Retry(None)),
            (with_hint(Code::Unavailable), Verdict::Retry(Some(hint))),
            (tonic::Status::resource_exhausted("x"), Verdict::Permanent),
            (
                with_hint(Code::ResourceExhausted),
                Verdict::Retry(Some(hint)),
            ),
            (tonic::Status::invalid_argument("x"), Verdict::Permanent),
            (tonic::Status::unauthenticated("x"), Verdict::Permanent),
            (tonic::Status::permission_denied("x"), Verdict::Permanent),
            (tonic::Status::unimplemented("x"), Verdict::Permanent),
            (tonic::Status::internal("x"), Verdict::Permanent),
            (tonic::Status::unknown("x"), Verdict::Permanent),
            (with_hint(Code::InvalidArgument), Verdict::Permanent),
        ];
        for (status, verdict) in rows {
            assert_eq!(classify(&status), verdict, "{status:?}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_up_to_its_cap() {
        let mut backoff = Backoff::new();
        let mut step = INITIAL_BACKOFF;
        for _ in 0..10 {
            let wait = backoff.next(None);
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} for step {step:?}"
            );
            step = (step * 2).min(MAX_BACKOFF);
        }
        assert_eq!(
            backoff.next(Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        let waits: Vec<Duration> = (0..20).map(|_| Backoff::new().next(None)).collect();
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "jittered, not all equal: {waits:?}"
        );
    }
}
