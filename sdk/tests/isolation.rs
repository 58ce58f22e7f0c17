//! Concurrent requests never see each other's context.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton::{Context, Local};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

static REQUEST: Local<u64> = Local::new();

const TASKS: u64 = 10_000;

/// A context whose every part (typed key, baggage, span context) names `i`.
fn context_for(i: u64) -> Context {
    let span = SpanContext::new(
        TraceId::from(u128::from(i) + 1),
        SpanId::from(i + 1),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let cx = Context::new().with_remote_span_context(span);
    let cx = REQUEST.set_in(&cx, i);
    baton::baggage::set_in(&cx, "request", &i.to_string()).unwrap()
}

/// Whether everything the current context says names `i`.
fn sees_only(i: u64) -> bool {
    let trace = baton::with_current(|cx| cx.span().span_context().trace_id());
    REQUEST.get() == Some(i)
        && baton::baggage::get("request") == Some(i.to_string())
        && trace == TraceId::from(u128::from(i) + 1)
}

/// A few steps of random yields and sleeps, checking the context after every
/// suspension point. Returns how many checks failed.
async fn steps(i: u64) -> usize {
    let mut bad = 0;
    let mut seed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        match seed % 3 {
            0 => tokio::task::yield_now().await,
            1 => tokio::time::sleep(Duration::from_micros(seed % 500)).await,
            _ => {}
        }
        bad += usize::from(!sees_only(i));
    }
    bad
}

/// [`steps`], then the same again in a nested spawned task.
async fn request(i: u64) -> usize {
    steps(i).await + baton::spawn(steps(i)).await.unwrap()
}

async fn many_requests() -> (usize, usize) {
    let bad = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let (bad, done) = (bad.clone(), done.clone());
        handles.push(tokio::spawn(baton::run(context_for(i), async move {
            bad.fetch_add(request(i).await, Ordering::Relaxed);
            done.fetch_add(1, Ordering::Relaxed);
        })));
    }
    for h in handles {
        h.await.unwrap();
    }
    (bad.load(Ordering::Relaxed), done.load(Ordering::Relaxed))
}

#[test]
fn ten_thousand_requests_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(many_requests()), (0, TASKS as usize));
    assert!(sees_nothing());
}

#[test]
fn ten_thousand_requests_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(many_requests()), (0, TASKS as usize));
    assert!(sees_nothing());
}

#[tokio::test]
async fn siblings_inside_one_join_stay_apart() {
    let runs = (0..200).map(|i| baton::run(context_for(i), steps(i)));
    let bad: usize = futures_util::future::join_all(runs).await.into_iter().sum();
    assert_eq!(bad, 0);
    let (a, b) = tokio::join!(
        baton::run(context_for(1), request(1)),
        baton::run(context_for(2), request(2)),
    );
    assert_eq!((a, b), (0, 0));
}

#[tokio::test]
async fn tasks_on_a_local_set_stay_apart() {
    let local = tokio::task::LocalSet::new();
    let bad = std::rc::Rc::new(std::cell::Cell::new(0));
    for i in 0..1_000 {
        let bad = bad.clone();
        local.spawn_local(baton::run(context_for(i), async move {
            bad.set(bad.get() + steps(i).await);
        }));
    }
    local.await;
    assert_eq!(bad.get(), 0);
}

fn sees_nothing() -> bool {
    REQUEST.get().is_none() && baton::baggage::entries().is_empty()
}
