//! The [`Sender`] behind the exporter helper: installs the index template, encodes a
//! batch into `_bulk` documents, hands them to the shared [`BulkBuffer`], and resends
//! only the documents Elasticsearch answered 429 or 5xx for.

use super::buffer::{BulkBuffer, Outcome};
use super::bulk::{classify, BulkChunk, BulkEncoder, ItemOutcome, ItemResult};
use super::client::{EsClient, Unavailable};
use super::config::{BulkRetrySettings, ElasticsearchConfig};
use super::document::DataStream;
use super::template;
use async_trait::async_trait;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use teletrace_core::exporter_helper::Sender;
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{ComponentError, ConsumeError, Host, Lifecycle, Traces};

/// Documents processed, by outcome (the collector's `otelcol.elasticsearch.docs.processed`).
pub const METRIC_DOCS_PROCESSED: &str = "otelcol_elasticsearch_docs_processed";

/// Bulk requests sent (the collector's `otelcol.elasticsearch.bulk_requests.count`).
pub const METRIC_BULK_REQUESTS: &str = "otelcol_elasticsearch_bulk_requests_count";

/// Reasons kept per send for the log and the error message.
const MAX_REASONS: usize = 5;

struct Counters {
    stored: Arc<Counter>,
    too_many: Arc<Counter>,
    failed_server: Arc<Counter>,
    failed_client: Arc<Counter>,
    requests: Arc<Counter>,
}

impl Counters {
    fn new(metrics: &Metrics, exporter: &str) -> Self {
        let docs = |outcome: &str| {
            metrics.counter(
                METRIC_DOCS_PROCESSED,
                "Documents sent to Elasticsearch, by outcome.",
                &[("exporter", exporter), ("outcome", outcome)],
            )
        };
        Counters {
            stored: docs("success"),
            too_many: docs("too_many"),
            failed_server: docs("failed_server"),
            failed_client: docs("failed_client"),
            requests: metrics.counter(
                METRIC_BULK_REQUESTS,
                "Bulk requests sent to Elasticsearch.",
                &[("exporter", exporter)],
            ),
        }
    }
}

/// Sends batches to Elasticsearch with the `_bulk` API.
pub struct ElasticsearchSender {
    id: String,
    client: Arc<EsClient>,
    encoder: BulkEncoder,
    flush_bytes: usize,
    retry: BulkRetrySettings,
    buffer: Arc<BulkBuffer>,
    template_enabled: bool,
    template_name: String,
    template_body: Bytes,
    template_installed: AtomicBool,
    template_lock: tokio::sync::Mutex<()>,
    counters: Counters,
}

/// How one body fared.
#[derive(Default)]
struct ChunkResult {
    /// Positions in the batch of spans with a document refused for good.
    rejected_spans: BTreeSet<usize>,
    /// Documents refused for good.
    rejected_docs: u64,
    /// A few distinct reasons.
    reasons: Vec<String>,
    /// Set when documents are still failing with 429/5xx (or no node answered) after
    /// every request `retry` allows.
    retryable: Option<String>,
}

impl ChunkResult {
    fn reason(&mut self, reason: String) {
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

impl ElasticsearchSender {
    /// Builds the sender; `Err` names the config key at fault.
    pub fn new(
        id: &str,
        config: &ElasticsearchConfig,
        metrics: &Metrics,
    ) -> Result<Self, (String, String)> {
        let client = Arc::new(super::client::build(config)?);
        let counters = Counters::new(metrics, id);
        let buffer = Arc::new(BulkBuffer::new(
            Arc::clone(&client),
            config.flush.bytes,
            config.flush.interval,
            config.workers(),
            Arc::clone(&counters.requests),
        ));
        let index = config.index();
        let body = template::body(
            config.mapping.mode,
            index,
            DataStream::parse(index).is_some(),
        );
        Ok(ElasticsearchSender {
            id: id.to_string(),
            client,
            encoder: BulkEncoder::new(config.mapping.mode, index),
            flush_bytes: config.flush.bytes,
            retry: config.retry.clone(),
            buffer,
            template_enabled: config.index_template.enabled,
            template_name: config.template_name(),
            template_body: Bytes::from(body.to_string()),
            template_installed: AtomicBool::new(!config.index_template.enabled),
            template_lock: tokio::sync::Mutex::new(()),
            counters,
        })
    }

    /// Installs the index template. `Ok(false)` when no node could be reached (try again
    /// later); `Err` when Elasticsearch refused it.
    async fn install_template(&self) -> Result<bool, String> {
        if self.template_installed.load(Ordering::Acquire) {
            return Ok(true);
        }
        let _guard = self.template_lock.lock().await;
        if self.template_installed.load(Ordering::Acquire) {
            return Ok(true);
        }
        let path = format!("/_index_template/{}", self.template_name);
        match self
            .client
            .request(
                Method::PUT,
                &path,
                "application/json",
                self.template_body.clone(),
            )
            .await
        {
            Ok(answer) if answer.status.is_success() => {
                tracing::info!(exporter = %self.id, template = %self.template_name, node = %answer.node, "index template installed");
                self.template_installed.store(true, Ordering::Release);
                Ok(true)
            }
            Ok(answer) if answer.status.is_server_error() || answer.status == 429 => {
                tracing::warn!(exporter = %self.id, status = %answer.status, "index template not installed yet");
                Ok(false)
            }
            Ok(answer) => Err(format!(
                "Elasticsearch refused index template {:?}: {} {}",
                self.template_name,
                answer.status,
                error_reason(&answer.body)
            )),
            Err(Unavailable(e)) => {
                tracing::warn!(exporter = %self.id, error = %e, "index template not installed yet; will retry before the first bulk request");
                Ok(false)
            }
        }
    }

    /// Sends one body, resending the documents answered 429/5xx up to
    /// `retry::max_requests` requests in all.
    async fn send_chunk(&self, chunk: BulkChunk) -> ChunkResult {
        let mut result = ChunkResult::default();
        let max_requests = if self.retry.enabled {
            self.retry.max_requests.max(1)
        } else {
            1
        };
        let mut pending = chunk;
        let mut wait = self.retry.initial_interval;
        for request in 1..=max_requests {
            let last = request == max_requests;
            let retry_positions: Vec<usize> = match self.buffer.submit(&pending).await {
                Outcome::Unavailable(e) | Outcome::Unreadable(e) => {
                    result.retryable = Some(e);
                    (0..pending.items.len()).collect()
                }
                Outcome::Refused {
                    status,
                    node,
                    reason,
                } if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
                    result.retryable = Some(format!("{node} answered {status} {reason}"));
                    (0..pending.items.len()).collect()
                }
                Outcome::Refused { status, reason, .. } => {
                    // The request itself is refused (auth, too large, bad body): no
                    // document of it can go in by sending it again.
                    for item in &pending.items {
                        result.rejected_spans.insert(item.span);
                    }
                    result.rejected_docs += pending.items.len() as u64;
                    self.counters.failed_client.add(pending.items.len() as u64);
                    result.reason(format!("{status} {reason}"));
                    result.retryable = None;
                    return result;
                }
                Outcome::AllStored => {
                    self.counters.stored.add(pending.items.len() as u64);
                    result.retryable = None;
                    Vec::new()
                }
                Outcome::Items(answers) => match self.read_items(&answers, &pending, &mut result) {
                    Ok(retry) => {
                        result.retryable = (!retry.is_empty()).then(|| {
                            format!(
                                "{} documents answered 429/5xx after {request} bulk requests",
                                retry.len()
                            )
                        });
                        retry
                    }
                    Err(e) => {
                        result.retryable = Some(e);
                        (0..pending.items.len()).collect()
                    }
                },
            };
            if retry_positions.is_empty() || last {
                break;
            }
            pending = if retry_positions.len() == pending.items.len() {
                pending
            } else {
                pending.subset(&retry_positions)
            };
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry.max_interval);
        }
        result
    }

    /// Reads the per-document answers (those of `chunk`'s documents, in order); returns
    /// the positions (in `chunk`) to resend.
    fn read_items(
        &self,
        answers: &[ItemResult],
        chunk: &BulkChunk,
        result: &mut ChunkResult,
    ) -> Result<Vec<usize>, String> {
        if answers.len() != chunk.items.len() {
            return Err(format!(
                "_bulk answer lists {} items for {} documents",
                answers.len(),
                chunk.items.len()
            ));
        }
        let uses_create = self.encoder.uses_create();
        let mut retry = Vec::new();
        for (position, (item, answer)) in chunk.items.iter().zip(answers).enumerate() {
            match classify(answer.status, uses_create) {
                ItemOutcome::Stored => self.counters.stored.add(1),
                ItemOutcome::Retry => {
                    if answer.status == 429 {
                        self.counters.too_many.add(1);
                    } else {
                        self.counters.failed_server.add(1);
                    }
                    retry.push(position);
                }
                ItemOutcome::Rejected => {
                    self.counters.failed_client.add(1);
                    result.rejected_docs += 1;
                    result.rejected_spans.insert(item.span);
                    result.reason(answer.reason());
                }
            }
        }
        Ok(retry)
    }
}

/// `type: reason` of an Elasticsearch error answer, or the start of the body.
pub(crate) fn error_reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(e) = v.get("error") {
            if let Some(s) = e.as_str() {
                return s.to_string();
            }
            let kind = e.get("type").and_then(|t| t.as_str()).unwrap_or("error");
            let reason = e.get("reason").and_then(|t| t.as_str()).unwrap_or("");
            return format!("{kind}: {reason}");
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[async_trait]
impl Lifecycle for ElasticsearchSender {
    /// Installs the index template. An unreachable cluster does not stop the start (the
    /// template is installed before the first bulk request instead); a refusal does.
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        if !self.template_enabled {
            return Ok(());
        }
        self.install_template()
            .await
            .map(|_| ())
            .map_err(ComponentError::new)
    }

    /// Sends what waits in the bulk buffer (after `stopping`, nothing is held back).
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.buffer.drain();
        Ok(())
    }
}

#[async_trait]
impl Sender for ElasticsearchSender {
    /// Shutdown has begun: the bulk buffer stops waiting for `flush::interval`.
    fn stopping(&self) {
        self.buffer.drain();
    }

    async fn send(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        match self.install_template().await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ConsumeError::retryable(
                    "Elasticsearch unreachable: index template not installed yet",
                ))
            }
            Err(e) => return Err(ConsumeError::retryable(e)),
        }
        let total = traces.span_count();
        let resource_spans = traces.into_resource_spans()?;
        let chunks = self
            .encoder
            .encode(&resource_spans, now_ns(), self.flush_bytes);
        drop(resource_spans);
        let mut rejected_spans = BTreeSet::new();
        let mut rejected_docs = 0;
        let mut reasons: Vec<String> = Vec::new();
        let mut retryable = None;
        for chunk in chunks {
            let r = self.send_chunk(chunk).await;
            rejected_spans.extend(r.rejected_spans);
            rejected_docs += r.rejected_docs;
            for reason in r.reasons {
                if reasons.len() < MAX_REASONS && !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            if retryable.is_none() {
                retryable = r.retryable;
            }
        }
        if !reasons.is_empty() {
            tracing::warn!(
                exporter = %self.id,
                documents = rejected_docs,
                spans = rejected_spans.len(),
                reasons = %reasons.join(" | "),
                "Elasticsearch refused documents"
            );
        }
        if let Some(message) = retryable {
            // The helper resends the whole batch; `_id`s make that overwrite what went in.
            return Err(ConsumeError::retryable(message));
        }
        if rejected_spans.is_empty() {
            return Ok(());
        }
        let message = format!(
            "Elasticsearch refused {rejected_docs} documents: {}",
            reasons.join(" | ")
        );
        if rejected_spans.len() >= total {
            Err(ConsumeError::permanent(message))
        } else {
            Err(ConsumeError::PartiallyRejected {
                rejected_spans: rejected_spans.len() as u64,
                message,
            })
        }
    }
}
