//! One contract for every linked component: its default config validates (or fails with
//! a message naming the missing key), it builds, starts, takes an empty batch and a
//! one-span batch, shuts down, and shuts down again without harm.

mod common;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use teletrace_core::registry::{self, BuildContext};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{
    ComponentId, ConsumeError, Consumer, Exporter, FactoryRef, Host, Kind, Traces,
};

/// Config a component needs to run in a test (ephemeral ports, temp files, required keys).
fn test_config(kind: Kind, type_name: &str, dir: &std::path::Path) -> Option<serde_yaml::Value> {
    let yaml = match (kind, type_name) {
        (Kind::Receiver, "otlp") => {
            "protocols: {grpc: {endpoint: 127.0.0.1:0}, http: {endpoint: 127.0.0.1:0}}".to_string()
        }
        // A limit far above what the test process holds, so the span goes through.
        (Kind::Processor, "memory_limiter") => "check_interval: 1s\nlimit_mib: 1048576".into(),
        (Kind::Exporter, "otlp") => {
            "{endpoint: '127.0.0.1:1', tls: {insecure: true}, retry_on_failure: {enabled: false}}"
                .to_string()
        }
        (Kind::Exporter, "otlp_http") => {
            "{endpoint: 'http://127.0.0.1:1', retry_on_failure: {enabled: false}}".to_string()
        }
        (Kind::Exporter, "sqlite") => format!("path: {}", dir.join("conformance.db").display()),
        (Kind::Processor, "tail_sampling") => {
            "decision_wait: 1s\npolicies: [{name: all, type: always_sample}]".to_string()
        }
        (Kind::Processor, "attributes") => {
            "actions: [{key: conformance, value: yes, action: upsert}]".to_string()
        }
        // Nothing listens on port 1: start defers the template, a send is retryable.
        (Kind::Exporter, "elasticsearch") => "endpoint: http://127.0.0.1:1\n\
             sending_queue: {enabled: false}\nretry_on_failure: {enabled: false}"
            .to_string(),
        (Kind::Exporter, "file") => format!("path: {}", dir.join("conformance.json").display()),
        (Kind::Receiver, "file") => format!("path: {}", dir.join("absent.json").display()),
        (Kind::Extension, "query") => format!(
            "endpoint: 127.0.0.1:0\nstorage: sqlite\nsystem_id_path: {}",
            dir.join("system-id").display()
        ),
        _ => return None,
    };
    Some(serde_yaml::from_str(&yaml).unwrap())
}

/// Keys a component may require, which its default config must then name in its error.
fn required_keys(kind: Kind, type_name: &str) -> &'static [&'static str] {
    match (kind, type_name) {
        (Kind::Extension, "query") => &["storage"],
        (Kind::Processor, "tail_sampling") => &["policies"],
        (Kind::Receiver, "otlp") => &["protocols"],
        (Kind::Processor, "attributes") => &["actions"],
        (Kind::Processor, "memory_limiter") => &["check_interval"],
        (Kind::Receiver, "file") | (Kind::Exporter, "file") => &["path"],
        (Kind::Exporter, "otlp")
        | (Kind::Exporter, "otlp_http")
        | (Kind::Exporter, "elasticsearch") => &["endpoint"],
        _ => &[],
    }
}

struct Counting(AtomicUsize);

#[async_trait]
impl Consumer for Counting {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.0.fetch_add(traces.span_count(), Ordering::SeqCst);
        Ok(())
    }
}

fn one_span() -> Traces {
    Traces::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "conformance".into(),
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_000_001_000,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn context(id: &str, host: &Host) -> BuildContext {
    BuildContext {
        id: ComponentId::parse(id).unwrap(),
        pipeline: Some("traces".into()),
        metrics: Metrics::new(),
        host: host.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_component_meets_the_contract() {
    common::link_all();
    let dir = std::env::temp_dir().join(format!("teletrace-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = Vec::new();

    // Exporters first, so extensions can find a storing exporter in the host.
    let mut exporters: BTreeMap<ComponentId, Arc<dyn Exporter>> = BTreeMap::new();
    let mut order: Vec<_> = registry::all().collect();
    order.sort_by_key(|r| (r.kind() != Kind::Exporter, r.kind(), r.type_name));
    for registration in order {
        let kind = registration.kind();
        let name = registration.type_name;
        if name == "capture" {
            continue; // the test-only exporter
        }
        // Default config: validates, or names the key it needs.
        let default = registration.factory.parse_config(&serde_yaml::Value::Null);
        let required = required_keys(kind, name);
        match (&default, required.is_empty()) {
            (Ok(_), _) => {}
            (Err(e), false) => assert!(
                required.iter().any(|k| e.to_string().contains(k)),
                "{kind} {name}: default config error should name {required:?}: {e}"
            ),
            (Err(e), true) => panic!("{kind} {name}: default config does not validate: {e}"),
        }
        let value = test_config(kind, name, &dir).unwrap_or(serde_yaml::Value::Null);
        let config = || {
            registration
                .factory
                .parse_config(&value)
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
        };
        let host = Host::new(exporters.clone(), Metrics::new());
        let sink = Arc::new(Counting(AtomicUsize::new(0)));
        let lifecycle: Arc<dyn teletrace_core::Lifecycle>;
        let consumer: Option<Arc<dyn Consumer>>;
        match registration.factory {
            FactoryRef::Receiver(f) => {
                let r = f
                    .create(&context(name, &host), config(), sink.clone())
                    .unwrap_or_else(|e| panic!("receiver {name}: {e}"));
                lifecycle = r;
                consumer = None;
            }
            FactoryRef::Processor(f) => {
                let p = f
                    .create(&context(name, &host), config(), sink.clone())
                    .unwrap_or_else(|e| panic!("processor {name}: {e}"));
                consumer = Some(p.clone());
                lifecycle = p;
            }
            FactoryRef::Exporter(f) => {
                let x = f
                    .create(&context(name, &host), config())
                    .unwrap_or_else(|e| panic!("exporter {name}: {e}"));
                consumer = Some(x.clone());
                exporters.insert(ComponentId::parse(name).unwrap(), x.clone());
                lifecycle = x;
            }
            FactoryRef::Extension(f) => {
                let x = f
                    .create(&context(name, &host), config())
                    .unwrap_or_else(|e| panic!("extension {name}: {e}"));
                lifecycle = x;
                consumer = None;
            }
        }
        lifecycle
            .start(&host)
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: start: {e}"));
        if let Some(consumer) = &consumer {
            consumer
                .consume(Traces::default())
                .await
                .unwrap_or_else(|e| panic!("{kind} {name}: empty batch: {e}"));
            let result = consumer.consume(one_span()).await;
            // A sampler may drop the span, an exporter with an unreachable backend may
            // report a retryable error; neither may panic or claim bad data.
            if let Err(e) = result {
                assert!(
                    e.is_retryable(),
                    "{kind} {name}: one-span batch refused as bad data: {e}"
                );
            }
        }
        lifecycle
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: shutdown: {e}"));
        lifecycle
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: second shutdown: {e}"));
        if kind == Kind::Processor {
            assert!(sink.0.load(Ordering::SeqCst) <= 1, "{name} invented spans");
        }
        checked.push(format!("{kind} {name}"));
    }
    for expected in ["receiver otlp", "processor batch", "exporter debug"] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} is not registered; checked {checked:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
