//! The shipped `configs/tail-sampling.yaml`, run whole (its exporter swapped for the
//! test `capture` exporter, its ports and `decision_wait` overridden with `--set`), fed
//! 10,000 generated traces over OTLP/HTTP: every error trace and every slow trace is
//! kept whole, and about 10% of the rest.

mod common;

use common::capture;
use prost::Message;
use std::collections::HashMap;
use teletrace_core::proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use teletrace_core::proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::{
    status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};

const SHIPPED: &str = include_str!("../configs/tail-sampling.yaml");
const MS: u64 = 1_000_000;

/// Deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Error,
    Slow,
}

/// One generated trace: a root and two children. Error traces have a failing child;
/// slow traces last 1.5 s from the root's start to the last child's end (no single span
/// is that long); normal ones last at most 200 ms.
struct Generated {
    id: Vec<u8>,
    kind: Kind,
    root: Span,
    children: Vec<Span>,
}

fn generate(rng: &mut Rng, i: u64, base: u64) -> Generated {
    let mut id = rng.next().to_be_bytes().to_vec();
    id.extend_from_slice(&rng.next().to_be_bytes());
    let kind = match i % 20 {
        0 => Kind::Error,
        1 => Kind::Slow,
        _ => Kind::Normal,
    };
    let start = base + i * MS;
    let span = |n: u8, from: u64, to: u64| Span {
        trace_id: id.clone(),
        span_id: vec![n, 0, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1],
        parent_span_id: if n == 0 {
            vec![]
        } else {
            vec![0, 0, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]
        },
        name: format!("op-{n}"),
        start_time_unix_nano: start + from * MS,
        end_time_unix_nano: start + to * MS,
        ..Default::default()
    };
    let (root, mut children) = match kind {
        Kind::Slow => (span(0, 0, 800), vec![span(1, 100, 700), span(2, 700, 1500)]),
        _ => (span(0, 0, 150), vec![span(1, 10, 90), span(2, 90, 200)]),
    };
    if kind == Kind::Error {
        children[1].status = Some(Status {
            code: StatusCode::Error as i32,
            message: "boom".into(),
        });
    }
    Generated {
        id,
        kind,
        root,
        children,
    }
}

fn request(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_keeps_errors_slow_traces_and_a_tenth_of_the_rest() {
    let sets: Vec<String> = [
        "receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0",
        "receivers::otlp::protocols::http::endpoint=127.0.0.1:0",
        "processors::tail_sampling::decision_wait=500ms",
        "exporters::capture::name=tail-sampling-shipped",
        "service::pipelines::traces::exporters=[capture]",
        "service::telemetry::metrics::level=none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let running = common::start_with(SHIPPED, &sets).await;
    let url = format!("{}/v1/traces", running.http_endpoint());
    let client = reqwest::Client::new();

    let mut rng = Rng(2026);
    let base = 1_700_000_000_000 * MS;
    let traces: Vec<Generated> = (0..10_000).map(|i| generate(&mut rng, i, base)).collect();
    // 500 traces per round: their roots from the "frontend" service in one request, then
    // their children from the "backend" service in another, as two services would send.
    for chunk in traces.chunks(500) {
        let roots = chunk.iter().map(|t| t.root.clone()).collect();
        let children = chunk.iter().flat_map(|t| t.children.clone()).collect();
        for body in [request("frontend", roots), request("backend", children)] {
            let response = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .expect("request");
            assert!(response.status().is_success(), "{}", response.status());
        }
    }
    // Shutdown decides what is still pending and flushes it through the batch processor.
    running.stop().await;

    let mut kept: HashMap<Vec<u8>, Vec<(String, Span)>> = HashMap::new();
    for (service, span) in capture::spans("tail-sampling-shipped") {
        kept.entry(span.trace_id.clone())
            .or_default()
            .push((service, span));
    }
    let mut rest = 0u32;
    let mut rest_kept = 0u32;
    for t in &traces {
        let spans = kept.get(&t.id);
        if let Some(spans) = spans {
            // Kept traces are kept whole, with their resources.
            assert_eq!(spans.len(), 3, "trace {:02x?} kept partly", t.id);
            assert_eq!(spans.iter().filter(|(s, _)| s == "frontend").count(), 1);
        }
        match t.kind {
            Kind::Error => assert!(spans.is_some(), "error trace {:02x?} dropped", t.id),
            Kind::Slow => assert!(spans.is_some(), "slow trace {:02x?} dropped", t.id),
            Kind::Normal => {
                rest += 1;
                rest_kept += u32::from(spans.is_some());
            }
        }
    }
    assert_eq!(rest, 9_000);
    // Binomial(9000, 0.1): sigma = sqrt(9000 * 0.1 * 0.9) = 28.5 traces (0.32 points).
    // Allow 5 sigma (143 traces, 1.6 points): a false failure below 1 in a million.
    let share = f64::from(rest_kept) / f64::from(rest);
    assert!(
        (rest_kept as i64 - 900).abs() <= 143,
        "kept {rest_kept} of {rest} other traces ({:.2}%)",
        share * 100.0
    );
    assert_eq!(
        kept.len() as u32,
        1_000 + rest_kept,
        "no trace outside those checked"
    );
}
