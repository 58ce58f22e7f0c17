//! The hooks' task map returns to empty: no entry outlives its task, even for
//! tasks spawned while the runtime shuts down. A binary of its own, since the
//! map is global and other tests would share it.
#![cfg(tokio_unstable)]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use baton::{Context, Local};

static REQUEST: Local<u64> = Local::new();

/// Spawns more tasks from its destructor, as code dropped at shutdown may.
struct SpawnOnDrop;

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(async {}));
        }
    }
}

#[test]
fn no_entry_outlives_its_task() {
    for multi in [true, false] {
        let rt = if multi {
            baton::runtime::new_multi_thread().enable_all().build()
        } else {
            baton::runtime::new_current_thread().enable_all().build()
        }
        .unwrap();
        rt.block_on(baton::run(REQUEST.set_in(&Context::new(), 1), async {
            let done: Vec<_> = (0..1_000).map(|_| tokio::spawn(async {})).collect();
            for t in done {
                t.await.unwrap();
            }
            for _ in 0..100 {
                // Pending at shutdown: dropped without a final poll.
                tokio::spawn(async {
                    let _spawner = SpawnOnDrop;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                });
            }
            // Blocking tasks end without a spawn hook: they must leave nothing behind.
            for _ in 0..100 {
                tokio::task::spawn_blocking(|| ()).await.unwrap();
            }
            tokio::task::yield_now().await;
        }));
        drop(rt);
        assert_eq!(baton::runtime::tracked_tasks(), 0, "multi_thread: {multi}");
    }
}
