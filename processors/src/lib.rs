//! Teletrace processors.

pub mod batch;
pub mod memory_limiter;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
