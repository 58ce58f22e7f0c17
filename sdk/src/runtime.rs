//! Automatic context inheritance across a plain `tokio::spawn`, through
//! tokio's task hooks. Needs `RUSTFLAGS="--cfg tokio_unstable"`.
//!
//! ```
//! # #[cfg(tokio_unstable)] {
//! use baton::Local;
//! static TENANT: Local<&'static str> = Local::new();
//!
//! let rt = baton::runtime::new_multi_thread().enable_all().build().expect("runtime");
//! rt.block_on(TENANT.run("acme", async {
//!     // No wrapper at the spawn site: the task inherits the spawner's context.
//!     let seen = tokio::spawn(async { TENANT.get() }).await.expect("task");
//!     assert_eq!(seen, Some("acme"));
//! }));
//! # }
//! ```
//!
//! The hooks capture the spawner's context when a task is spawned and make it
//! current around every poll of that task. Every task poll attaches its own
//! context, so a guard leaked by one task never shows in another.
//!
//! Limits, all from tokio: `spawn_blocking` runs no hooks (use
//! [`baton::spawn_blocking`](crate::spawn_blocking)); `spawn_local` on a
//! `LocalSet` runs no hooks (use [`baton::run`](crate::run) or
//! [`InContext`](crate::InContext)); the future given to `block_on` is not a
//! task (wrap it in [`baton::run`](crate::run)). `#[tokio::main]` and
//! `#[tokio::test]` build runtimes nobody can hook: build the runtime with
//! [`new_multi_thread`] / [`new_current_thread`] or [`Hooks::install`].

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use opentelemetry::{Context, ContextGuard};
use tokio::runtime::{Builder, TaskMeta};
use tokio::task::Id;

use crate::context::{check_no_escape, open_guards};

/// A multi-thread runtime builder with the context hooks installed.
pub fn new_multi_thread() -> Builder {
    let mut builder = Builder::new_multi_thread();
    Hooks::new().install(&mut builder);
    builder
}

/// A current-thread runtime builder with the context hooks installed.
pub fn new_current_thread() -> Builder {
    let mut builder = Builder::new_current_thread();
    Hooks::new().install(&mut builder);
    builder
}

type Hook = Arc<dyn Fn(&TaskMeta<'_>) + Send + Sync>;

/// Installs the context hooks on a `tokio::runtime::Builder`, chaining any
/// hooks of your own: a builder holds one hook of each kind, so setting yours
/// after installing these would silently replace them.
///
/// ```
/// # #[cfg(tokio_unstable)] {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static SPAWNED: AtomicUsize = AtomicUsize::new(0);
///
/// let mut builder = tokio::runtime::Builder::new_current_thread();
/// baton::runtime::Hooks::new()
///     .on_task_spawn(|_| { SPAWNED.fetch_add(1, Ordering::Relaxed); })
///     .install(&mut builder);
/// let rt = builder.build().expect("runtime");
/// rt.block_on(async { tokio::spawn(async {}).await.expect("task") });
/// assert_eq!(SPAWNED.load(Ordering::Relaxed), 1);
/// # }
/// ```
#[derive(Default, Clone)]
pub struct Hooks {
    spawn: Option<Hook>,
    before_poll: Option<Hook>,
    after_poll: Option<Hook>,
    terminate: Option<Hook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Hooks {
    /// The context hooks alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also runs `f` when a task is spawned, after the context is captured.
    pub fn on_task_spawn(mut self, f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static) -> Self {
        self.spawn = Some(Arc::new(f));
        self
    }

    /// Also runs `f` before each task poll, with the task's context current.
    pub fn on_before_task_poll(
        mut self,
        f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.before_poll = Some(Arc::new(f));
        self
    }

    /// Also runs `f` after each task poll, with the task's context still current.
    pub fn on_after_task_poll(mut self, f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static) -> Self {
        self.after_poll = Some(Arc::new(f));
        self
    }

    /// Also runs `f` when a task terminates.
    pub fn on_task_terminate(mut self, f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static) -> Self {
        self.terminate = Some(Arc::new(f));
        self
    }

    /// Sets all four task hooks of `builder`.
    pub fn install(self, builder: &mut Builder) -> &mut Builder {
        let Hooks {
            spawn,
            before_poll,
            after_poll,
            terminate,
        } = self;
        builder
            .on_task_spawn(move |meta| {
                on_spawn(meta.id());
                if let Some(f) = &spawn {
                    f(meta);
                }
            })
            .on_before_task_poll(move |meta| {
                before_poll_task(meta.id());
                if let Some(f) = &before_poll {
                    f(meta);
                }
            })
            .on_after_task_poll(move |meta| {
                if let Some(f) = &after_poll {
                    f(meta);
                }
                after_poll_task();
            })
            .on_task_terminate(move |meta| {
                on_terminate(meta.id());
                if let Some(f) = &terminate {
                    f(meta);
                }
            })
    }
}

/// Why [`enter_task`] could not change the task's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInHookedTask(());

impl fmt::Display for NotInHookedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not inside a task of a runtime with baton's hooks installed")
    }
}

impl std::error::Error for NotInHookedTask {}

/// Makes `cx` the current task's context for the rest of its life, from now
/// on and at every later poll (≙ `AsyncLocalStorage.enterWith()`). Tasks it
/// spawns afterwards inherit `cx`.
pub fn enter_task(cx: Context) -> Result<(), NotInHookedTask> {
    let id = tokio::task::try_id().ok_or(NotInHookedTask(()))?;
    let previous = {
        let mut shard = TASKS.shard(id);
        match shard.live.get_mut(&id) {
            Some(slot) => std::mem::replace(slot, cx.clone()),
            None => return Err(NotInHookedTask(())),
        }
    };
    // The rest of this poll sees `cx` too; it is popped with the poll's frame.
    let guard = cx.attach();
    let stale = FRAMES.with(|frames| {
        let mut frames = frames.try_borrow_mut().ok()?;
        frames.last_mut().map(|frame| frame.entered.replace(guard))
    });
    drop((previous, stale));
    Ok(())
}

/// Task contexts, sharded: one global mutex costs several times more per
/// spawn under contention (measured on 2 cores: +330 to +450 ns per task,
/// against +130 to +210 ns with 64 shards).
struct TaskMap {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Default)]
struct Shard {
    live: HashMap<Id, Context>,
    /// Tasks whose terminate hook ran with no entry. Tokio runs it before the
    /// spawn hook for a task spawned during shutdown: the late spawn hook must
    /// then not create an entry nobody would remove. Blocking tasks also end
    /// this way (terminate without spawn), so this is a short ring, not a set
    /// that would grow with every `spawn_blocking`.
    ended_unseen: VecDeque<Id>,
}

const SHARDS: usize = 64;
const ENDED_UNSEEN_PER_SHARD: usize = 8;

static TASKS: LazyLock<TaskMap> = LazyLock::new(|| TaskMap {
    shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
    hasher: RandomState::new(),
});

impl TaskMap {
    fn shard(&self, id: Id) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(id) as usize) % self.shards.len();
        // A hook must never panic (tokio does not catch it), and the map stays
        // consistent whatever a panicking holder was doing, so poison is ignored.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one task poll attached on this thread, undone after the poll.
struct Frame {
    task: ContextGuard,
    entered: Option<ContextGuard>,
    open_guards: isize,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

fn on_spawn(id: Id) {
    let cx = Context::current();
    let replaced = {
        let mut shard = TASKS.shard(id);
        match shard.ended_unseen.iter().position(|&e| e == id) {
            Some(i) => {
                shard.ended_unseen.remove(i);
                None
            }
            None => shard.live.insert(id, cx),
        }
    };
    // Dropped outside the lock: dropping a context can run user code that
    // spawns, which re-enters this hook.
    drop(replaced);
}

fn before_poll_task(id: Id) {
    let cx = TASKS.shard(id).live.get(&id).cloned().unwrap_or_default();
    // Even a task without a context attaches one (the empty one), so a
    // context leaked earlier on this thread is never what it sees.
    let frame = Frame {
        open_guards: open_guards(),
        task: cx.attach(),
        entered: None,
    };
    FRAMES.with(|frames| {
        if let Ok(mut frames) = frames.try_borrow_mut() {
            frames.push(frame);
        }
    });
}

fn after_poll_task() {
    // The terminate hook may already have removed the task's entry: this hook
    // only undoes this thread's frame and never writes the map.
    let frame = FRAMES.with(|frames| frames.try_borrow_mut().ok().and_then(|mut f| f.pop()));
    if let Some(Frame {
        task,
        entered,
        open_guards,
    }) = frame
    {
        check_no_escape(open_guards);
        drop(entered);
        drop(task);
    }
}

fn on_terminate(id: Id) {
    let removed = {
        let mut shard = TASKS.shard(id);
        let removed = shard.live.remove(&id);
        if removed.is_none() {
            if shard.ended_unseen.len() == ENDED_UNSEEN_PER_SHARD {
                shard.ended_unseen.pop_front();
            }
            shard.ended_unseen.push_back(id);
        }
        removed
    };
    drop(removed);
}

/// How many task contexts the hooks hold; tests check it returns to zero.
#[doc(hidden)]
pub fn tracked_tasks() -> usize {
    TASKS
        .shards
        .iter()
        .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).live.len())
        .sum()
}
