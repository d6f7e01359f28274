//! Per-span cost of the `attributes`, `filter` and `resource_detection` processors.
//!
//! `cargo bench -p teletrace-processors --bench transform`
//!
//! Each case runs a processor's `consume` on copies of a decoded batch of 1,000 spans
//! (12 attributes each, 10 resources) into a sink that keeps them, and prints the time per
//! span; copying and dropping the batches happen outside the timed section.

use async_trait::async_trait;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::proto::tonic::common::v1::{AnyValue, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentConfig, ConsumeError, Consumer, ConsumerRef, Traces};
use teletrace_processors::attributes::{AttributesConfig, AttributesProcessor};
use teletrace_processors::filter::{FilterConfig, FilterProcessor};
use teletrace_processors::resource_detection::detectors::RealHost;
use teletrace_processors::resource_detection::{
    ResourceDetectionConfig, ResourceDetectionProcessor,
};

const SPANS: usize = 1_000;
const RESOURCES: usize = 10;

/// Keeps what it is given, so dropping batches happens outside the timed section.
#[derive(Default)]
struct Keep(Mutex<Vec<Traces>>);

#[async_trait]
impl Consumer for Keep {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.0
            .lock()
            .map_err(|_| ConsumeError::permanent("poisoned"))?
            .push(traces);
        Ok(())
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

const STATEMENT: &str =
    "UPDATE cards SET last_used = now() WHERE number = '4111 1111 1111 1111' AND owner = 42";

/// Span number `n` of the batch: every 10th is a health check, every 20th an error, and
/// durations cycle from 0 to 1.8 s.
fn span(n: u64) -> Span {
    let name = if n.is_multiple_of(10) {
        "GET /health".to_string()
    } else {
        format!("GET /api/items/{}", n % 50)
    };
    let start = 1_700_000_000_000_000_000 + n * 1_000;
    Span {
        trace_id: n.to_be_bytes().repeat(2),
        span_id: n.to_be_bytes().to_vec(),
        name,
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + (n % 7) * 300_000_000,
        status: Some(Status {
            code: if n.is_multiple_of(20) { 2 } else { 0 },
            message: String::new(),
        }),
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.route", s("/api/items/{id}")),
            kv(
                "http.response.status_code",
                Value::IntValue(200 + (n % 5) as i64 * 100),
            ),
            kv(
                "url.full",
                s("https://shop.example.com/api/items/42?ref=home"),
            ),
            kv(
                "http.request.header.authorization",
                s("Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
            ),
            kv(
                "http.request.header.cookie",
                s("session=7f3c9a1e2b4d; theme=dark"),
            ),
            kv("user.email", s("alice@example.com")),
            kv("db.system", s("postgresql")),
            kv("db.statement", s(STATEMENT)),
            kv("net.peer.port", Value::IntValue(5432)),
            kv("thread.id", Value::IntValue(n as i64 % 16)),
            kv("cache.hit", Value::BoolValue(n.is_multiple_of(2))),
        ],
        ..Default::default()
    }
}

fn batch() -> Traces {
    let per_resource = SPANS / RESOURCES;
    let resource_spans = (0..RESOURCES)
        .map(|r| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(&format!("service-{r}"))),
                    kv("service.version", s("1.4.2")),
                    kv("deployment.environment", s("prod")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..per_resource)
                    .map(|i| span((r * per_resource + i) as u64))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    Traces::new(resource_spans)
}

fn parse<C: ComponentConfig>(yaml: &str) -> C {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("bench YAML");
    parse_typed_config::<C>(&value).unwrap_or_else(|e| panic!("bench config: {e}"))
}

/// Times `consumer` on fresh copies of the batch (copied and dropped outside the timed
/// section) for about `budget`; returns ns per span.
fn time_per_span(
    rt: &tokio::runtime::Runtime,
    budget: Duration,
    consumer: &dyn Consumer,
    kept: &Keep,
) -> f64 {
    const COPIES: usize = 10;
    let template = batch();
    let mut timed = Duration::ZERO;
    let mut spans = 0usize;
    while timed < budget {
        let copies: Vec<Traces> = (0..COPIES).map(|_| template.clone()).collect();
        let start = Instant::now();
        for copy in copies {
            rt.block_on(consumer.consume(copy)).expect("consume");
        }
        timed += start.elapsed();
        spans += COPIES * SPANS;
        black_box(kept.0.lock().expect("kept").drain(..).count());
    }
    timed.as_nanos() as f64 / spans as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let budget = Duration::from_secs(2);
    let kept = Arc::new(Keep::default());
    let next: ConsumerRef = kept.clone();
    let metrics = Metrics::new();

    let shipped: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../configs/redaction.yaml")).expect("redaction.yaml");
    let redaction: AttributesConfig =
        parse_typed_config(&shipped["processors"]["attributes/redaction"])
            .expect("redaction config");
    let attributes = |yaml: &str| -> Box<dyn Consumer> {
        let config = parse::<AttributesConfig>(yaml);
        Box::new(AttributesProcessor::new(&config, next.clone()).expect("attributes"))
    };
    let filter = |yaml: &str| -> Box<dyn Consumer> {
        let config = parse::<FilterConfig>(yaml);
        Box::new(
            FilterProcessor::new("filter/bench", &config, &metrics, next.clone()).expect("filter"),
        )
    };
    let cases: Vec<(&str, Box<dyn Consumer>)> = vec![
        (
            "attributes: configs/redaction.yaml (delete by pattern, hash, replace_pattern)",
            Box::new(AttributesProcessor::new(&redaction, next.clone()).expect("attributes")),
        ),
        (
            "attributes: insert + upsert from_attribute + convert",
            attributes(
                "actions:
  - {key: env, value: prod, action: insert}
  - {key: tier, from_attribute: db.system, action: upsert}
  - {key: http.response.status_code, converted_type: string, action: convert}",
            ),
        ),
        (
            "attributes: include regexp on services + span_names, then hash",
            attributes(
                "include: {match_type: regexp, services: ['^service-[0-4]$'], span_names: ['^GET /api']}
actions: [{key: user.email, action: hash}]",
            ),
        ),
        (
            "filter: 3 OTTL conditions (drops ~25%)",
            filter(
                r#"traces:
  span:
    - 'IsMatch(name, "^GET /health")'
    - 'end_time - start_time > Duration("1.5s")'
    - 'resource.attributes["service.name"] == "service-9" and status.code == STATUS_CODE_ERROR'"#,
            ),
        ),
        (
            "filter: 1 condition on an attribute (drops none)",
            filter(r#"traces: {span: ['attributes["http.response.status_code"] >= 600']}"#),
        ),
        (
            "resource_detection: env + system, override",
            Box::new(ResourceDetectionProcessor::new(
                parse::<ResourceDetectionConfig>(
                    "detectors: [env, system]
system: {resource_attributes: {host.arch: {enabled: true}, os.description: {enabled: true}}}",
                ),
                Arc::new(RealHost),
                next.clone(),
            )),
        ),
    ];

    println!("batch of {SPANS} decoded spans, {RESOURCES} resources, 12 attributes per span");
    for (name, consumer) in &cases {
        let ns = time_per_span(&rt, budget, consumer.as_ref(), &kept);
        println!("{name}: {ns:.0} ns/span");
    }
}
