//! The propagator Baton's middleware extracts and injects with.
//!
//! Defaults to what `OTEL_PROPAGATORS` selects (W3C Trace Context and Baggage
//! when unset), read once on first use; [`set`] replaces it for every layer
//! built afterwards.

use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use baton_propagators::Propagator;

static GLOBAL: LazyLock<RwLock<Arc<dyn Propagator>>> =
    LazyLock::new(|| RwLock::new(Arc::new(baton_propagators::from_env())));

/// The propagator middleware built from now on will use.
pub fn get() -> Arc<dyn Propagator> {
    GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Replaces the propagator for middleware built from now on.
pub fn set(propagator: impl Propagator + 'static) {
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(propagator);
}
