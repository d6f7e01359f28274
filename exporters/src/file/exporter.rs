//! The `file` exporter: encodes each batch as one record and appends it to the file.

use super::config::{FileConfig, Format};
use super::rotation::RotatingFile;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use teletrace_core::exporter_helper::{METRIC_SEND_FAILED_SPANS, METRIC_SENT_SPANS};
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::traces::json;
use teletrace_core::{ComponentError, ConsumeError, Consumer, Exporter, Host, Lifecycle, Traces};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Encodes one batch as the bytes appended to the file: a JSON line, or (proto, or any
/// compressed format) the message prefixed by its 4-byte big-endian length. With zstd,
/// each message is compressed on its own, as the collector does.
pub fn encode_record(traces: Traces, format: Format, zstd: bool) -> Result<Vec<u8>, ConsumeError> {
    let message = match format {
        Format::Json => {
            let rs = traces.into_resource_spans()?;
            let mut out = Vec::with_capacity(rs.len() * 512 + 4);
            if !zstd {
                json::write_request(&rs, &mut out);
                out.push(b'\n');
                return Ok(out);
            }
            json::write_request(&rs, &mut out);
            out
        }
        Format::Proto => traces.to_encoded().to_vec(),
    };
    let message = if zstd {
        zstd::bulk::compress(&message, 0)
            .map_err(|e| ConsumeError::permanent(format!("zstd compression failed: {e}")))?
    } else {
        message
    };
    let len = u32::try_from(message.len())
        .map_err(|_| ConsumeError::permanent("message larger than 4 GiB"))?;
    let mut record = Vec::with_capacity(4 + message.len());
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&message);
    Ok(record)
}

/// Writes batches to a file.
pub struct FileExporter {
    id: String,
    config: FileConfig,
    file: Arc<Mutex<Option<RotatingFile>>>,
    flusher: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    sent: Arc<Counter>,
    failed: Arc<Counter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FileExporter {
    /// Builds the exporter; the file is opened at start.
    pub fn new(id: &str, config: FileConfig, metrics: &Metrics) -> Self {
        let labels = [("exporter", id)];
        FileExporter {
            id: id.to_string(),
            config,
            file: Arc::new(Mutex::new(None)),
            flusher: Mutex::new(None),
            sent: metrics.counter(
                METRIC_SENT_SPANS,
                "Number of spans successfully sent to destination",
                &labels,
            ),
            failed: metrics.counter(
                METRIC_SEND_FAILED_SPANS,
                "Number of spans in failed attempts to send to destination",
                &labels,
            ),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.config.path)
    }
}

#[async_trait]
impl Lifecycle for FileExporter {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        let path = self.path();
        let rotation = self.config.rotation.clone();
        let opened = tokio::task::spawn_blocking(move || RotatingFile::open(&path, rotation))
            .await
            .map_err(ComponentError::new)?
            .map_err(|e| {
                ComponentError::new(format!("path: cannot open {}: {e}", self.config.path))
            })?;
        *lock(&self.file) = Some(opened);
        let interval = self.config.flush_interval;
        if !interval.is_zero() {
            let stop = CancellationToken::new();
            let file = Arc::clone(&self.file);
            let id = self.id.clone();
            let stopped = stop.clone();
            let task = tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.tick().await;
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        () = stopped.cancelled() => return,
                    }
                    let file = Arc::clone(&file);
                    let flushed = tokio::task::spawn_blocking(move || {
                        lock(&file).as_mut().map_or(Ok(()), RotatingFile::flush)
                    })
                    .await;
                    if let Ok(Err(e)) = flushed {
                        tracing::error!(exporter = %id, error = %e, "flushing the file failed");
                    }
                }
            });
            *lock(&self.flusher) = Some((stop, task));
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let flusher = lock(&self.flusher).take();
        if let Some((stop, task)) = flusher {
            stop.cancel();
            let _ = task.await;
        }
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || match lock(&file).take() {
            Some(mut f) => f.sync(),
            None => Ok(()),
        })
        .await
        .map_err(ComponentError::new)?
        .map_err(|e| ComponentError::new(format!("closing {}: {e}", self.config.path)))
    }
}

#[async_trait]
impl Consumer for FileExporter {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        let spans = traces.span_count() as u64;
        if spans == 0 && traces.resource_count() == 0 {
            return Ok(());
        }
        let file = Arc::clone(&self.file);
        let format = self.config.format;
        let zstd = self.config.zstd();
        let flush_each = self.config.flush_interval.is_zero();
        let written = tokio::task::spawn_blocking(move || {
            let record = encode_record(traces, format, zstd)?;
            let mut guard = lock(&file);
            let Some(f) = guard.as_mut() else {
                return Err(ConsumeError::retryable("file exporter is not started"));
            };
            f.write_record(&record)
                .and_then(|()| if flush_each { f.flush() } else { Ok(()) })
                .map_err(|e| ConsumeError::retryable(format!("writing the file failed: {e}")))
        })
        .await
        .map_err(|e| ConsumeError::retryable(e.to_string()))
        .and_then(|r| r);
        match &written {
            Ok(()) => self.sent.add(spans),
            Err(e) => {
                self.failed.add(spans);
                tracing::error!(exporter = %self.id, error = %e, "file export failed");
            }
        }
        written
    }
}

impl Exporter for FileExporter {}
