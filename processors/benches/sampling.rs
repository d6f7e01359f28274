//! Per-span cost of the sampling processors (`cargo bench -p teletrace-processors --bench
//! sampling`).
//!
//! - `probabilistic_sampler`: the decision alone (`Decider::decide`) and the whole
//!   processor on decoded batches, in ns per span.
//! - `tail_sampling`: heap held by 50,000 pending traces of 20 spans (measured with a
//!   counting allocator), the cost of taking spans in (encoded OTLP batches as the
//!   receiver hands them over), and decisions per second with the shipped policies
//!   (errors, latency, 10%), all on one core (current-thread runtime).

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ConsumeError, Consumer, Host, Lifecycle, Traces};
use teletrace_processors::probabilistic_sampler::{
    Decider, ProbabilisticSampler, ProbabilisticSamplerConfig,
};
use teletrace_processors::tail_sampling::{TailSampler, TailSamplingConfig};

/// Counts live heap bytes.
struct CountingAlloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> Vec<u8> {
        let mut id = self.next().to_be_bytes().to_vec();
        id.extend_from_slice(&self.next().to_be_bytes());
        id
    }
}

/// Counts what reaches it.
struct Null(AtomicU64);

#[async_trait]
impl Consumer for Null {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.0
            .fetch_add(traces.span_count() as u64, Ordering::Relaxed);
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

/// A typical server/client span: ids, name, kind, times, status, five attributes.
fn span(trace_id: &[u8], n: u64, error: bool) -> Span {
    let start = 1_700_000_000_000_000_000 + n * 1_000;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        parent_span_id: n.to_be_bytes().to_vec(),
        name: "GET /api/v1/orders/{id}".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 3_000_000,
        attributes: vec![
            kv("http.request.method", Value::StringValue("GET".into())),
            kv(
                "http.route",
                Value::StringValue("/api/v1/orders/{id}".into()),
            ),
            kv(
                "http.response.status_code",
                Value::IntValue(if error { 500 } else { 200 }),
            ),
            kv(
                "server.address",
                Value::StringValue("orders.internal".into()),
            ),
            kv(
                "user_agent.original",
                Value::StringValue("Mozilla/5.0 (X11; Linux x86_64)".into()),
            ),
        ],
        status: Some(Status {
            code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            } as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", Value::StringValue(service.into())),
                kv("service.version", Value::StringValue("1.4.2".into())),
                kv("host.name", Value::StringValue("node-17.eu-west-1".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "opentelemetry-instrumentation-http".into(),
                version: "0.52.0".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

fn bench_probabilistic(rt: &tokio::runtime::Runtime) {
    println!("probabilistic_sampler");
    let mut rng = Rng(1);
    let n = 1_000_000;
    let mut spans: Vec<Span> = (0..n).map(|i| span(&rng.trace_id(), i, false)).collect();
    for yaml in [
        "mode: hash_seed\nhash_seed: 22\nsampling_percentage: 10",
        "mode: proportional\nsampling_percentage: 10",
    ] {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let config: ProbabilisticSamplerConfig = parse_typed_config(&value).unwrap();
        let decider = Decider::new(&config);
        // A batch-sized working set (1,000 spans, in cache as in a pipeline), decided
        // 1,000 times over, with fresh tracestates each pass.
        let mut best = f64::MAX;
        for round in 0..5 {
            let hot = &mut spans[round * 1000..(round + 1) * 1000];
            let t = Instant::now();
            let mut kept = 0u32;
            for _ in 0..1000 {
                for s in hot.iter_mut() {
                    s.trace_state.clear();
                    kept += u32::from(decider.decide(black_box(s)).0);
                }
            }
            black_box(kept);
            best = best.min(t.elapsed().as_nanos() as f64 / 1e6);
        }
        println!(
            "  decision, {:<40} {best:6.1} ns/span",
            yaml.replace('\n', ", ")
        );
        // The whole processor on decoded batches of 1,000 spans.
        for s in spans.iter_mut() {
            s.trace_state.clear();
        }
        let sink = Arc::new(Null(AtomicU64::new(0)));
        let p = ProbabilisticSampler::new("p", &config, &Metrics::new(), sink.clone());
        let batches: Vec<Traces> = spans
            .chunks(1000)
            .map(|c| Traces::new(vec![resource_spans("svc", c.to_vec())]))
            .collect();
        let t = Instant::now();
        rt.block_on(async {
            for b in batches {
                p.consume(b).await.unwrap();
            }
        });
        let per_span = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "  processor (decoded batches of 1000, incl. dropping spans): {per_span:6.1} ns/span, kept {:.2}%",
            sink.0.load(Ordering::Relaxed) as f64 / n as f64 * 100.0
        );
    }
}

fn bench_tail(rt: &tokio::runtime::Runtime) {
    println!("tail_sampling");
    const TRACES: usize = 50_000;
    const SPANS_PER_TRACE: usize = 20;
    const TRACES_PER_BATCH: usize = 50;
    // Encoded batches as the OTLP receiver hands them over: each trace's 20 spans come
    // in two batches of 10 from two services.
    let mut rng = Rng(7);
    let ids: Vec<Vec<u8>> = (0..TRACES).map(|_| rng.trace_id()).collect();
    let mut batches = Vec::new();
    let mut n = 0;
    for chunk in ids.chunks(TRACES_PER_BATCH) {
        for service in ["frontend", "orders"] {
            let spans: Vec<Span> = chunk
                .iter()
                .enumerate()
                .flat_map(|(k, id)| {
                    (0..SPANS_PER_TRACE / 2)
                        .map(|j| {
                            n += 1;
                            span(id, n, k % 50 == 0 && j == 3)
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let body = ExportTraceServiceRequest {
                resource_spans: vec![resource_spans(service, spans)],
            }
            .encode_to_vec();
            batches.push(body);
        }
    }
    let input_bytes: usize = batches.iter().map(Vec::len).sum();
    let total_spans = TRACES * SPANS_PER_TRACE;
    println!(
        "  input: {TRACES} traces x {SPANS_PER_TRACE} spans, {:.1} MiB of OTLP protobuf ({} bytes/span)",
        input_bytes as f64 / 1048576.0,
        input_bytes / total_spans
    );
    let yaml = r#"
decision_wait: 1h
num_traces: 50000
policies:
  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: slow, type: latency, latency: {threshold_ms: 1000}}
  - {name: ten-percent, type: probabilistic, probabilistic: {sampling_percentage: 10}}
"#;
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let config: TailSamplingConfig = parse_typed_config(&value).unwrap();
    let sink = Arc::new(Null(AtomicU64::new(0)));
    rt.block_on(async {
        let bodies: Vec<Traces> = batches
            .into_iter()
            .map(|b| Traces::from_encoded(b.into()).unwrap())
            .collect();
        let before = live_bytes();
        let sampler =
            TailSampler::new("tail_sampling", &config, &Metrics::new(), sink.clone()).unwrap();
        sampler.start(&Host::default()).await.unwrap();
        let t = Instant::now();
        // Hand the batches over one by one; each is freed once taken in, so its bytes
        // (counted in `before`) are added back below.
        for b in bodies {
            sampler.consume(b).await.unwrap();
        }
        let ingest = t.elapsed();
        let held = live_bytes() - before + input_bytes as isize;
        assert_eq!(sampler.pending(), TRACES);
        println!(
            "  memory held for {TRACES} pending traces: {:.1} MiB ({} bytes/span)",
            held as f64 / 1048576.0,
            held / total_spans as isize
        );
        println!(
            "  ingest (split by trace, summarise, re-encode): {:.0} ns/span, {:.0} spans/s",
            ingest.as_nanos() as f64 / total_spans as f64,
            total_spans as f64 / ingest.as_secs_f64()
        );
        // Decide all 50,000 and send the sampled ones on (shutdown decides everything).
        let t = Instant::now();
        sampler.shutdown().await.unwrap();
        let decide = t.elapsed();
        println!(
            "  decide and send: {:.0} traces/s ({:.2} us/trace), kept {} spans",
            TRACES as f64 / decide.as_secs_f64(),
            decide.as_secs_f64() * 1e6 / TRACES as f64,
            sink.0.load(Ordering::Relaxed)
        );
        println!(
            "  end to end on one core: {:.0} traces/s of {SPANS_PER_TRACE} spans",
            TRACES as f64 / (ingest + decide).as_secs_f64()
        );
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("probabilistic") {
        bench_probabilistic(&rt);
    }
    if wants("tail") {
        bench_tail(&rt);
    }
}
