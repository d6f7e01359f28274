//! An example component crate: one processor, `name_prefix`, registered at link time.
//!
//! A distribution binary calls [`link`] so the linker keeps this crate, and with it the
//! registration; see `src/bin/teletrace-custom.rs`.

pub mod name_prefix;

/// Call from a distribution binary to make sure this crate is linked.
pub fn link() {}
