//! Large byte buffers kept between uses: the query API writes a trace's JSON (a megabyte
//! and more for a large trace) into one, and the store its rows into another.
//!
//! Why: the binary's allocator hands freed memory back to the system at once
//! ([`crate::allocator`]), so a fresh buffer of a megabyte takes a page fault, and a
//! page zeroed by the kernel, for every 4 KiB written, and as many again for each
//! doubling on the way; on `GET /v1/trace/{id}` of 2,000 spans that was 15% of the
//! time (BENCHMARKS.md). A buffer taken from here keeps its pages from the last use.
//!
//! What it holds: at most [`MAX_KEPT`] buffers of at most [`MAX_KEPT_CAPACITY`] bytes
//! each, so the memory kept stays small and bounded; a larger buffer is freed when
//! dropped, as any other.

use bytes::Bytes;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// How many buffers the pool keeps: enough for a few reads at once, each of which uses
/// two.
pub const MAX_KEPT: usize = 4;

/// The largest buffer the pool keeps, in bytes.
pub const MAX_KEPT_CAPACITY: usize = 8 << 20;

/// The buffers given back, empty, their capacity kept.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer from the pool (the largest kept), or a new one when none is kept. It
/// goes back to the pool when dropped.
pub fn take() -> PooledBuffer {
    let kept = KEPT.lock().ok().and_then(|mut kept| kept.pop());
    PooledBuffer(kept.unwrap_or_default())
}

/// A byte buffer that goes back to the pool when dropped (if it is no larger than
/// [`MAX_KEPT_CAPACITY`] and the pool has room). Used as a `Vec<u8>` through `Deref`.
#[derive(Debug, Default)]
pub struct PooledBuffer(Vec<u8>);

impl PooledBuffer {
    /// The buffer as the body of a response: the bytes are not copied, and the buffer
    /// goes back to the pool when the last clone of the `Bytes` is dropped (once sent).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for PooledBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let capacity = self.0.capacity();
        if capacity == 0 || capacity > MAX_KEPT_CAPACITY {
            return;
        }
        let Ok(mut kept) = KEPT.lock() else {
            return;
        };
        if kept.len() < MAX_KEPT {
            let mut buffer = std::mem::take(&mut self.0);
            buffer.clear();
            // Largest last, so `take` hands out the largest: the one most likely to
            // hold a large trace without growing.
            let at = kept.partition_point(|b| b.capacity() <= capacity);
            kept.insert(at, buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool is shared by every test in this binary; this is the only one that uses
    /// it, so what it takes is what it gave back.
    #[test]
    fn buffers_come_back_emptied_and_only_up_to_the_limits() {
        KEPT.lock().unwrap().clear();

        let mut first = take();
        first.extend_from_slice(&[7; 100_000]);
        let capacity = first.capacity();
        let bytes = first.into_bytes();
        assert_eq!(bytes.len(), 100_000);
        assert_eq!(
            KEPT.lock().unwrap().len(),
            0,
            "kept while the bytes are alive"
        );
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(KEPT.lock().unwrap().len(), 0, "kept while a clone is alive");
        drop(clone);

        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity, "the same buffer, capacity kept");
        drop(again);

        // Too large to keep.
        let mut large = take();
        large.reserve(MAX_KEPT_CAPACITY + 1);
        drop(large);
        assert_eq!(KEPT.lock().unwrap().len(), 0);

        // No more than MAX_KEPT, the largest handed out first.
        let buffers: Vec<PooledBuffer> = (1..=MAX_KEPT + 2)
            .map(|n| {
                let mut b = take();
                b.reserve_exact(n * 1000);
                b
            })
            .collect();
        let capacities: Vec<usize> = buffers.iter().map(|b| b.capacity()).collect();
        drop(buffers);
        let kept: Vec<usize> = KEPT.lock().unwrap().iter().map(Vec::capacity).collect();
        assert_eq!(kept.len(), MAX_KEPT);
        assert_eq!(kept, capacities[..MAX_KEPT].to_vec());
        assert_eq!(take().capacity(), capacities[MAX_KEPT - 1]);
        KEPT.lock().unwrap().clear();
    }
}
