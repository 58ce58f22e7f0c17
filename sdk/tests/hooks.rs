//! Automatic inheritance across a plain `tokio::spawn` through the task hooks.
//! Compiled only with `RUSTFLAGS="--cfg tokio_unstable"`, as `.ci/run` does.
#![cfg(tokio_unstable)]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton::{Context, Local};

static REQUEST: Local<u64> = Local::new();

fn cx(i: u64) -> Context {
    REQUEST.set_in(&Context::new(), i)
}

fn runtimes() -> [tokio::runtime::Runtime; 2] {
    [
        baton::runtime::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        baton::runtime::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    ]
}

#[test]
fn plain_spawns_inherit_without_a_wrapper() {
    for rt in runtimes() {
        let seen = rt.block_on(baton::run(cx(1), async {
            let direct = tokio::spawn(async { REQUEST.get() }).await.unwrap();
            let nested = tokio::spawn(async {
                tokio::task::yield_now().await;
                tokio::spawn(async { tokio::spawn(async { REQUEST.get() }).await.unwrap() })
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
            let mut set = tokio::task::JoinSet::new();
            set.spawn(async { REQUEST.get() });
            let joinset = set.join_next().await.unwrap().unwrap();
            (direct, nested, joinset)
        }));
        assert_eq!(seen, (Some(1), Some(1), Some(1)));
    }
}

#[test]
fn spawning_from_a_thread_outside_the_runtime_inherits_that_threads_context() {
    for rt in runtimes() {
        let handle = rt.handle().clone();
        let task = std::thread::spawn(move || {
            baton::run_sync(cx(2), || handle.spawn(async { REQUEST.get() }))
        })
        .join()
        .unwrap();
        assert_eq!(rt.block_on(task).unwrap(), Some(2));
    }
}

#[test]
fn ten_thousand_plain_spawns_never_see_each_other() {
    for rt in runtimes() {
        let bad = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..10_000_u64 {
                let bad = bad.clone();
                // `run_sync` only around the spawn: the task keeps `i` because
                // the hook captured it, not because of any wrapper.
                baton::run_sync(cx(i), || {
                    set.spawn(async move {
                        for step in 0..3_u64 {
                            if (i + step) % 2 == 0 {
                                tokio::task::yield_now().await;
                            } else {
                                tokio::time::sleep(Duration::from_micros(i % 300)).await;
                            }
                            let child = tokio::spawn(async { REQUEST.get() }).await.unwrap();
                            if REQUEST.get() != Some(i) || child != Some(i) {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
        assert_eq!(bad.load(Ordering::Relaxed), 0);
    }
}

#[test]
#[allow(clippy::mem_forget, reason = "the leak under test")]
fn a_forgotten_upstream_guard_does_not_leak_into_other_tasks() {
    let rt = baton::runtime::new_current_thread().build().unwrap();
    // The root future is not a task, so it is wrapped like the docs say.
    let seen = rt.block_on(baton::run(Context::new(), async {
        let earlier = tokio::spawn(async {
            tokio::task::yield_now().await;
            REQUEST.get()
        });
        tokio::spawn(async { std::mem::forget(cx(3).attach()) })
            .await
            .unwrap();
        let later = tokio::spawn(async { REQUEST.get() }).await.unwrap();
        (earlier.await.unwrap(), later, REQUEST.get())
    }));
    assert_eq!(seen, (None, None, None));
}

#[test]
fn enter_task_changes_the_rest_of_the_task_and_its_children() {
    for rt in runtimes() {
        let seen = rt.block_on(async {
            tokio::spawn(async {
                let before = REQUEST.get();
                baton::runtime::enter_task(cx(4)).unwrap();
                let now = REQUEST.get();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let later = REQUEST.get();
                let child = tokio::spawn(async { REQUEST.get() }).await.unwrap();
                (before, now, later, child)
            })
            .await
            .unwrap()
        });
        assert_eq!(seen, (None, Some(4), Some(4), Some(4)));
    }
    assert!(baton::runtime::enter_task(cx(5)).is_err(), "not in a task");
}

#[test]
fn documented_limits_hold() {
    let rt = &runtimes()[0];
    rt.block_on(baton::run(cx(6), async {
        let blocking = tokio::task::spawn_blocking(|| REQUEST.get()).await.unwrap();
        assert_eq!(blocking, None, "tokio runs no hooks for spawn_blocking");
        let blocking = baton::spawn_blocking(|| REQUEST.get()).await.unwrap();
        assert_eq!(blocking, Some(6), "baton::spawn_blocking carries it");
        let local = tokio::task::LocalSet::new();
        let seen = local
            .run_until(async {
                let task =
                    baton::run_sync(cx(60), || tokio::task::spawn_local(async { REQUEST.get() }));
                task.await
            })
            .await
            .unwrap();
        assert_eq!(
            seen,
            Some(6),
            "tokio runs no hooks on a LocalSet: its tasks see the context of whatever drives \
             the set, not the one current where they were spawned"
        );
    }));
    assert_eq!(
        rt.block_on(async { REQUEST.get() }),
        None,
        "block_on's future is not a task"
    );
}

#[test]
fn user_hooks_chain_and_see_the_tasks_context() {
    static POLLED_WITH: AtomicUsize = AtomicUsize::new(0);
    let mut builder = tokio::runtime::Builder::new_current_thread();
    baton::runtime::Hooks::new()
        .on_before_task_poll(|_| {
            if REQUEST.get() == Some(7) {
                POLLED_WITH.fetch_add(1, Ordering::Relaxed);
            }
        })
        .install(&mut builder);
    let rt = builder.build().unwrap();
    rt.block_on(baton::run(cx(7), async {
        tokio::spawn(async {}).await.unwrap();
    }));
    assert!(POLLED_WITH.load(Ordering::Relaxed) >= 1);
}
