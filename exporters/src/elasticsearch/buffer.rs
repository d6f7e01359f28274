//! The bulk buffer all sends share (the collector's bulk indexer with `flush::bytes` and
//! `flush::interval`): documents from concurrent sends gather into one `_bulk` body,
//! which is sent once it reaches `flush::bytes` or once `flush::interval` has passed
//! since its first document. Each send waits for the request carrying its documents and
//! gets that request's answer for its own documents only.

use super::bulk::{BulkChunk, BulkResponse, ItemResult};
use super::client::{EsClient, Unavailable};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use teletrace_core::telemetry::Counter;
use tokio::sync::{oneshot, Semaphore};

/// `filter_path` of bulk requests: Elasticsearch answers with only what is read.
pub(crate) const BULK_PATH: &str =
    "/_bulk?filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason";

/// What the bulk request carrying a send's documents came to, for those documents.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No node answered.
    Unavailable(String),
    /// The request as a whole was answered with a non-2xx status.
    Refused {
        /// The status.
        status: StatusCode,
        /// Who answered.
        node: String,
        /// `type: reason` from the body.
        reason: String,
    },
    /// Answered 2xx with `errors: false`: every document is stored.
    AllStored,
    /// Answered 2xx with errors: the answer for each of the send's documents, in order.
    Items(Vec<ItemResult>),
    /// The answer could not be read (or did not list every document).
    Unreadable(String),
}

/// One send's share of the buffer: its documents and where to answer.
struct Share {
    items: Range<usize>,
    reply: oneshot::Sender<Outcome>,
}

/// The body being filled.
#[derive(Default)]
struct Pending {
    body: Vec<u8>,
    documents: usize,
    shares: Vec<Share>,
    /// Bumped each time a body is taken, so a timer set for an earlier body does nothing.
    generation: u64,
}

/// The shared buffer. Cheap to share behind an `Arc`.
pub(crate) struct BulkBuffer {
    client: Arc<EsClient>,
    flush_bytes: usize,
    interval: Duration,
    workers: Semaphore,
    requests: Arc<Counter>,
    pending: Mutex<Pending>,
    /// Set at shutdown: bodies are sent at once instead of waiting for the interval.
    draining: AtomicBool,
}

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BulkBuffer {
    /// A buffer sending through `client`, at most `workers` requests at once, counting
    /// each request in `requests`.
    pub fn new(
        client: Arc<EsClient>,
        flush_bytes: usize,
        interval: Duration,
        workers: usize,
        requests: Arc<Counter>,
    ) -> Self {
        BulkBuffer {
            client,
            flush_bytes: flush_bytes.max(1),
            interval,
            workers: Semaphore::new(workers.max(1)),
            requests,
            pending: Mutex::new(Pending::default()),
            draining: AtomicBool::new(false),
        }
    }

    /// Adds `chunk`'s documents to the body being filled and waits for the answer to the
    /// request that carries them.
    pub async fn submit(self: &Arc<Self>, chunk: &BulkChunk) -> Outcome {
        if chunk.items.is_empty() {
            return Outcome::AllStored;
        }
        let (reply, answer) = oneshot::channel();
        let full = {
            let mut pending = lock(&self.pending);
            if pending.shares.is_empty() && !self.draining.load(Ordering::Acquire) {
                self.start_timer(pending.generation);
            }
            let first = pending.documents;
            pending.body.extend_from_slice(&chunk.body);
            pending.documents += chunk.items.len();
            let items = first..pending.documents;
            pending.shares.push(Share { items, reply });
            if pending.body.len() >= self.flush_bytes || self.draining.load(Ordering::Acquire) {
                Some(take(&mut pending))
            } else {
                None
            }
        };
        if let Some(body) = full {
            self.send(body);
        }
        answer.await.unwrap_or_else(|_| {
            Outcome::Unavailable("the bulk request was abandoned (shutting down)".into())
        })
    }

    /// Sends what is buffered now and from here on sends every body at once (shutdown).
    pub fn drain(self: &Arc<Self>) {
        self.draining.store(true, Ordering::Release);
        let body = {
            let mut pending = lock(&self.pending);
            (!pending.shares.is_empty()).then(|| take(&mut pending))
        };
        if let Some(body) = body {
            self.send(body);
        }
    }

    /// After `interval`, sends the body of `generation` if it is still the one filling.
    fn start_timer(self: &Arc<Self>, generation: u64) {
        let buffer = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(buffer.interval).await;
            let body = {
                let mut pending = lock(&buffer.pending);
                (pending.generation == generation && !pending.shares.is_empty())
                    .then(|| take(&mut pending))
            };
            if let Some(body) = body {
                buffer.send(body);
            }
        });
    }

    /// Sends a taken body in its own task (so no send's cancellation stops it) and
    /// answers each share.
    fn send(self: &Arc<Self>, taken: Taken) {
        let buffer = Arc::clone(self);
        tokio::spawn(async move {
            let answer = {
                let _permit = buffer.workers.acquire().await;
                buffer.requests.add(1);
                buffer
                    .client
                    .request(
                        Method::POST,
                        BULK_PATH,
                        "application/x-ndjson",
                        Bytes::from(taken.body),
                    )
                    .await
            };
            distribute(answer, taken.documents, taken.shares);
        });
    }
}

/// A body taken out of the buffer, ready to send.
struct Taken {
    body: Vec<u8>,
    documents: usize,
    shares: Vec<Share>,
}

fn take(pending: &mut Pending) -> Taken {
    pending.generation += 1;
    Taken {
        body: std::mem::take(&mut pending.body),
        documents: std::mem::take(&mut pending.documents),
        shares: std::mem::take(&mut pending.shares),
    }
}

/// Answers every share from the request's answer.
fn distribute(
    answer: Result<super::client::Answer, Unavailable>,
    documents: usize,
    shares: Vec<Share>,
) {
    let answer = match answer {
        Err(Unavailable(e)) => return answer_all(shares, || Outcome::Unavailable(e.clone())),
        Ok(answer) => answer,
    };
    if !answer.status.is_success() {
        let reason = super::sender::error_reason(&answer.body);
        return answer_all(shares, || Outcome::Refused {
            status: answer.status,
            node: answer.node.clone(),
            reason: reason.clone(),
        });
    }
    let response: BulkResponse = match serde_json::from_slice(&answer.body) {
        Ok(r) => r,
        Err(e) => {
            let e = format!("unreadable _bulk answer from {}: {e}", answer.node);
            return answer_all(shares, || Outcome::Unreadable(e.clone()));
        }
    };
    if !response.errors {
        return answer_all(shares, || Outcome::AllStored);
    }
    if response.items.len() != documents {
        let e = format!(
            "_bulk answer from {} lists {} items for {documents} documents",
            answer.node,
            response.items.len()
        );
        return answer_all(shares, || Outcome::Unreadable(e.clone()));
    }
    let mut items = response.items.into_iter();
    for share in shares {
        let mine: Option<Vec<ItemResult>> = items
            .by_ref()
            .take(share.items.len())
            .map(|item| item.into_values().next())
            .collect();
        let outcome = match mine {
            Some(mine) => Outcome::Items(mine),
            None => Outcome::Unreadable("_bulk answer has an empty item".into()),
        };
        // The send may have given up (timeout); its documents went in regardless.
        let _ = share.reply.send(outcome);
    }
}

fn answer_all(shares: Vec<Share>, outcome: impl Fn() -> Outcome) {
    for share in shares {
        let _ = share.reply.send(outcome());
    }
}
