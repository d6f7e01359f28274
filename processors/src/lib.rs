//! Teletrace processors.

pub mod attributes;
pub mod batch;
pub mod filter;
pub mod matching;
pub mod memory_limiter;
pub mod probabilistic_sampler;
pub mod resource_detection;
pub mod tail_sampling;

#[cfg(test)]
mod test_util;

/// Call from a distribution binary to make sure this crate, and so every component it
/// registers, is linked.
pub fn link() {}
