//! Teletrace processors.

pub mod attributes;
pub mod batch;
pub mod probabilistic_sampler;
pub mod tail_sampling;
pub mod filter;
pub mod matching;
pub mod resource_detection;

#[cfg(test)]
mod test_util;
pub mod memory_limiter;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
