//! What the export tests share besides the collector: running one at a
//! time, and a configuration from a few variables.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use baton_exporters::Config;

/// Held by every test of a binary: they run one at a time, so that bursts
/// (and rotel printing them) do not steal the CPU from timings and heap
/// counts another test measures on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The configuration `vars` describe, which must raise no warning.
pub(crate) fn config(vars: &[(&str, String)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let config = Config::from_vars(|name| vars.get(name).cloned());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config
}
