//! The sending queue: a bounded FIFO of batches shared by the queue consumers, kept in
//! memory or, with `storage` set, also in a [`Journal`] on disk. Its capacity is counted
//! in the [`Sizer`]'s unit: batches, spans, or bytes of encoded OTLP.

use super::journal::Journal;
use super::settings::Sizer;
use crate::consumer::ConsumeError;
use crate::telemetry::Gauge;
use crate::traces::Traces;
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Size at which the persistent queue starts a new segment file.
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;

/// A queued batch with its sequence number (its position in the journal when persistent).
#[derive(Debug)]
pub(crate) struct Entry {
    pub seq: u64,
    pub traces: Traces,
    /// Its size in the queue's unit.
    pub size: u64,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Entry>,
    /// Total size of `pending`.
    pending_size: u64,
    /// Pushes that passed the capacity check and are being written to disk.
    reserved: usize,
    /// Total size of those pushes.
    reserved_size: u64,
    closed: bool,
    next_seq: u64,
}

impl State {
    /// Size held or promised.
    fn used(&self) -> u64 {
        self.pending_size + self.reserved_size
    }

    /// Whether a batch of `size` may come in: it fits in what is left, or the queue is
    /// empty (so a batch larger than the whole capacity is not refused forever).
    fn fits(&self, size: u64, capacity: u64) -> bool {
        self.used() == 0 || self.used().saturating_add(size) <= capacity
    }
}

/// Size of `traces` in `sizer` units. Bytes are those of the encoded request: free for a
/// batch still encoded, computed without encoding otherwise.
pub(crate) fn size_of(sizer: Sizer, traces: &mut Traces) -> u64 {
    match sizer {
        Sizer::Requests => 1,
        Sizer::Items => traces.span_count() as u64,
        Sizer::Bytes if traces.is_encoded() => traces.to_encoded().len() as u64,
        Sizer::Bytes => traces.resource_spans().map_or(0, |rs| {
            rs.iter()
                .map(|r| prost::encoding::message::encoded_len(1, r) as u64)
                .sum()
        }),
    }
}

/// The queue. Consumers [`pop`](BatchQueue::pop) entries and report each back with
/// [`finish`](BatchQueue::finish).
pub(crate) struct BatchQueue {
    state: Mutex<State>,
    /// Notified when a batch becomes visible to consumers.
    ready: Notify,
    /// Notified when room may have been made (a batch taken, a push abandoned, closing),
    /// for pushes waiting under `block_on_overflow`.
    room: Notify,
    /// A push that does not fit waits for room instead of failing.
    block_on_overflow: bool,
    capacity: u64,
    sizer: Sizer,
    journal: Option<Mutex<Journal>>,
    size: Arc<Gauge>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn gauge_value(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl BatchQueue {
    /// An in-memory queue holding up to `capacity` (in `sizer` units).
    pub fn in_memory(capacity: usize, sizer: Sizer, size: Arc<Gauge>) -> Self {
        BatchQueue {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Notify::new(),
            block_on_overflow: false,
            capacity: capacity as u64,
            sizer,
            journal: None,
            size,
        }
    }

    /// A queue kept on disk in `dir`, loaded with the batches a previous run left
    /// unacknowledged (all of them, even beyond `capacity`, which then refuses new batches
    /// until the backlog is below it). Sizes are counted as for the in-memory queue; a
    /// stored batch's bytes are its record's payload, the encoded request.
    pub fn persistent(
        dir: &Path,
        capacity: usize,
        sizer: Sizer,
        size: Arc<Gauge>,
        segment_bytes: u64,
    ) -> std::io::Result<Self> {
        let (mut journal, recovered) = Journal::open(dir, segment_bytes)?;
        let mut pending = VecDeque::with_capacity(recovered.len());
        let mut pending_size = 0;
        for record in recovered {
            match Traces::from_encoded(Bytes::from(record.payload)) {
                Ok(mut traces) => {
                    let size = size_of(sizer, &mut traces);
                    pending_size += size;
                    pending.push_back(Entry {
                        seq: record.seq,
                        traces,
                        size,
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        seq = record.seq,
                        error = %e,
                        "persistent queue: dropping a stored batch that is not valid OTLP"
                    );
                    journal.ack(record.seq)?;
                }
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                batches = pending.len(),
                "persistent queue: resending batches left unacknowledged by the previous run"
            );
        }
        size.set(gauge_value(pending_size));
        Ok(BatchQueue {
            state: Mutex::new(State {
                pending,
                pending_size,
                ..State::default()
            }),
            ready: Notify::new(),
            room: Notify::new(),
            block_on_overflow: false,
            capacity: capacity as u64,
            sizer,
            journal: Some(Mutex::new(journal)),
            size,
        })
    }

    /// The same queue, where a push that does not fit waits for room (the collector's
    /// `sending_queue::block_on_overflow`) instead of failing.
    pub fn blocking_on_overflow(mut self, block: bool) -> Self {
        self.block_on_overflow = block;
        self
    }

    /// True when batches are kept on disk.
    pub fn is_persistent(&self) -> bool {
        self.journal.is_some()
    }

    /// Batches waiting for a consumer.
    pub fn len(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Size of what waits for a consumer, in the sizer's unit.
    pub fn size(&self) -> u64 {
        lock(&self.state).pending_size
    }

    /// Why a batch offered now would be refused (full or closed), without taking one. A
    /// queue that blocks on overflow refuses only once closed: a full one makes the push
    /// wait instead.
    pub fn refusal(&self) -> Option<ConsumeError> {
        let state = lock(&self.state);
        if state.closed {
            Some(ConsumeError::retryable(
                "sending queue is closed (shutting down)",
            ))
        } else if state.used() >= self.capacity && !self.block_on_overflow {
            Some(self.full())
        } else {
            None
        }
    }

    /// The refusal of a full queue (retryable: the receiver's client tries again later).
    fn full(&self) -> ConsumeError {
        ConsumeError::retryable(format!(
            "sending queue is full ({} {})",
            self.capacity,
            self.sizer.unit()
        ))
    }

    /// Adds a batch, or fails with a retryable error when the queue is closed or the
    /// batch does not fit; with `block_on_overflow` a batch that does not fit waits until
    /// it does (or the queue closes). Once this returns `Ok` the batch is durable
    /// (persistent queue). Cancelling a waiting push leaves the queue unchanged.
    pub async fn push(self: &Arc<Self>, mut traces: Traces) -> Result<(), ConsumeError> {
        let size = size_of(self.sizer, &mut traces);
        loop {
            // Registered before the check, so room made after it is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if state.closed {
                    return Err(ConsumeError::retryable(
                        "sending queue is closed (shutting down)",
                    ));
                }
                if state.fits(size, self.capacity) {
                    state.reserved += 1;
                    state.reserved_size += size;
                    break;
                }
                if !self.block_on_overflow {
                    return Err(self.full());
                }
            }
            room.await;
        }
        if self.journal.is_none() {
            self.publish(Ok(None), traces, size);
            return Ok(());
        }
        // The write runs to completion even if the caller goes away, so the
        // reservation is always released.
        let queue = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let written = match &queue.journal {
                Some(journal) => lock(journal).append(&traces.to_encoded()).map(Some),
                None => Ok(None),
            };
            let result = written
                .as_ref()
                .map(|_| ())
                .map_err(|e| ConsumeError::retryable(format!("sending queue storage: {e}")));
            queue.publish(written, traces, size);
            result
        })
        .await
        .map_err(|e| ConsumeError::retryable(format!("sending queue storage: {e}")))?
    }

    /// Ends a push: releases the reservation and, when the write succeeded, makes the
    /// batch visible to consumers.
    fn publish(&self, written: std::io::Result<Option<u64>>, traces: Traces, size: u64) {
        let mut state = lock(&self.state);
        state.reserved -= 1;
        state.reserved_size -= size;
        if let Ok(seq) = written {
            let seq = seq.unwrap_or(state.next_seq);
            state.next_seq = state.next_seq.max(seq + 1);
            state.pending.push_back(Entry { seq, traces, size });
            state.pending_size += size;
            self.size.set(gauge_value(state.pending_size));
            self.ready.notify_one();
        }
        if written.is_err() {
            self.room.notify_waiters();
        }
        if state.closed && state.reserved == 0 {
            self.ready.notify_waiters();
        }
    }

    /// Waits for the next batch; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<Entry> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if let Some(entry) = state.pending.pop_front() {
                    state.pending_size -= entry.size;
                    self.size.set(gauge_value(state.pending_size));
                    self.room.notify_waiters();
                    if !state.pending.is_empty() {
                        // Another consumer may be idle while more is waiting.
                        self.ready.notify_one();
                    }
                    return Some(entry);
                }
                if state.closed && state.reserved == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Reports a popped batch done: `remove` deletes it for good (sent, or given up on);
    /// otherwise it stays on disk for the next run (persistent queue only).
    pub async fn finish(self: &Arc<Self>, seq: u64, remove: bool) {
        if !remove || self.journal.is_none() {
            return;
        }
        let queue = Arc::clone(self);
        let acked = tokio::task::spawn_blocking(move || match &queue.journal {
            Some(journal) => lock(journal).ack(seq),
            None => Ok(()),
        })
        .await;
        let error = match acked {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(
            seq,
            error = %error,
            "persistent queue: cannot record an acknowledgement; the batch will be sent again after a restart"
        );
    }

    /// Stops taking batches; consumers drain what is left, then `pop` returns `None`.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_waiters();
        self.room.notify_waiters();
    }

    /// Batches on disk not yet acknowledged (persistent queue), for tests.
    #[cfg(test)]
    pub fn unacked(&self) -> usize {
        self.journal.as_ref().map_or(0, |j| lock(j).unacked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn batch(spans: usize) -> Traces {
        Traces::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: format!("s{i}"),
                        ..Span::default()
                    })
                    .collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }])
    }

    #[tokio::test]
    async fn full_queue_refuses_with_a_retryable_error() {
        let gauge = Arc::new(Gauge::default());
        let q = Arc::new(BatchQueue::in_memory(2, Sizer::Requests, gauge.clone()));
        q.push(batch(1)).await.unwrap();
        q.push(batch(1)).await.unwrap();
        assert_eq!(gauge.get(), 2);
        let err = q.push(batch(1)).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.message().contains("full"));
        let first = q.pop().await.unwrap();
        assert_eq!(first.seq, 0);
        assert_eq!(gauge.get(), 1);
        q.push(batch(1)).await.unwrap();
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let q = Arc::new(BatchQueue::in_memory(10, Sizer::Requests, Arc::default()));
        q.push(batch(1)).await.unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while q.pop().await.is_some() {
                    n += 1;
                }
                n
            })
        };
        tokio::task::yield_now().await;
        q.push(batch(2)).await.unwrap();
        q.close();
        assert!(q.push(batch(1)).await.is_err());
        assert_eq!(waiter.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn persistent_queue_reloads_what_was_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Arc::new(
                BatchQueue::persistent(
                    dir.path(),
                    10,
                    Sizer::Requests,
                    Arc::default(),
                    SEGMENT_BYTES,
                )
                .unwrap(),
            );
            for n in 1..=3 {
                q.push(batch(n)).await.unwrap();
            }
            let a = q.pop().await.unwrap();
            let b = q.pop().await.unwrap();
            q.finish(a.seq, true).await;
            q.finish(b.seq, false).await;
            assert_eq!(q.unacked(), 2);
        }
        let q = BatchQueue::persistent(
            dir.path(),
            10,
            Sizer::Requests,
            Arc::default(),
            SEGMENT_BYTES,
        )
        .unwrap();
        assert_eq!(q.len(), 2);
        let spans: Vec<usize> = lock(&q.state)
            .pending
            .iter()
            .map(|e| e.traces.span_count())
            .collect();
        assert_eq!(spans, vec![2, 3]);
    }

    #[tokio::test]
    async fn items_sizer_counts_spans() {
        let gauge = Arc::new(Gauge::default());
        let q = Arc::new(BatchQueue::in_memory(10, Sizer::Items, gauge.clone()));
        q.push(batch(4)).await.unwrap();
        q.push(batch(5)).await.unwrap();
        assert_eq!((q.size(), gauge.get()), (9, 9));
        assert!(q.refusal().is_none(), "one span of room left");
        let err = q.push(batch(2)).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.message().contains("full (10 spans)"), "{err}");
        q.push(batch(1)).await.unwrap();
        let err = q.refusal().expect("full: admit refuses");
        assert!(err.is_retryable());
        let first = q.pop().await.unwrap();
        assert_eq!((first.size, q.size(), gauge.get()), (4, 6, 6));
        assert!(q.refusal().is_none());
        q.push(batch(4)).await.unwrap();
        assert_eq!(q.size(), 10);
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_queue_waits_for_it_to_be_empty() {
        let q = Arc::new(BatchQueue::in_memory(3, Sizer::Items, Arc::default()));
        q.push(batch(1)).await.unwrap();
        assert!(q.push(batch(5)).await.is_err());
        q.pop().await.unwrap();
        q.push(batch(5)).await.unwrap();
        assert_eq!(q.size(), 5);
        assert!(q.refusal().is_some());
        assert!(q.push(batch(1)).await.is_err());
    }

    #[tokio::test]
    async fn bytes_sizer_counts_the_encoded_request() {
        let mut decoded = batch(3);
        let encoded_len = decoded.to_encoded().len() as u64;
        assert_eq!(size_of(Sizer::Bytes, &mut decoded), encoded_len);
        assert!(!decoded.is_encoded(), "sizing does not encode");
        let mut encoded = Traces::from_encoded(batch(3).to_encoded()).unwrap();
        assert_eq!(size_of(Sizer::Bytes, &mut encoded), encoded_len);

        let cap = (encoded_len * 2 + encoded_len / 2) as usize;
        let q = Arc::new(BatchQueue::in_memory(cap, Sizer::Bytes, Arc::default()));
        q.push(batch(3)).await.unwrap();
        q.push(encoded.clone()).await.unwrap();
        assert_eq!(q.size(), 2 * encoded_len);
        let err = q.push(batch(3)).await.unwrap_err();
        assert!(err.message().contains("bytes"), "{err}");
        q.pop().await.unwrap();
        q.push(batch(3)).await.unwrap();
    }

    #[tokio::test]
    async fn persistent_queue_counts_reloaded_batches_in_its_unit() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(4).to_encoded().len() as u64;
        {
            let q = Arc::new(
                BatchQueue::persistent(
                    dir.path(),
                    1 << 20,
                    Sizer::Bytes,
                    Arc::default(),
                    SEGMENT_BYTES,
                )
                .unwrap(),
            );
            for _ in 0..3 {
                q.push(batch(4)).await.unwrap();
            }
        }
        // Reloaded beyond a smaller capacity: refused until drained below it.
        let gauge = Arc::new(Gauge::default());
        let cap = (one * 2) as usize;
        let q = Arc::new(
            BatchQueue::persistent(dir.path(), cap, Sizer::Bytes, gauge.clone(), SEGMENT_BYTES)
                .unwrap(),
        );
        assert_eq!(
            (q.len(), q.size(), gauge.get()),
            (3, 3 * one, (3 * one) as i64)
        );
        assert!(q.refusal().is_some());
        assert!(q.push(batch(4)).await.is_err());
        let a = q.pop().await.unwrap();
        q.finish(a.seq, true).await;
        assert!(
            q.push(batch(4)).await.is_err(),
            "still full at 2 of 2 batches"
        );
        q.pop().await.unwrap();
        q.push(batch(4)).await.unwrap();
        let items = BatchQueue::persistent(
            tempfile::tempdir().unwrap().path(),
            10,
            Sizer::Items,
            Arc::default(),
            SEGMENT_BYTES,
        )
        .unwrap();
        assert_eq!(items.size(), 0);
    }
}
