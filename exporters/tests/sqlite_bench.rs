//! Quick measurements of the sqlite exporter (ignored; not assertions about speed):
//!
//! ```text
//! cargo test --release -p teletrace-exporters --test sqlite_bench -- --ignored --nocapture
//! ```
//! `SQLITE_BENCH_SPANS` (default 200,000 for ingest, 1,000,000 for queries) and
//! `SQLITE_BENCH_BATCH` (default 1,000 spans per batch) change the sizes;
//! the ingest run feeds the exporter as the service builds it (behind its sending queue,
//! with the defaults) one batch at a time, as the `batch` processor sends, and counts
//! until shutdown has drained the queue; `SQLITE_BENCH_STORE_ONLY=1` feeds the store
//! itself (no queue) with `SQLITE_BENCH_IN_FLIGHT` (default 1) batches at once;
//! `SQLITE_BENCH_CONFIG` adds exporter config (`sending_queue: {queue_size: 4}`);
//! `SQLITE_BENCH_DROP` (`;`-separated SQL, e.g. `DROP INDEX duration_index`) runs before
//! the ingest measurement, to see what an index costs; `SQLITE_BENCH_KEEP=1` keeps the
//! query benchmark's database for `sqlite_bench_reads_on_kept_database`, and
//! `SQLITE_BENCH_ONLY=http` makes that run make only the HTTP requests (to profile them). Span and trace
//! IDs are random-looking, as SDKs make them; the ingest run prints each thread's CPU
//! seconds and the CPU time the hypervisor stole meanwhile.
#![cfg(feature = "sqlite")]

use teletrace_core::allocator;

/// The `teletrace` binary's allocator, set up as the binary sets it up (each bench
/// calls [`allocators_as_in_the_binary`] first), so the figures are the binary's.
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::ALLOCATOR;

/// What the binary's `main` does first: mimalloc returns freed memory at once, and
/// SQLite allocates with it. Every bench calls this before it touches SQLite, and the
/// `Once` makes the others wait, so SQLite is configured before any thread uses it.
fn allocators_as_in_the_binary() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        allocator::purge_freed_memory_at_once();
        // SAFETY: see above; no SQLite connection exists before this returns.
        let routed = unsafe { teletrace_exporters::sqlite::allocate_with_mimalloc() };
        assert!(
            routed,
            "SQLite was initialised before the bench configured it"
        );
    });
}

mod sqlite_common;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::json;
use sqlite_common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use teletrace_core::registry::{self, BuildContext};
use teletrace_core::storage::{Operator, SearchRequest, Timeframe};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, Consumer, Exporter, FactoryRef, Host, Kind, Lifecycle, Traces};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A bijective 64-bit mix (splitmix64's finalizer): distinct inputs, distinct outputs,
/// in no order, as SDKs' random IDs are. 0 maps to 0 only.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// The span ID of span `k`: random-looking, unique, never zero. (Sequential IDs would
/// make the span ID index an append and flatter the ingest figure.)
fn random_span_id(k: u64) -> Vec<u8> {
    mix(k + 1).to_be_bytes().to_vec()
}

/// The trace ID of trace `t`: random-looking and unique.
fn random_trace_id(t: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(t + 1).to_be_bytes());
    id[8..].copy_from_slice(&mix(!t).to_be_bytes());
    id
}

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUS: [i64; 6] = [200, 201, 204, 400, 404, 500];

/// A batch of `n` spans (10 attributes each) under one resource (5 attributes); traces of
/// about 10 spans.
fn make_batch(rng: &mut Rng, first: u64, n: u64, start: u64) -> Traces {
    let service = rng.below(10);
    let resource = Resource {
        attributes: vec![
            kv("service.name", s(&format!("service-{service}"))),
            kv("host.name", s(&format!("host-{}", rng.below(50)))),
            kv("service.version", s(&format!("1.{}.0", rng.below(3)))),
            kv(
                "deployment.environment",
                s(if rng.below(2) == 0 { "prod" } else { "staging" }),
            ),
            kv("telemetry.sdk.language", s("rust")),
        ],
        ..Default::default()
    };
    let spans: Vec<Span> = (first..first + n)
        .map(|k| {
            let attributes: Vec<KeyValue> = vec![
                kv("http.method", s(METHODS[rng.below(4) as usize])),
                kv("http.status_code", i(STATUS[rng.below(6) as usize])),
                kv(
                    "http.route",
                    s(&format!("/api/v1/resource-{}", rng.below(20))),
                ),
                kv(
                    "net.peer.ip",
                    s(&format!("10.0.{}.{}", rng.below(10), rng.below(10))),
                ),
                kv("user.id", s(&format!("user-{}", rng.below(10_000)))),
                kv("db.rows", i(rng.below(1000) as i64)),
                kv("thread.id", i(rng.below(50) as i64)),
                kv(
                    "component",
                    s(["http", "grpc", "db", "cache", "queue"][rng.below(5) as usize]),
                ),
                kv("request.size", d(rng.below(100_000) as f64 / 7.0)),
                kv(
                    "http.url",
                    s(&format!(
                        "https://example.com/api/v1/resource/{}",
                        rng.below(1_000_000)
                    )),
                ),
            ];
            let trace = k / 10;
            Span {
                trace_id: random_trace_id(trace).to_vec(),
                span_id: random_span_id(k),
                parent_span_id: if k % 10 == 0 {
                    vec![]
                } else {
                    random_span_id(trace * 10)
                },
                name: format!("op-{}", rng.below(30)),
                kind: 2,
                start_time_unix_nano: start + k * 1_000,
                end_time_unix_nano: start + k * 1_000 + rng.below(5_000_000),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    Traces::new(vec![ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "bench".into(),
                version: "1".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

/// CPU time (user + system) of this process so far, all threads.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds the hypervisor has taken from this machine since boot, over all cores
/// (`steal` in `/proc/stat`; USER_HZ is 100 on Linux).
fn stolen_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().next()?.to_string();
            line.split_whitespace().nth(8)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |ticks| ticks / 100.0)
}

/// Per thread of this process (Linux, `/proc/self/task/*/schedstat`): its name, the
/// seconds it ran on a CPU, and the seconds it was ready to run but waited for one
/// (with more busy threads than cores, the writer waits there).
fn thread_cpu_seconds() -> Vec<(String, f64, f64)> {
    let mut threads = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file));
        let (Ok(comm), Ok(schedstat)) = (read("comm"), read("schedstat")) else {
            continue;
        };
        // "<ns on a CPU> <ns waiting on a run queue> <timeslices>"
        let ns: Vec<f64> = schedstat
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let (Some(ran), Some(waited)) = (ns.first(), ns.get(1)) else {
            continue;
        };
        let tid = task.file_name().to_string_lossy().into_owned();
        threads.push((format!("{}/{tid}", comm.trim()), ran / 1e9, waited / 1e9));
    }
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    threads
}

/// `total` spans in batches of `batch_size`.
fn batches(total: usize, batch_size: usize, start: u64) -> Vec<Traces> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    (0..total / batch_size)
        .map(|b| make_batch(&mut rng, (b * batch_size) as u64, batch_size as u64, start))
        .collect()
}

/// Feeds `batches` to the store itself, `SQLITE_BENCH_IN_FLIGHT` at once.
async fn ingest_into_store(store: &Store, batches: Vec<Traces>) -> Duration {
    let at_once = env("SQLITE_BENCH_IN_FLIGHT", 1).max(1);
    let began = Instant::now();
    let mut in_flight: tokio::task::JoinSet<Result<(), teletrace_core::ConsumeError>> =
        tokio::task::JoinSet::new();
    for traces in batches {
        if in_flight.len() >= at_once {
            in_flight.join_next().await.unwrap().unwrap().unwrap();
        }
        let exporter = store.exporter.clone();
        in_flight.spawn(async move { exporter.consume(traces).await });
    }
    while let Some(r) = in_flight.join_next().await {
        r.unwrap().unwrap();
    }
    began.elapsed()
}

/// Feeds `batches` one after another to `exporter` as the service built it, and shuts it
/// down, which drains the sending queue: the time until every span is stored.
async fn ingest_through_service(exporter: &dyn Exporter, batches: Vec<Traces>) -> Duration {
    let began = Instant::now();
    for traces in batches {
        exporter.consume(traces).await.unwrap();
    }
    exporter.shutdown().await.unwrap();
    began.elapsed()
}

/// The `sqlite` exporter as the service builds it (the store behind its sending queue,
/// with the default settings), writing to `path`, started.
async fn service_exporter(path: &std::path::Path, metrics: Metrics) -> Arc<dyn Exporter> {
    teletrace_exporters::link();
    let registration = registry::find(Kind::Exporter, "sqlite").unwrap();
    let FactoryRef::Exporter(factory) = registration.factory else {
        panic!("sqlite is an exporter");
    };
    // SQLITE_BENCH_CONFIG: more of the exporter's config, as YAML flow mapping entries.
    let more = std::env::var("SQLITE_BENCH_CONFIG").unwrap_or_default();
    let yaml = serde_yaml::from_str(&format!("{{path: {}, {more}}}", path.display())).unwrap();
    let config = registration.factory.parse_config(&yaml).unwrap();
    let ctx = BuildContext {
        id: ComponentId::parse("sqlite").unwrap(),
        pipeline: None,
        metrics,
        host: Host::default(),
    };
    let exporter = factory.create(&ctx, config).unwrap();
    exporter.start(&Host::default()).await.unwrap();
    exporter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --release --ignored --nocapture"]
async fn sqlite_bench_ingest() {
    allocators_as_in_the_binary();
    let total = env("SQLITE_BENCH_SPANS", 200_000);
    let batch_size = env("SQLITE_BENCH_BATCH", 1_000);
    let store_only = env("SQLITE_BENCH_STORE_ONLY", 0) == 1;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    if let Ok(drop) = std::env::var("SQLITE_BENCH_DROP") {
        let mut conn = store.raw().await;
        for stmt in drop.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(stmt).execute(&mut conn).await.unwrap();
        }
    }
    let batches = batches(total, batch_size, 1_700_000_000_000_000_000);
    let cpu_before = cpu_seconds();
    let stolen_before = stolen_seconds();
    let elapsed = if store_only {
        let elapsed = ingest_into_store(&store, batches).await;
        store.exporter.shutdown().await.unwrap();
        elapsed
    } else {
        store.exporter.shutdown().await.unwrap();
        let metrics = Metrics::new();
        let exporter = service_exporter(&store.path, metrics.clone()).await;
        let elapsed = ingest_through_service(&*exporter, batches).await;
        assert_eq!(
            metrics.counter_total("otelcol_exporter_sent_spans"),
            total as u64 / batch_size as u64 * batch_size as u64
        );
        elapsed
    };
    let cpu = cpu_seconds() - cpu_before;
    let stolen = stolen_seconds() - stolen_before;
    for (name, ran, waited) in thread_cpu_seconds() {
        if ran >= 0.01 {
            println!("  thread {name}: {ran:.2} CPU-s, {waited:.2} s waiting for a CPU");
        }
    }
    let how = if store_only {
        "into the store"
    } else {
        "through the sending queue"
    };
    println!(
        "ingest {how}: {total} spans (10 span + 5 resource attributes) in batches of {batch_size}: {:.2}s = {:.0} spans/s; {cpu:.2} CPU-s = {:.0} spans per CPU-second",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / cpu
    );
    println!(
        "CPU time the hypervisor took from this VM meanwhile (steal, all cores): {stolen:.1} s \
         (more than a few seconds makes the run unfit for comparison)"
    );
    let size = std::fs::metadata(&store.path).map(|m| m.len()).unwrap_or(0);
    println!("database size: {:.1} MiB", size as f64 / 1048576.0);
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --release --ignored --nocapture"]
async fn sqlite_bench_queries() {
    allocators_as_in_the_binary();
    let total = env("SQLITE_BENCH_SPANS", 1_000_000);
    let batch_size = env("SQLITE_BENCH_BATCH", 1_000);
    let start = 1_700_000_000_000_000_000u64;
    let dir = tempfile::tempdir().unwrap();
    // SQLITE_BENCH_DIR: the database a previous run kept, queried without loading again.
    if let Ok(kept) = std::env::var("SQLITE_BENCH_DIR") {
        let store = Store::open(std::path::Path::new(&kept), |_| {}).await;
        query_measurements(&store, total, batch_size, start).await;
        store.exporter.shutdown().await.unwrap();
        return;
    }
    let store = Store::open(dir.path(), |_| {}).await;
    let elapsed = ingest_into_store(&store, batches(total, batch_size, start)).await;
    println!(
        "loaded {total} spans in {:.1}s ({:.0} spans/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    // A 2,000-span trace on top.
    let mut rng = Rng(7);
    let big: Vec<Span> = (0..2000u64)
        .map(|k| {
            let mut sp = span(
                u64::MAX / 2,
                10_000_000_000 + k,
                "big",
                start + k,
                1000,
                vec![],
            );
            sp.attributes = (0..10)
                .map(|a| kv(&format!("attr{a}"), i(rng.below(100) as i64)))
                .collect();
            sp
        })
        .collect();
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("big"))], big))
        .await
        .unwrap();
    // Segments are sealed in the background; queries are measured once it caught up.
    let t = Instant::now();
    while store
        .count("SELECT count(*) FROM segments WHERE sealed = 0")
        .await
        > 1
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "sealing caught up {:.1}s after the last batch",
        t.elapsed().as_secs_f64()
    );
    if std::env::var("SQLITE_BENCH_KEEP").is_ok() {
        let keep = dir.keep();
        println!("kept {}", keep.display());
    }
    query_measurements(&store, total, batch_size, start).await;
    store.exporter.shutdown().await.unwrap();
}

/// `GET /v1/trace/{id}` as a client sees it: the query extension's router served on a
/// socket on 127.0.0.1, asked over one keep-alive HTTP/1.1 connection; each sample runs
/// from the request's first byte to the body's last.
struct TraceClient {
    stream: tokio::net::TcpStream,
    request: String,
    /// Kept between requests, as a client's connection buffer is.
    buffer: Vec<u8>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TraceClient {
    async fn connect(reader: Arc<dyn teletrace_core::storage::TraceReader>, id: &[u8; 16]) -> Self {
        use teletrace_extensions::query::api_v1::ApiState;
        let app = teletrace_extensions::query::server::router(
            ApiState {
                reader,
                system_id: Arc::from("bench"),
            },
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        TraceClient {
            stream,
            request: format!("GET /v1/trace/{hex} HTTP/1.1\r\nHost: bench\r\n\r\n"),
            buffer: Vec::with_capacity(1 << 16),
            server,
        }
    }

    /// One request; checks the answer holds `spans` spans.
    async fn get(&mut self, spans: usize) -> Duration {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let t = Instant::now();
        self.stream
            .write_all(self.request.as_bytes())
            .await
            .unwrap();
        self.buffer.clear();
        let (head, length) = loop {
            let n = self.stream.read_buf(&mut self.buffer).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .expect("a content-length")
                    .trim()
                    .parse()
                    .unwrap();
                break (end + 4, length);
            }
        };
        self.buffer
            .reserve((head + length).saturating_sub(self.buffer.len()));
        while self.buffer.len() < head + length {
            let n = self.stream.read_buf(&mut self.buffer).await.unwrap();
            assert!(n > 0, "the server closed the connection");
        }
        let elapsed = t.elapsed();
        assert!(self.buffer.starts_with(b"HTTP/1.1 200"));
        // Counted by the opening of each span's object, outside the timing.
        let body = &self.buffer[head..];
        let count = body.windows(12).filter(|w| w == b"{\"resource\":").count();
        assert_eq!(count, spans);
        elapsed
    }
}

impl Drop for TraceClient {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads measured against the loaded database.
async fn query_measurements(store: &Store, total: usize, batch_size: usize, start: u64) {
    let reader = store.reader.clone();

    let mut small = Vec::new();
    for n in 0..200u64 {
        let loaded = (total / batch_size * batch_size) as u64;
        let id = random_trace_id((n * 4_999) % (loaded / 10));
        let t = Instant::now();
        let spans = reader.get_trace(&id).await.unwrap();
        small.push(t.elapsed());
        assert_eq!(spans.len(), 10);
    }
    println!("get_trace (10 spans): {}", percentiles(small));
    let mut large = Vec::new();
    let big_id: [u8; 16] = trace_id(u64::MAX / 2).try_into().unwrap();
    for _ in 0..30 {
        let t = Instant::now();
        let spans = reader.get_trace(&big_id).await.unwrap();
        large.push(t.elapsed());
        assert_eq!(spans.len(), 2000);
    }
    println!("get_trace (2,000 spans): {}", percentiles(large));
    let mut client = TraceClient::connect(reader.clone(), &big_id).await;
    let mut http = Vec::new();
    for _ in 0..30 {
        http.push(client.get(2000).await);
    }
    println!(
        "GET /v1/trace/{{id}} over HTTP (2,000 spans): {}",
        percentiles(http)
    );

    let everything = Timeframe {
        start_ns: 0,
        end_ns: u64::MAX,
    };
    let cases: Vec<(&str, Vec<_>)> = vec![
        (
            "method=GET AND status=500 (broad x broad)",
            vec![
                filter(
                    "span.attributes.http.method",
                    Operator::Equals,
                    json!("GET"),
                ),
                filter(
                    "span.attributes.http.status_code",
                    Operator::Equals,
                    json!(500),
                ),
            ],
        ),
        (
            "user.id=user-42 AND method=GET (selective x broad)",
            vec![
                filter(
                    "span.attributes.user.id",
                    Operator::Equals,
                    json!("user-42"),
                ),
                filter(
                    "span.attributes.http.method",
                    Operator::Equals,
                    json!("GET"),
                ),
            ],
        ),
        (
            "route=resource-3 AND thread.id<5 (broad x range)",
            vec![
                filter(
                    "span.attributes.http.route",
                    Operator::Equals,
                    json!("/api/v1/resource-3"),
                ),
                filter("span.attributes.thread.id", Operator::Lt, json!(5)),
            ],
        ),
        (
            "service.name=service-3 AND status=404 (resource x span)",
            vec![
                filter(
                    "resource.attributes.service.name",
                    Operator::Equals,
                    json!("service-3"),
                ),
                filter(
                    "span.attributes.http.status_code",
                    Operator::Equals,
                    json!(404),
                ),
            ],
        ),
        (
            "user.id=user-42 AND db.rows>990 (rare combination)",
            vec![
                filter(
                    "span.attributes.user.id",
                    Operator::Equals,
                    json!("user-42"),
                ),
                filter("span.attributes.db.rows", Operator::Gt, json!(990)),
            ],
        ),
        (
            "component=db AND http.url contains 12345 (broad x unindexable)",
            vec![
                filter("span.attributes.component", Operator::Equals, json!("db")),
                filter(
                    "span.attributes.http.url",
                    Operator::Contains,
                    json!("12345"),
                ),
            ],
        ),
    ];
    for (label, filters) in cases {
        let mut samples = Vec::new();
        let mut found = 0;
        for _ in 0..20 {
            let req = SearchRequest {
                timeframe: everything,
                filters: filters.clone(),
                sort: Vec::new(),
                next_token: None,
                limit: 50,
            };
            let t = Instant::now();
            let page = reader.search(&req).await.unwrap();
            samples.push(t.elapsed());
            found = page.spans.len();
        }
        println!(
            "search {label}: {} ({found} spans in page)",
            percentiles(samples)
        );
    }
    // The last hour only (a tenth of the data), two filters.
    let recent = Timeframe {
        start_ns: start + (total as u64 * 1_000) * 9 / 10,
        end_ns: u64::MAX,
    };
    let mut samples = Vec::new();
    for _ in 0..20 {
        let req = SearchRequest {
            timeframe: recent,
            filters: vec![
                filter(
                    "span.attributes.http.method",
                    Operator::Equals,
                    json!("POST"),
                ),
                filter(
                    "span.attributes.http.status_code",
                    Operator::Equals,
                    json!(500),
                ),
            ],
            sort: Vec::new(),
            next_token: None,
            limit: 50,
        };
        let t = Instant::now();
        reader.search(&req).await.unwrap();
        samples.push(t.elapsed());
    }
    println!(
        "search last tenth, method=POST AND status=500: {}",
        percentiles(samples)
    );

    let t = Instant::now();
    let values = reader
        .tag_values("span.attributes.http.route", everything, &[])
        .await
        .unwrap();
    println!(
        "tag_values http.route over everything: {:.0} ms ({} values)",
        t.elapsed().as_secs_f64() * 1e3,
        values.len()
    );
    let t = Instant::now();
    reader
        .tag_statistics(
            "externalFields.durationNano",
            recent,
            &[],
            &[
                teletrace_core::storage::Statistic::P50,
                teletrace_core::storage::Statistic::P99,
            ],
        )
        .await
        .unwrap();
    println!(
        "tag_statistics duration p50/p99 over the last tenth: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let tags = reader.tags().await.unwrap();
    println!(
        "tags: {:.2} ms ({} tags)",
        t.elapsed().as_secs_f64() * 1e3,
        tags.len()
    );
}

/// Repeats reads against a database kept by `sqlite_bench_queries` (`SQLITE_BENCH_KEEP=1`
/// prints its directory; pass it as `SQLITE_BENCH_DIR`), for profiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; needs SQLITE_BENCH_DIR"]
async fn sqlite_bench_reads_on_kept_database() {
    allocators_as_in_the_binary();
    let Ok(dir) = std::env::var("SQLITE_BENCH_DIR") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir), |_| {}).await;
    let big_id: [u8; 16] = trace_id(u64::MAX / 2).try_into().unwrap();
    // Each round takes one sample of each, so the machine's changes of pace (this VM's
    // cores run faster and slower from second to second) fall on all of them alike.
    let mut client = TraceClient::connect(store.reader.clone(), &big_id).await;
    let mut structs: Vec<Duration> = Vec::new();
    let mut structs_json = Vec::new();
    let mut rows_json = Vec::new();
    let mut http = Vec::new();
    // SQLITE_BENCH_ONLY=http: only the HTTP requests, for a profile of that path alone.
    if std::env::var("SQLITE_BENCH_ONLY").is_ok_and(|only| only == "http") {
        let mut http = Vec::new();
        for _ in 0..env("SQLITE_BENCH_REPEAT", 50) {
            http.push(client.get(2000).await);
        }
        println!(
            "GET /v1/trace/{{id}} over HTTP (2,000 spans): {}",
            percentiles(http)
        );
        return;
    }
    for _ in 0..env("SQLITE_BENCH_REPEAT", 50) {
        let t = Instant::now();
        let spans = store.reader.get_trace(&big_id).await.unwrap();
        let read = t.elapsed();
        let body = teletrace_extensions::query::model::spans_response(None, &spans);
        structs.push(read);
        structs_json.push(t.elapsed());
        assert_eq!(spans.len(), 2000);
        assert!(body.len() > 2000);

        let t = Instant::now();
        let mut json = Vec::new();
        let count = store
            .reader
            .write_trace_json(&big_id, &mut json)
            .await
            .unwrap();
        rows_json.push(t.elapsed());
        assert_eq!(count, 2000);

        http.push(client.get(2000).await);
    }
    println!("get_trace (2,000 spans): {}", percentiles(structs));
    println!(
        "get_trace + its JSON (2,000 spans): {}",
        percentiles(structs_json)
    );
    println!(
        "write_trace_json, from the rows (2,000 spans): {}",
        percentiles(rows_json)
    );
    println!(
        "GET /v1/trace/{{id}} over HTTP (2,000 spans): {}",
        percentiles(http)
    );
    let t = Instant::now();
    let values = store
        .reader
        .tag_values(
            "span.attributes.http.route",
            Timeframe {
                start_ns: 0,
                end_ns: u64::MAX,
            },
            &[],
        )
        .await
        .unwrap();
    println!(
        "tag_values http.route over everything: {:.0} ms ({} values)",
        t.elapsed().as_secs_f64() * 1e3,
        values.len()
    );
    store.exporter.shutdown().await.unwrap();
}
