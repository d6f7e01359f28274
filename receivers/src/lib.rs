//! Teletrace receivers.
//!
//! * [`otlp`]: OTLP/gRPC and OTLP/HTTP (protobuf and JSON).
//! * [`file`]: replays files written by the `file` exporter.

pub mod file;
pub mod otlp;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
