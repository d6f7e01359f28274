//! Shared by the OTLP receiver tests: consumers that record or fail, request builders,
//! and a receiver started on ephemeral ports.

#![allow(dead_code)]

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Consumer, Host, Lifecycle, Traces};
use teletrace_receivers::otlp::{BoundAddresses, OtlpConfig, OtlpReceiver};
use tokio::sync::Notify;

/// Stores every batch it takes.
#[derive(Default)]
pub struct Recorder {
    batches: Mutex<Vec<Traces>>,
    /// Notified after each batch.
    pub arrived: Notify,
}

impl Recorder {
    /// The spans taken so far, decoded, with their service names.
    pub fn spans(&self) -> Vec<Span> {
        let batches = self.batches.lock().unwrap().clone();
        let mut out = Vec::new();
        for b in batches {
            for rs in b.into_resource_spans().expect("decodes") {
                for ss in rs.scope_spans {
                    out.extend(ss.spans);
                }
            }
        }
        out
    }

    /// The batches taken so far.
    pub fn batches(&self) -> Vec<Traces> {
        self.batches.lock().unwrap().clone()
    }

    /// How many spans were taken.
    pub fn span_count(&self) -> usize {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(Traces::span_count)
            .sum()
    }
}

#[async_trait]
impl Consumer for Recorder {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.batches.lock().unwrap().push(traces);
        self.arrived.notify_waiters();
        Ok(())
    }
}

/// Answers every batch with the same error.
pub struct Failing(pub ConsumeError);

#[async_trait]
impl Consumer for Failing {
    async fn consume(&self, _traces: Traces) -> Result<(), ConsumeError> {
        Err(self.0.clone())
    }
}

/// Signals when a batch arrives, then takes `delay` before recording it.
pub struct Slow {
    pub delay: Duration,
    pub entered: Notify,
    pub inner: Recorder,
}

impl Slow {
    pub fn new(delay: Duration) -> Self {
        Slow {
            delay,
            entered: Notify::new(),
            inner: Recorder::default(),
        }
    }
}

#[async_trait]
impl Consumer for Slow {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.entered.notify_one();
        tokio::time::sleep(self.delay).await;
        self.inner.consume(traces).await
    }
}

/// A started receiver with what the tests look at.
pub struct Running {
    pub receiver: OtlpReceiver,
    pub addresses: BoundAddresses,
    pub metrics: Metrics,
}

impl Running {
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addresses.grpc.expect("grpc enabled"))
    }

    pub fn http_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.addresses.http.expect("http enabled")
        )
    }

    pub fn counter(&self, name: &str, transport: &str) -> u64 {
        let line = format!("{name}{{receiver=\"otlp\",transport=\"{transport}\"}} ");
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&line).map(|v| v.parse().unwrap()))
            .unwrap_or(0)
    }
}

/// The YAML of a receiver with both protocols on ephemeral ports, plus `extra_http`
/// lines under `http:` and `extra_grpc` under `grpc:`.
pub fn yaml(extra_grpc: &str, extra_http: &str) -> String {
    format!(
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n{extra_grpc}  http:\n    endpoint: 127.0.0.1:0\n{extra_http}"
    )
}

/// Parses `yaml`, builds the receiver over `next` and starts it.
pub async fn start(yaml: &str, next: Arc<dyn Consumer>) -> Running {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
    let config: OtlpConfig = parse_typed_config(&value).expect("valid config");
    let metrics = Metrics::new();
    let receiver = OtlpReceiver::new(ComponentId::parse("otlp").unwrap(), config, &metrics, next);
    receiver.start(&Host::default()).await.expect("starts");
    let addresses = receiver.bound_addresses();
    Running {
        receiver,
        addresses,
        metrics,
    }
}

/// A span of trace `t`, id `s`.
pub fn span(t: u8, s: u8) -> Span {
    Span {
        trace_id: vec![t; 16],
        span_id: vec![s; 8],
        name: format!("span-{t}-{s}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes: vec![KeyValue {
            key: "http.route".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("/users".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A request holding `spans`.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "test".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The OTLP specification's JSON example (opentelemetry-proto `examples/trace.json`).
pub const SPEC_EXAMPLE: &str = include_str!("trace.json");

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
