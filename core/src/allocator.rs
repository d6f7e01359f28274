//! The `teletrace` binary's memory allocator: mimalloc, returning freed memory to the
//! operating system at once. A distribution declares it with
//! `#[global_allocator] static GLOBAL: Allocator = ALLOCATOR;` and calls
//! [`purge_freed_memory_at_once`] first thing in `main`.
//!
//! Why mimalloc: a batch is many small allocations made on the threads that prepare it
//! and freed on the thread that writes it (the sqlite exporter's writer). glibc's malloc
//! serialises such frees on the allocating thread's arena lock; with mimalloc the sqlite
//! ingest benchmark ran 25% faster (BENCHMARKS.md, session 6).
//!
//! Why at once: mimalloc keeps freed pages for a while (mimalloc 3: one second) before it
//! gives them back, so the resident set stays high after a burst. The `memory_limiter`
//! processor measures the resident set, and with the delay it let a flood reach 229 MiB
//! against a 200 MiB limit; without it, 178 MiB (`tests/memory_limiter.rs`).

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};
use std::os::raw::c_long;

/// The allocator to declare as `#[global_allocator]`.
pub type Allocator = mimalloc::MiMalloc;

/// The value to declare it with.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its place in mimalloc's `mi_option_e` enum (the same in
/// mimalloc 2 and 3), which `libmimalloc-sys` does not name.
const PURGE_DELAY: mi_option_t = 15;
/// Its defaults in milliseconds (mimalloc 2: 10; mimalloc 3, which `libmimalloc-sys`
/// builds unless told otherwise: 1,000), by which the place is checked before it is
/// written.
const PURGE_DELAY_DEFAULTS: [c_long; 2] = [10, 1000];

/// Makes mimalloc return freed memory at once, unless `MIMALLOC_PURGE_DELAY` set the
/// delay already. Returns whether it changed the option (false also when option 15 is
/// not the purge delay in the mimalloc linked, which leaves everything as it was).
pub fn purge_freed_memory_at_once() -> bool {
    // SAFETY: mi_option_get and mi_option_set read and write one entry of mimalloc's
    // option table, which has an entry for every index below `_mi_option_last` (38 or
    // more; 15 is in range); mimalloc allows both from any thread at any time.
    unsafe {
        if !PURGE_DELAY_DEFAULTS.contains(&mi_option_get(PURGE_DELAY)) {
            return false;
        }
        mi_option_set(PURGE_DELAY, 0);
        mi_option_get(PURGE_DELAY) == 0
    }
}

/// Makes mimalloc give back the free memory it still holds, on every thread's heap it
/// can reach (what `malloc_trim` does for glibc; see `memory::release_free_memory`).
pub(crate) fn release_free_memory() {
    // SAFETY: mi_collect(true) only walks mimalloc's own heaps and frees pages no
    // allocation uses; it may be called from any thread at any time.
    unsafe { mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_option_15_and_becomes_zero() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert!(
            purge_freed_memory_at_once(),
            "option 15 does not hold a default purge delay"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 0);
    }
}
