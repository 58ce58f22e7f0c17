//! A guard held across an `.await` (or forgotten) must not leak its context.
//!
//! With plain `opentelemetry`, `cx.attach()` held across an `.await` on a
//! current-thread runtime leaks into sibling futures, and a forgotten guard
//! into every later poll on that thread. Baton makes every poll of a
//! `baton::run` future attach its own context, so such a leak never decides
//! what a baton-run future sees, and catches its own guards when they escape.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::panic::AssertUnwindSafe;

use baton::{Context, Local};
use futures_util::FutureExt;

static WHO: Local<&'static str> = Local::new();

fn cx(who: &'static str) -> Context {
    WHO.set_in(&Context::new(), who)
}

/// A future that holds a plain OpenTelemetry guard across an `.await`.
async fn upstream_leaker() {
    let _guard = cx("leaker").attach();
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn upstream_guard_across_await_leaks_into_a_plain_sibling() {
    // The behaviour Baton protects against, shown so this test fails if
    // upstream ever fixes it and the protection is no longer needed.
    let seen = tokio::join!(upstream_leaker(), async {
        WHO.get_in(&Context::current()).copied()
    })
    .1;
    assert_eq!(seen, Some("leaker"));
}

#[tokio::test]
async fn baton_runs_never_see_a_leaked_upstream_context() {
    let (_, mine, empty) = tokio::join!(
        upstream_leaker(),
        baton::run(cx("mine"), async {
            tokio::task::yield_now().await;
            WHO.get()
        }),
        baton::run(Context::new(), async { WHO.get() }),
    );
    assert_eq!((mine, empty), (Some("mine"), None));
}

#[tokio::test]
#[allow(
    clippy::await_holding_invalid_type,
    reason = "the leak under test; that this lint fires here is the compile-time check"
)]
async fn a_baton_guard_held_across_an_await_is_caught() {
    let before = baton::leaked_guards();
    // `tokio::spawn` would refuse this future at compile time (the guard is
    // `!Send`); on a current-thread runtime nothing stops it, so poll in place.
    let outcome = AssertUnwindSafe(baton::run(cx("run"), async {
        let _guard = baton::enter(cx("guard"));
        tokio::task::yield_now().await;
    }))
    .catch_unwind()
    .await;
    if cfg!(debug_assertions) {
        let panic = outcome.unwrap_err();
        let msg = panic.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("outlived the poll"), "{msg}");
    } else {
        outcome.unwrap();
    }
    assert!(baton::leaked_guards() > before);
}

#[tokio::test]
#[allow(clippy::mem_forget, reason = "the leak under test")]
async fn a_forgotten_baton_guard_is_caught() {
    let before = baton::leaked_guards();
    let outcome = AssertUnwindSafe(baton::run(cx("run"), async {
        std::mem::forget(baton::enter(cx("forgotten")));
    }))
    .catch_unwind()
    .await;
    assert_eq!(outcome.is_err(), cfg!(debug_assertions));
    assert!(baton::leaked_guards() > before);
}
