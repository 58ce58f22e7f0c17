//! The `traceparent` fast path does not allocate: counted with a global
//! allocator, not timed. A binary of its own so nothing else counts.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use baton_propagators::trace_context::parse_traceparent;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to `System`, only counting them.
#[allow(unsafe_code, reason = "a counting allocator for this test")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = f();
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

#[test]
fn parsing_a_traceparent_does_not_allocate() {
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
                .parse()
                .unwrap(),
        );
        h
    };
    // (input, valid, why)
    let rows = [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            true,
            "valid",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            false,
            "short",
        ),
        (
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
            true,
            "future version",
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            false,
            "zero trace id",
        ),
    ];
    for (input, valid, why) in rows {
        let (parsed, n) = allocations_during(|| parse_traceparent(input));
        assert_eq!(parsed.is_some(), valid, "{why}");
        assert_eq!(n, 0, "{why}: {n} allocations");
    }
    let long = "0".repeat(1 << 20);
    let (parsed, n) = allocations_during(|| parse_traceparent(&long));
    assert!(parsed.is_none());
    assert_eq!(
        n, 0,
        "a 1 MiB header is rejected by its length, with no allocation"
    );
    let (parsed, n) = allocations_during(|| {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
    });
    assert!(parsed.is_some());
    assert_eq!(n, 0, "from a HeaderMap");
}
