//! Baton exporters.
