//! Teletrace processors.

pub mod batch;
pub mod probabilistic_sampler;
pub mod tail_sampling;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
