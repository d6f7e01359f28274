//! Teletrace exporters.

pub mod debug;
#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
pub mod file;
pub mod otlp;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
