//! Teletrace exporters.

pub mod debug;
pub mod file;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
