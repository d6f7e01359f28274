//! Teletrace extensions.

#[cfg(feature = "query")]
pub mod query;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
