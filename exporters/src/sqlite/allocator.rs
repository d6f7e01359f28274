//! SQLite's own memory allocator: mimalloc instead of the C library's malloc.
//!
//! SQLite allocates through `malloc` whatever the Rust program's global allocator is, so
//! the `teletrace` binary's mimalloc (`teletrace_core::allocator`) did not reach it: glibc's
//! `malloc` and `free` were about a quarter of the writer thread's time while ingesting
//! (pages, cells, bound values; BENCHMARKS.md, session 7). [`allocate_with_mimalloc`]
//! hands SQLite mimalloc's functions through `SQLITE_CONFIG_MALLOC`.

use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
use libsqlite3_sys::{sqlite3_config, sqlite3_mem_methods, SQLITE_CONFIG_MALLOC, SQLITE_OK};
use std::os::raw::{c_int, c_void};

/// A size SQLite asked for, as mimalloc takes it (SQLite never asks for a negative size;
/// one would become 0, for which mimalloc returns a unique pointer).
fn requested(n: c_int) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// A size mimalloc gave, as SQLite takes it (SQLite caps allocations well below
/// `c_int::MAX`; a larger size would only be under-reported).
fn reported(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    // SAFETY: mi_malloc accepts any size and returns null when it cannot allocate.
    unsafe { mi_malloc(requested(n)) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    // SAFETY: SQLite frees only pointers its xMalloc or xRealloc returned, i.e. mimalloc's.
    unsafe { mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SAFETY: `p` came from mimalloc as above (SQLite never passes null here).
    unsafe { mi_realloc(p, requested(n)) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from mimalloc as above; mi_usable_size also accepts null.
    reported(unsafe { mi_usable_size(p) })
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SAFETY: mi_good_size only computes.
    reported(unsafe { mi_good_size(requested(n)) }).max(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Makes SQLite allocate with mimalloc, process-wide. Returns false, changing nothing,
/// when SQLite refused (it was initialised already).
///
/// # Safety
/// `sqlite3_config` is not thread-safe: call this before any SQLite connection is opened
/// in the process, while no other thread can use SQLite (first thing in `main`).
pub unsafe fn allocate_with_mimalloc() -> bool {
    let methods = sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes one pointer to a `sqlite3_mem_methods`, which
    // SQLite copies before returning; the caller guarantees no other thread is in SQLite.
    // The methods keep SQLite's contract: 8-byte aligned blocks (mimalloc aligns to 16
    // from 16 bytes up, 8 below), xSize of a block at least what was asked for, xRoundup
    // at least its argument. Blocks allocated before (none: SQLite is not initialised,
    // or the call fails and nothing changes) never reach these methods.
    unsafe {
        sqlite3_config(SQLITE_CONFIG_MALLOC, &methods as *const sqlite3_mem_methods) == SQLITE_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_convert_without_wrapping() {
        assert_eq!(requested(-1), 0);
        assert_eq!(requested(24), 24);
        assert_eq!(reported(usize::MAX), c_int::MAX);
        assert_eq!(reported(48), 48);
    }

    #[test]
    fn the_methods_allocate_resize_and_free() {
        // SAFETY: the methods are called as SQLite would: a block from x_malloc is
        // resized by x_realloc and freed once by x_free.
        unsafe {
            let p = x_malloc(100);
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert!(x_size(p) >= 100);
            assert!(x_roundup(100) >= 100);
            let q = x_realloc(p, 5000);
            assert!(!q.is_null());
            assert!(x_size(q) >= 5000);
            x_free(q);
        }
    }
}
