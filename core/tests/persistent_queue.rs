//! The persistent sending queue across a crash: an exporter dropped without shutdown
//! leaves exactly the batches its backend did not acknowledge on disk, and the next
//! exporter over the same directory sends those, once.

use async_trait::async_trait;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::exporter_helper::{
    queue_directory, ExporterHelperSettings, QueueSettings, QueuedRetryExporter, RetrySettings,
    Sender, Sizer, METRIC_QUEUE_SIZE, METRIC_SENT_SPANS,
};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Consumer, Host, Lifecycle, Traces};

/// A backend that takes the batches whose span name is in `accept` and answers
/// "unavailable" to the others; it records what it took.
#[derive(Clone, Default)]
struct Backend {
    accept: Arc<Mutex<Option<BTreeSet<String>>>>,
    taken: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Lifecycle for Backend {}

#[async_trait]
impl Sender for Backend {
    async fn send(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        let name = traces.resource_spans().unwrap()[0].scope_spans[0].spans[0]
            .name
            .clone();
        let accepted = match &*self.accept.lock().unwrap() {
            None => true,
            Some(set) => set.contains(&name),
        };
        if !accepted {
            return Err(ConsumeError::retryable("backend unavailable"));
        }
        self.taken.lock().unwrap().push(name);
        Ok(())
    }
}

fn batch(name: &str) -> Traces {
    Traces::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![7; 16],
                span_id: vec![1; 8],
                name: name.to_string(),
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn settings(dir: &std::path::Path) -> ExporterHelperSettings {
    ExporterHelperSettings {
        timeout: Duration::from_secs(5),
        queue: QueueSettings {
            enabled: true,
            num_consumers: 2,
            sizer: Sizer::Requests,
            queue_size: 100,
            block_on_overflow: false,
            storage: Some(dir.to_path_buf()),
        },
        retry: RetrySettings {
            initial_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(50),
            max_elapsed_time: Duration::ZERO,
            ..RetrySettings::default()
        },
    }
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5s");
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_then_restart_resends_exactly_the_unacknowledged_batches() {
    let dir = tempfile::tempdir().unwrap();
    let id = ComponentId::parse("otlp/backend").unwrap();

    // Run 1: the backend takes a, c, e and keeps refusing b, d; then the process "crashes"
    // (the exporter is dropped without shutdown).
    let first = Backend::default();
    *first.accept.lock().unwrap() = Some(["a", "c", "e"].iter().map(|s| s.to_string()).collect());
    // One consumer per batch, so the refused ones retrying do not hold the others up.
    let mut s = settings(dir.path());
    s.queue.num_consumers = 5;
    let metrics = Metrics::new();
    let exporter = QueuedRetryExporter::new(id.clone(), s, first.clone(), &metrics).unwrap();
    exporter.start(&Host::default()).await.unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        exporter.consume(batch(name)).await.unwrap();
    }
    wait_until(|| first.taken.lock().unwrap().len() == 3).await;
    // Let the acknowledgements of a, c, e reach the disk.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(exporter);

    // Run 2: a healthy backend gets b and d, and nothing else.
    let second = Backend::default();
    let metrics = Metrics::new();
    let exporter =
        QueuedRetryExporter::new(id.clone(), settings(dir.path()), second.clone(), &metrics)
            .unwrap();
    assert_eq!(exporter.queue_len(), 2, "b and d reloaded from disk");
    exporter.start(&Host::default()).await.unwrap();
    wait_until(|| second.taken.lock().unwrap().len() == 2).await;
    exporter.shutdown().await.unwrap();
    let mut taken = second.taken.lock().unwrap().clone();
    taken.sort();
    assert_eq!(taken, names(&["b", "d"]));
    assert_eq!(metrics.counter_total(METRIC_SENT_SPANS), 2);
    assert!(metrics.render().contains(&format!(
        "{METRIC_QUEUE_SIZE}{{exporter=\"otlp/backend\"}} 0"
    )));

    // Run 3: nothing left.
    let third = Backend::default();
    let exporter =
        QueuedRetryExporter::new(id, settings(dir.path()), third.clone(), &Metrics::new()).unwrap();
    assert_eq!(exporter.queue_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_the_backend_down_keeps_the_batches_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let id = ComponentId::parse("otlp").unwrap();
    let down = Backend::default();
    *down.accept.lock().unwrap() = Some(BTreeSet::new());
    let exporter = QueuedRetryExporter::new(
        id.clone(),
        settings(dir.path()),
        down.clone(),
        &Metrics::new(),
    )
    .unwrap();
    exporter.start(&Host::default()).await.unwrap();
    for name in ["x", "y", "z"] {
        exporter.consume(batch(name)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    exporter.shutdown().await.unwrap();
    drop(exporter);

    let up = Backend::default();
    let exporter =
        QueuedRetryExporter::new(id, settings(dir.path()), up.clone(), &Metrics::new()).unwrap();
    assert_eq!(exporter.queue_len(), 3);
    exporter.start(&Host::default()).await.unwrap();
    exporter.shutdown().await.unwrap();
    let mut taken = up.taken.lock().unwrap().clone();
    taken.sort();
    assert_eq!(taken, names(&["x", "y", "z"]));
}

#[tokio::test]
async fn torn_tail_is_dropped_and_the_rest_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let id = ComponentId::parse("otlp").unwrap();
    let mut s = settings(dir.path());
    s.queue.num_consumers = 1;
    {
        // Queue two batches without starting (no consumer sends them), then "crash".
        let exporter =
            QueuedRetryExporter::new(id.clone(), s.clone(), Backend::default(), &Metrics::new())
                .unwrap();
        exporter.consume(batch("one")).await.unwrap();
        exporter.consume(batch("two")).await.unwrap();
    }
    // A third record torn halfway through its write.
    let queue_dir = queue_directory(dir.path(), &id);
    let segment = std::fs::read_dir(&queue_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .unwrap();
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&[0, 0, 1, 0, 0xde, 0xad]).unwrap();
    drop(f);

    let backend = Backend::default();
    let exporter = QueuedRetryExporter::new(id, s, backend.clone(), &Metrics::new()).unwrap();
    assert_eq!(exporter.queue_len(), 2);
    exporter.start(&Host::default()).await.unwrap();
    exporter.shutdown().await.unwrap();
    assert_eq!(*backend.taken.lock().unwrap(), names(&["one", "two"]));
}
