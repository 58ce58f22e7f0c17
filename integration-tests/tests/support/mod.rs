//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses only part of these helpers")]

pub(crate) mod peer;
