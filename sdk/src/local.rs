//! Typed context keys: [`Local<T>`], the counterpart of separate
//! `AsyncLocalStorage` instances.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Context;

use crate::context::{EnterGuard, enter, run_sync, with_current};
use crate::future::{Run, run};

/// A typed key for a value carried in the context.
///
/// Every `Local` is a separate slot, even for the same `T`, like separate
/// `AsyncLocalStorage` instances; all of them ride in the one propagated
/// context, so a single hand-off (a spawn, a `bind`, a `run`) carries them all.
///
/// ```
/// use baton::Local;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct TenantId(String);
///
/// static TENANT: Local<TenantId> = Local::new();
/// static BILLING_TENANT: Local<TenantId> = Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// TENANT
///     .run(TenantId("acme".into()), async {
///         assert_eq!(TENANT.get(), Some(TenantId("acme".into())));
///         assert_eq!(BILLING_TENANT.get(), None, "another key, another slot");
///     })
///     .await;
/// assert_eq!(TENANT.get(), None);
/// # }
/// ```
pub struct Local<T> {
    /// Assigned on first use; a `static` cannot allocate an id at compile time.
    id: AtomicU64,
    _value: PhantomData<fn() -> T>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// All `Local` values of one context, in a single context entry: one
/// `Context::with_value` per change whatever the number of keys. Sorted by id;
/// contexts hold a handful of keys, so a sorted `Vec` beats a map.
#[derive(Clone, Default)]
struct Locals(Arc<Vec<(u64, Arc<dyn Any + Send + Sync>)>>);

impl<T: Send + Sync + 'static> Local<T> {
    /// A new key, usable in a `static`.
    pub const fn new() -> Self {
        Local {
            id: AtomicU64::new(0),
            _value: PhantomData,
        }
    }

    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(raced) => raced,
        }
    }

    /// This key's value in `cx`.
    pub fn get_in<'cx>(&self, cx: &'cx Context) -> Option<&'cx T> {
        let id = self.id();
        let locals = cx.get::<Locals>()?;
        let i = locals.0.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        locals.0.get(i)?.1.downcast_ref::<T>()
    }

    /// A copy of `cx` with this key set to `value`. `cx` itself is not
    /// changed, so dropping the result does nothing and the compiler warns:
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// static TENANT: baton::Local<&str> = baton::Local::new();
    /// let cx = baton::current();
    /// TENANT.set_in(&cx, "acme"); // does nothing: the new context is dropped
    /// ```
    ///
    /// ```
    /// # static TENANT: baton::Local<&str> = baton::Local::new();
    /// let cx = TENANT.set_in(&baton::current(), "acme");
    /// assert_eq!(baton::run_sync(cx, || TENANT.get()), Some("acme"));
    /// ```
    #[must_use = "this returns a new context; run code in it with `baton::run` or `baton::enter`"]
    pub fn set_in(&self, cx: &Context, value: T) -> Context {
        let id = self.id();
        let mut entries: Vec<_> = cx
            .get::<Locals>()
            .map(|l| l.0.as_ref().clone())
            .unwrap_or_default();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match entries.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) => entries[i].1 = value,
            Err(i) => entries.insert(i, (id, value)),
        }
        cx.with_value(Locals(Arc::new(entries)))
    }

    /// Calls `f` with this key's value in the current context.
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        with_current(|cx| f(self.get_in(cx)))
    }

    /// A clone of this key's value in the current context (≙ `getStore()`).
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|v| v.cloned())
    }

    /// Runs `fut` with this key set to `value`, every other key and the
    /// trace context inherited from the current context.
    pub fn run<F: IntoFuture>(&self, value: T, fut: F) -> Run<F::IntoFuture> {
        run(self.set_in(&crate::current(), value), fut)
    }

    /// Runs `f` with this key set to `value`; the synchronous form of [`run`](Self::run).
    pub fn run_sync<R>(&self, value: T, f: impl FnOnce() -> R) -> R {
        run_sync(self.set_in(&crate::current(), value), f)
    }

    /// Sets this key to `value` until the guard is dropped (≙ a scoped
    /// `enterWith`), for synchronous code; see [`enter`](crate::enter).
    pub fn enter(&self, value: T) -> EnterGuard {
        enter(self.set_in(&crate::current(), value))
    }
}

impl<T: Send + Sync + 'static> Default for Local<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_same_type_are_separate_slots() {
        static A: Local<u8> = Local::new();
        static B: Local<u8> = Local::new();
        let cx = B.set_in(&A.set_in(&Context::new(), 1), 2);
        assert_eq!((A.get_in(&cx), B.get_in(&cx)), (Some(&1), Some(&2)));
        let cx = A.set_in(&cx, 3);
        assert_eq!((A.get_in(&cx), B.get_in(&cx)), (Some(&3), Some(&2)));
    }

    #[test]
    fn setting_a_key_leaves_the_parent_context_alone() {
        static A: Local<&str> = Local::new();
        let parent = A.set_in(&Context::new(), "parent");
        let child = A.set_in(&parent, "child");
        assert_eq!(A.get_in(&parent), Some(&"parent"));
        assert_eq!(A.get_in(&child), Some(&"child"));
    }
}
