//! The sending queue: a bounded FIFO of batches shared by the queue consumers, kept in
//! memory or, with `storage` set, also in a [`Journal`] on disk.

use super::journal::Journal;
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
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Entry>,
    /// Pushes that passed the capacity check and are being written to disk.
    reserved: usize,
    closed: bool,
    next_seq: u64,
}

/// The queue. Consumers [`pop`](BatchQueue::pop) entries and report each back with
/// [`finish`](BatchQueue::finish).
pub(crate) struct BatchQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    journal: Option<Mutex<Journal>>,
    size: Arc<Gauge>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BatchQueue {
    /// An in-memory queue holding up to `capacity` batches.
    pub fn in_memory(capacity: usize, size: Arc<Gauge>) -> Self {
        BatchQueue {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            capacity,
            journal: None,
            size,
        }
    }

    /// A queue kept on disk in `dir`, loaded with the batches a previous run left
    /// unacknowledged (all of them, even beyond `capacity`).
    pub fn persistent(
        dir: &Path,
        capacity: usize,
        size: Arc<Gauge>,
        segment_bytes: u64,
    ) -> std::io::Result<Self> {
        let (mut journal, recovered) = Journal::open(dir, segment_bytes)?;
        let mut pending = VecDeque::with_capacity(recovered.len());
        for record in recovered {
            match Traces::from_encoded(Bytes::from(record.payload)) {
                Ok(traces) => pending.push_back(Entry {
                    seq: record.seq,
                    traces,
                }),
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
        size.set(pending.len() as i64);
        Ok(BatchQueue {
            state: Mutex::new(State {
                pending,
                ..State::default()
            }),
            ready: Notify::new(),
            capacity,
            journal: Some(Mutex::new(journal)),
            size,
        })
    }

    /// True when batches are kept on disk.
    pub fn is_persistent(&self) -> bool {
        self.journal.is_some()
    }

    /// Batches waiting for a consumer.
    pub fn len(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Why a batch offered now would be refused (full or closed), without taking one.
    pub fn refusal(&self) -> Option<ConsumeError> {
        let state = lock(&self.state);
        if state.closed {
            Some(ConsumeError::retryable(
                "sending queue is closed (shutting down)",
            ))
        } else if state.pending.len() + state.reserved >= self.capacity {
            Some(ConsumeError::retryable("sending queue is full"))
        } else {
            None
        }
    }

    /// Adds a batch, or fails with a retryable error when the queue is full or closed.
    /// Once this returns `Ok` the batch is durable (persistent queue).
    pub async fn push(self: &Arc<Self>, traces: Traces) -> Result<(), ConsumeError> {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(ConsumeError::retryable(
                    "sending queue is closed (shutting down)",
                ));
            }
            if state.pending.len() + state.reserved >= self.capacity {
                return Err(ConsumeError::retryable("sending queue is full"));
            }
            state.reserved += 1;
        }
        if self.journal.is_none() {
            self.publish(Ok(None), traces);
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
            queue.publish(written, traces);
            result
        })
        .await
        .map_err(|e| ConsumeError::retryable(format!("sending queue storage: {e}")))?
    }

    /// Ends a push: releases the reservation and, when the write succeeded, makes the
    /// batch visible to consumers.
    fn publish(&self, written: std::io::Result<Option<u64>>, traces: Traces) {
        let mut state = lock(&self.state);
        state.reserved -= 1;
        if let Ok(seq) = written {
            let seq = seq.unwrap_or(state.next_seq);
            state.next_seq = state.next_seq.max(seq + 1);
            state.pending.push_back(Entry { seq, traces });
            self.size.set(state.pending.len() as i64);
            self.ready.notify_one();
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
                    self.size.set(state.pending.len() as i64);
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
        let q = Arc::new(BatchQueue::in_memory(2, gauge.clone()));
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
        let q = Arc::new(BatchQueue::in_memory(10, Arc::default()));
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
                BatchQueue::persistent(dir.path(), 10, Arc::default(), SEGMENT_BYTES).unwrap(),
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
        let q = BatchQueue::persistent(dir.path(), 10, Arc::default(), SEGMENT_BYTES).unwrap();
        assert_eq!(q.len(), 2);
        let spans: Vec<usize> = lock(&q.state)
            .pending
            .iter()
            .map(|e| e.traces.span_count())
            .collect();
        assert_eq!(spans, vec![2, 3]);
    }
}
