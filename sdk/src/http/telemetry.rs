//! What server and client share for recording: the tracer, the RED
//! instruments, and the bookkeeping of one request in flight.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::metrics::Meter;
use opentelemetry::{Context, KeyValue};
use smallvec::SmallVec;

use crate::metrics::{self, Active, Duration, SetKey};

/// Names and descriptions of one side's two instruments.
pub(crate) struct Names {
    pub(crate) duration: &'static str,
    pub(crate) duration_description: &'static str,
    pub(crate) active: &'static str,
    pub(crate) active_description: &'static str,
}

/// A request-duration histogram and an active-requests counter. Shared:
/// each request in flight holds them (one reference count, not four).
#[derive(Clone, Debug)]
pub(crate) struct Instruments(Arc<Pair>);

#[derive(Debug)]
struct Pair {
    duration: Duration,
    active: Active,
}

impl Instruments {
    /// The instruments from `meter`.
    pub(crate) fn from_meter(meter: &Meter, names: &Names) -> Self {
        Instruments(Arc::new(Pair {
            duration: metrics::duration(meter, names.duration, names.duration_description),
            active: metrics::active(meter, names.active, names.active_description),
        }))
    }
}

/// Up to `N` metric attributes on the stack: recording a request must not
/// allocate just to pass a variable number of attributes. Callers size `N`
/// for every attribute they push.
pub(crate) type Attributes<const N: usize> = SmallVec<[KeyValue; N]>;

/// One request counted in the active-requests counter from [`start`](Self::start)
/// until dropped; [`finish`](Self::finish) also records its duration. A request
/// dropped unfinished (cancelled) leaves the counter but records no duration.
pub(crate) struct InFlight<const N: usize> {
    instruments: Instruments,
    active: Attributes<N>,
    /// The key of `active`, when the layer can name it.
    key: Option<SetKey>,
    start: Instant,
    /// The request's context, kept only when measurements are recorded in
    /// their context (see [`metrics::in_context`]): the count goes down when
    /// the request is dropped, where no context of it is current.
    cx: Option<Context>,
}

impl<const N: usize> InFlight<N> {
    /// Counts the request of context `cx` in.
    pub(crate) fn start(
        instruments: &Instruments,
        active: Attributes<N>,
        key: Option<SetKey>,
        cx: &Context,
    ) -> Self {
        let in_flight = InFlight {
            instruments: instruments.clone(),
            active,
            key,
            start: Instant::now(),
            cx: metrics::records_in_context().then(|| cx.clone()),
        };
        in_flight.count(1);
        in_flight
    }

    /// Records the duration with the set `key` names, or `attributes()`.
    pub(crate) fn finish<A: AsRef<[KeyValue]>>(
        &self,
        key: Option<SetKey>,
        attributes: impl FnOnce() -> A,
    ) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.in_context(|| {
            self.instruments
                .0
                .duration
                .record_keyed(elapsed, key, attributes);
        });
    }

    fn count(&self, delta: i64) {
        let active = &self.instruments.0.active;
        self.in_context(|| active.record_keyed(delta, self.key, || self.active.as_slice()));
    }

    fn in_context(&self, record: impl FnOnce()) {
        match &self.cx {
            Some(cx) => metrics::in_context(cx, record),
            None => record(),
        }
    }
}

impl<const N: usize> Drop for InFlight<N> {
    fn drop(&mut self) {
        self.count(-1);
    }
}
