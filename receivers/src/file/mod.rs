//! The `file` receiver: replays what the `file` exporter wrote (OTLP/JSON lines or
//! length-prefixed protobuf, optionally zstd, rotated files included), optionally
//! following the file as it grows. See `README.md` in this folder.

pub mod config;
pub mod reader;

pub use config::{FileReceiverConfig, Format, StartAt};
pub use reader::{ReadError, Tail};

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{
    BuildContext, ComponentError, ConsumeError, ConsumerRef, FactoryRef, Host, Lifecycle, Receiver,
    ReceiverFactory, Registration, Stability, Traces,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Builds `file` receivers.
pub struct FileReceiverFactory;

impl ReceiverFactory for FileReceiverFactory {
    type Config = FileReceiverConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: FileReceiverConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Receiver>, ComponentError> {
        Ok(Arc::new(FileReceiver::new(
            &ctx.id.to_string(),
            config,
            &ctx.metrics,
            next,
        )))
    }
}

inventory::submit! {
    Registration {
        type_name: "file",
        aliases: &[],
        stability: Stability::Alpha,
        description: "replays files written by the file exporter (JSON lines or length-prefixed protobuf, zstd, rotated files), optionally following them",
        capabilities: &[],
        factory: FactoryRef::Receiver(&FileReceiverFactory),
    }
}

/// Reads files into a pipeline.
pub struct FileReceiver {
    id: String,
    config: FileReceiverConfig,
    next: ConsumerRef,
    accepted: Arc<Counter>,
    refused: Arc<Counter>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FileReceiver {
    /// Builds the receiver; reading starts at `start`.
    pub fn new(id: &str, config: FileReceiverConfig, metrics: &Metrics, next: ConsumerRef) -> Self {
        let labels = [("receiver", id), ("transport", "file")];
        FileReceiver {
            id: id.to_string(),
            config,
            next,
            accepted: metrics.counter(
                "otelcol_receiver_accepted_spans",
                "Number of spans successfully pushed into the pipeline.",
                &labels,
            ),
            refused: metrics.counter(
                "otelcol_receiver_refused_spans",
                "Number of spans that could not be pushed into the pipeline.",
                &labels,
            ),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        }
    }
}

/// The reading loop's state, moved into the task.
struct Reading {
    id: String,
    next: ConsumerRef,
    accepted: Arc<Counter>,
    refused: Arc<Counter>,
    stop: CancellationToken,
    poll_interval: Duration,
}

impl Reading {
    async fn run(self, mut tail: Tail) {
        loop {
            let polled = tokio::task::spawn_blocking(move || {
                let items = tail.poll();
                (tail, items)
            })
            .await;
            let items;
            (tail, items) = match polled {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(receiver = %self.id, error = %e, "file reading stopped");
                    return;
                }
            };
            let idle = items.is_empty();
            for item in items {
                match item {
                    Ok(traces) => {
                        if !self.deliver(traces).await {
                            return;
                        }
                    }
                    Err(e) => tracing::error!(receiver = %self.id, "skipping unreadable data: {e}"),
                }
            }
            if tail.finished() {
                tracing::info!(receiver = %self.id, "file read to the end");
                return;
            }
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = self.stop.cancelled() => return,
                }
            } else if self.stop.is_cancelled() {
                return;
            }
        }
    }

    /// Hands a batch on, waiting and trying again while the pipeline says "retry later".
    /// False when stopped meanwhile.
    async fn deliver(&self, traces: Traces) -> bool {
        let spans = traces.span_count() as u64;
        loop {
            match self.next.consume(traces.clone()).await {
                Ok(()) => {
                    self.accepted.add(spans);
                    return true;
                }
                Err(ConsumeError::Retryable {
                    retry_after,
                    message,
                }) => {
                    let wait = retry_after
                        .unwrap_or(self.poll_interval)
                        .max(Duration::from_millis(10));
                    tracing::debug!(receiver = %self.id, "pipeline busy ({message}); retrying in {wait:?}");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.stop.cancelled() => {
                            self.refused.add(spans);
                            return false;
                        }
                    }
                }
                Err(e) => {
                    self.refused.add(spans);
                    tracing::error!(receiver = %self.id, error = %e, "pipeline refused a batch");
                    return true;
                }
            }
        }
    }
}

#[async_trait]
impl Lifecycle for FileReceiver {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        let config = self.config.clone();
        let tail = tokio::task::spawn_blocking(move || Tail::new(&config))
            .await
            .map_err(ComponentError::new)?
            .map_err(|e| {
                ComponentError::new(format!("path: cannot list {}: {e}", self.config.path))
            })?;
        let reading = Reading {
            id: self.id.clone(),
            next: Arc::clone(&self.next),
            accepted: Arc::clone(&self.accepted),
            refused: Arc::clone(&self.refused),
            stop: self.stop.clone(),
            poll_interval: self.config.poll_interval,
        };
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::spawn(reading.run(tail)));
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Receiver for FileReceiver {}

#[cfg(test)]
mod tests;
