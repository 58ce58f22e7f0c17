//! Interned names: the few strings every request repeats (HTTP routes, gRPC
//! methods, span names made of them) kept once as `&'static str`.
//!
//! OpenTelemetry takes span names and attribute values as owned or
//! `'static` strings, so recording one of these per request would otherwise
//! cost an allocation and, on the export thread, a free. The table is
//! bounded: at most [`CAPACITY`] entries of at most [`MAX_LEN`] bytes are
//! ever kept (leaked for the life of the process, 256 KiB at worst); past
//! that, callers allocate as they would without it. Only names the
//! application chose belong here: route templates, and gRPC methods once a
//! call to them has been answered (a client-chosen path the server does not
//! know never gets in).

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};

use foldhash::fast::RandomState;

/// Most entries (names and pairs) the table keeps.
const CAPACITY: usize = 1024;
/// Longest name kept.
const MAX_LEN: usize = 256;

#[derive(Default)]
struct Table {
    names: HashSet<&'static str, RandomState>,
    /// `{first} {second}` by the addresses of its two interned parts.
    pairs: HashMap<(usize, usize), &'static str, RandomState>,
}

impl Table {
    fn full(&self) -> bool {
        self.names.len() + self.pairs.len() >= CAPACITY
    }
}

static TABLE: LazyLock<RwLock<Table>> = LazyLock::new(Default::default);

/// `name` if it is interned already.
pub(crate) fn get(name: &str) -> Option<&'static str> {
    TABLE.read().ok()?.names.get(name).copied()
}

/// `name`, interned now if it was not and the table has room.
pub(crate) fn intern(name: &str) -> Option<&'static str> {
    if let Some(known) = get(name) {
        return Some(known);
    }
    if name.len() > MAX_LEN {
        return None;
    }
    let mut table = TABLE.write().ok()?;
    if let Some(known) = table.names.get(name) {
        return Some(known);
    }
    if table.full() {
        return None;
    }
    let leaked: &'static str = Box::leak(name.into());
    table.names.insert(leaked);
    Some(leaked)
}

/// `{first} {second}` for two interned strings, interned while the table
/// has room; looked up without formatting it.
#[cfg(feature = "http-server")]
pub(crate) fn pair(first: &'static str, second: &'static str) -> Option<&'static str> {
    let key = (first.as_ptr() as usize, second.as_ptr() as usize);
    if let Some(known) = TABLE.read().ok()?.pairs.get(&key) {
        return Some(known);
    }
    let mut table = TABLE.write().ok()?;
    if let Some(known) = table.pairs.get(&key) {
        return Some(known);
    }
    if table.full() {
        return None;
    }
    let leaked: &'static str = Box::leak(format!("{first} {second}").into_boxed_str());
    table.pairs.insert(key, leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_kept_once() {
        let a = intern("/intern/test").expect("room");
        let b = intern(&String::from("/intern/test")).expect("room");
        assert!(std::ptr::eq(a, b));
        assert_eq!(get("/intern/test"), Some(a));
        assert_eq!(get("/intern/never"), None);
        assert_eq!(intern(&"x".repeat(MAX_LEN + 1)), None, "too long");
    }

    #[cfg(feature = "http-server")]
    #[test]
    fn pairs_are_joined_with_a_space() {
        let route = intern("/intern/pair").expect("room");
        let name = pair("GET", route).expect("room");
        assert_eq!(name, "GET /intern/pair");
        assert!(std::ptr::eq(name, pair("GET", route).expect("room")));
    }
}
