//! Building the synthetic trace data and encoding it.
//!
//! [`build_request`] produces one `ExportTraceServiceRequest` with realistic
//! spans: each trace is a parent/child chain (an HTTP server span, then
//! internal, database-client and HTTP-client spans), attributes use
//! OpenTelemetry semantic-convention keys with string, int, double and bool
//! values, and a configurable share of spans carry status ERROR.
//!
//! [`encode`] turns it into OTLP protobuf or OTLP/JSON bytes, and
//! [`IdLayout`] records where the trace/span IDs and span timestamps sit in
//! those bytes so `--unique-ids` can patch them without re-encoding.

use anyhow::{bail, ensure, Context, Result};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use rand::rngs::StdRng;
use rand::Rng;

use crate::args::Encoding;

/// What each generated request looks like.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Attributes per span.
    pub attributes: u32,
    /// Resource attributes (the first one is `service.name`).
    pub resource_attributes: u32,
    /// Value of `service.name`.
    pub service: String,
    /// Spans per trace (length of the parent/child chain).
    pub trace_depth: u32,
    /// Probability that a span has status ERROR.
    pub error_ratio: f64,
}

/// A generated request plus facts about it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The request message.
    pub request: ExportTraceServiceRequest,
    /// Number of spans in it.
    pub spans: u32,
    /// Number of spans with status ERROR.
    pub error_spans: u32,
    /// Number of traces (root spans) in it.
    pub traces: u32,
}

// ---------------------------------------------------------------------------
// Attribute pools
// ---------------------------------------------------------------------------

const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const ROUTES: &[&str] = &[
    "/api/v1/users/{id}",
    "/api/v1/orders/{id}",
    "/api/v1/orders",
    "/api/v1/cart/{id}/items",
    "/api/v1/products/{id}",
    "/api/v1/search",
    "/health",
];
const OK_STATUS: &[i64] = &[200, 200, 200, 200, 200, 201, 204, 304, 404];
const ERR_STATUS: &[i64] = &[500, 502, 503, 504];
const ERR_MESSAGES: &[&str] = &[
    "connection reset by peer",
    "context deadline exceeded",
    "internal server error",
    "unique constraint violated",
    "upstream returned 503",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "curl/8.5.0",
];
const DB_SYSTEMS: &[&str] = &["postgresql", "mysql", "redis"];
const DB_OPS: &[&str] = &["SELECT", "SELECT", "INSERT", "UPDATE", "DELETE"];
const DB_TABLES: &[&str] = &["users", "orders", "order_items", "products", "sessions"];
const DOWNSTREAMS: &[&str] = &["inventory", "payments", "pricing", "recommendations"];
const FUNCTIONS: &[&str] = &[
    "OrderService.placeOrder",
    "CartService.addItem",
    "UserService.load",
    "PricingEngine.quote",
    "auth.verify_token",
];

/// Per-trace context so related attributes agree with each other.
struct TraceCtx {
    method: &'static str,
    route: &'static str,
    user: u32,
}

/// Per-span context.
struct SpanCtx<'a> {
    trace: &'a TraceCtx,
    error: bool,
    status_code: i64,
    db_system: &'static str,
    db_op: &'static str,
    db_table: &'static str,
    downstream: &'static str,
    function: &'static str,
}

type Gen = fn(&mut StdRng, &SpanCtx<'_>) -> any_value::Value;

fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}
fn i(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}
fn d(v: f64) -> any_value::Value {
    any_value::Value::DoubleValue(v)
}
fn b(v: bool) -> any_value::Value {
    any_value::Value::BoolValue(v)
}
fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn url_path(rng: &mut StdRng, route: &str) -> String {
    route.replace("{id}", &rng.random_range(1..1_000_000u32).to_string())
}

/// Attributes of the root (HTTP server) span, most useful first: the first
/// few already mix all four value types.
const SERVER_ATTRS: &[(&str, Gen)] = &[
    ("http.request.method", |_, c| s(c.trace.method)),
    ("http.route", |_, c| s(c.trace.route)),
    ("http.response.status_code", |_, c| i(c.status_code)),
    ("user.id", |_, c| s(format!("user-{}", c.trace.user))),
    ("app.cache.hit", |r, _| b(r.random_bool(0.7))),
    ("app.cart.total", |r, _| {
        d(round2(r.random_range(0.0..500.0)))
    }),
    ("url.path", |r, c| s(url_path(r, c.trace.route))),
    ("server.address", |_, _| s("api.shop.example.com")),
    ("server.port", |_, _| i(443)),
    ("http.request.body.size", |r, _| i(r.random_range(0..8192))),
    ("client.address", |r, _| {
        s(format!(
            "10.{}.{}.{}",
            r.random_range(0..=255u8),
            r.random_range(0..=255u8),
            r.random_range(1..=254u8)
        ))
    }),
    ("user_agent.original", |r, _| s(pick(r, USER_AGENTS))),
    ("network.protocol.version", |r, _| s(pick(r, &["1.1", "2"]))),
    ("url.scheme", |_, _| s("https")),
    (
        "http.response.body.size",
        |r, _| i(r.random_range(0..65536)),
    ),
    (
        "app.feature_flag.new_checkout",
        |r, _| b(r.random_bool(0.2)),
    ),
    ("app.priority.score", |r, _| {
        d(round2(r.random_range(0.0..1.0)))
    }),
];

const INTERNAL_ATTRS: &[(&str, Gen)] = &[
    ("code.function.name", |_, c| s(c.function)),
    ("app.items.count", |r, _| i(r.random_range(1..20))),
    ("user.id", |_, c| s(format!("user-{}", c.trace.user))),
    ("app.cache.hit", |r, _| b(r.random_bool(0.7))),
    ("app.cart.total", |r, _| {
        d(round2(r.random_range(0.0..500.0)))
    }),
    ("code.file.path", |_, _| s("src/service/orders.rs")),
    ("code.line.number", |r, _| i(r.random_range(10..900))),
    ("thread.name", |r, _| {
        s(format!("worker-{}", r.random_range(0..16)))
    }),
    ("thread.id", |r, _| i(r.random_range(1..64))),
    ("app.retry", |r, _| b(r.random_bool(0.05))),
    ("app.discount.ratio", |r, _| {
        d(round2(r.random_range(0.0..0.3)))
    }),
    ("app.tenant", |r, _| {
        s(format!("tenant-{}", r.random_range(0..50)))
    }),
];

const DB_ATTRS: &[(&str, Gen)] = &[
    ("db.system.name", |_, c| s(c.db_system)),
    ("db.operation.name", |_, c| s(c.db_op)),
    ("db.collection.name", |_, c| s(c.db_table)),
    (
        "db.response.returned_rows",
        |r, _| i(r.random_range(0..200)),
    ),
    ("app.cache.hit", |r, _| b(r.random_bool(0.3))),
    ("db.client.connection.pool.utilization", |r, _| {
        d(round2(r.random_range(0.0..1.0)))
    }),
    ("db.query.text", |_, c| {
        s(match c.db_op {
            "SELECT" => format!("SELECT * FROM {} WHERE id = $1", c.db_table),
            "INSERT" => format!("INSERT INTO {} (id, data) VALUES ($1, $2)", c.db_table),
            "UPDATE" => format!("UPDATE {} SET data = $2 WHERE id = $1", c.db_table),
            _ => format!("DELETE FROM {} WHERE id = $1", c.db_table),
        })
    }),
    ("server.address", |_, c| {
        s(format!("{}.db.internal", c.db_system))
    }),
    ("server.port", |_, c| {
        i(match c.db_system {
            "postgresql" => 5432,
            "mysql" => 3306,
            _ => 6379,
        })
    }),
    ("db.namespace", |_, _| s("shop")),
    ("network.peer.address", |r, _| {
        s(format!("10.1.0.{}", r.random_range(1..=254u8)))
    }),
    ("db.client.prepared", |r, _| b(r.random_bool(0.9))),
];

const CLIENT_ATTRS: &[(&str, Gen)] = &[
    ("http.request.method", |_, c| s(c.trace.method)),
    ("url.full", |r, c| {
        s(format!(
            "http://{}:8080/internal/{}",
            c.downstream,
            r.random_range(1..100_000u32)
        ))
    }),
    ("http.response.status_code", |_, c| i(c.status_code)),
    ("server.address", |_, c| s(c.downstream)),
    ("app.cache.hit", |r, _| b(r.random_bool(0.5))),
    ("app.upstream.cost", |r, _| {
        d(round2(r.random_range(0.0..10.0)))
    }),
    ("server.port", |_, _| i(8080)),
    ("http.request.resend_count", |r, _| {
        i(if r.random_bool(0.05) { 1 } else { 0 })
    }),
    ("network.protocol.version", |_, _| s("1.1")),
    ("peer.service", |_, c| s(c.downstream)),
    ("http.request.body.size", |r, _| i(r.random_range(0..4096))),
    ("app.circuit_breaker.open", |r, _| b(r.random_bool(0.01))),
];

fn padding_attr(rng: &mut StdRng, n: usize) -> any_value::Value {
    match n % 4 {
        0 => s(format!("value-{}", rng.random_range(0..10_000u32))),
        1 => i(rng.random_range(0..1_000_000)),
        2 => d(round2(rng.random_range(0.0..1000.0))),
        _ => b(rng.random_bool(0.5)),
    }
}

fn kv(key: impl Into<String>, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn attrs(rng: &mut StdRng, pool: &[(&str, Gen)], n: u32, ctx: &SpanCtx<'_>) -> Vec<KeyValue> {
    let n = n as usize;
    let mut out = Vec::with_capacity(n);
    for (key, gen) in pool.iter().take(n) {
        out.push(kv(*key, gen(rng, ctx)));
    }
    for extra in pool.len()..n {
        let k = extra - pool.len();
        out.push(kv(format!("app.custom.attr_{k}"), padding_attr(rng, k)));
    }
    out
}

/// Resource attributes: `service.name` first, then common SDK/host ones,
/// padded with `resource.attr_N`.
pub fn resource(rng: &mut StdRng, n: u32, service: &str) -> Resource {
    let instance = format!("{:016x}", rng.random::<u64>());
    let pool: Vec<(&str, any_value::Value)> = vec![
        ("service.name", s(service)),
        ("service.version", s("1.4.2")),
        ("deployment.environment.name", s("benchmark")),
        ("host.name", s("loadgen-host-01")),
        ("process.pid", i(rng.random_range(100..65536))),
        ("service.instance.id", s(instance)),
        ("telemetry.sdk.name", s("opentelemetry")),
        ("telemetry.sdk.language", s("rust")),
        ("telemetry.sdk.version", s("0.33.0")),
        ("host.arch", s("amd64")),
        ("os.type", s("linux")),
        ("k8s.namespace.name", s("shop")),
        ("k8s.pod.name", s(format!("{service}-7d9f8b6c5-x2k4p"))),
        ("cloud.provider", s("aws")),
        ("cloud.region", s("eu-west-1")),
    ];
    let n = n as usize;
    let mut attributes: Vec<KeyValue> = pool.into_iter().take(n).map(|(k, v)| kv(k, v)).collect();
    for k in attributes.len()..n {
        attributes.push(kv(format!("resource.attr_{k}"), padding_attr(rng, k)));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

/// Random non-zero ID bytes.
fn random_id<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    loop {
        let id: [u8; N] = rng.random();
        if id.iter().any(|&x| x != 0) {
            return id;
        }
    }
}

/// Build one request with `spans` spans. Span timestamps lie shortly before
/// `now_unix_nanos`.
pub fn build_request(
    rng: &mut StdRng,
    opts: &GenOptions,
    spans: u32,
    now_unix_nanos: u64,
) -> Generated {
    let depth = opts.trace_depth.max(1);
    let mut out = Vec::with_capacity(spans as usize);
    let mut error_spans = 0;
    let mut traces = 0;
    let mut made = 0;
    while made < spans {
        traces += 1;
        let chain = depth.min(spans - made);
        let trace_id: [u8; 16] = random_id(rng);
        let tctx = TraceCtx {
            method: pick(rng, METHODS),
            route: pick(rng, ROUTES),
            user: rng.random_range(1..100_000),
        };
        // Root starts up to 1s before `now` and lasts 1..500ms.
        let mut start = now_unix_nanos.saturating_sub(rng.random_range(500_000_000..1_500_000_000));
        let mut dur: u64 = rng.random_range(1_000_000..500_000_000);
        let mut parent: Option<[u8; 8]> = None;
        for level in 0..chain {
            let error = rng.random_bool(opts.error_ratio);
            error_spans += u32::from(error);
            let span_id: [u8; 8] = random_id(rng);
            let ctx = SpanCtx {
                trace: &tctx,
                error,
                status_code: if error {
                    pick(rng, ERR_STATUS)
                } else {
                    pick(rng, OK_STATUS)
                },
                db_system: pick(rng, DB_SYSTEMS),
                db_op: pick(rng, DB_OPS),
                db_table: pick(rng, DB_TABLES),
                downstream: pick(rng, DOWNSTREAMS),
                function: pick(rng, FUNCTIONS),
            };
            let (name, kind, pool) = match (level, level % 3) {
                (0, _) => (
                    format!("{} {}", tctx.method, tctx.route),
                    span::SpanKind::Server,
                    SERVER_ATTRS,
                ),
                (_, 1) => (
                    ctx.function.to_string(),
                    span::SpanKind::Internal,
                    INTERNAL_ATTRS,
                ),
                (_, 2) => (
                    format!("{} {}", ctx.db_op, ctx.db_table),
                    span::SpanKind::Client,
                    DB_ATTRS,
                ),
                _ => (
                    tctx.method.to_string(),
                    span::SpanKind::Client,
                    CLIENT_ATTRS,
                ),
            };
            let attributes = attrs(rng, pool, opts.attributes, &ctx);
            let status = if ctx.error {
                Status {
                    message: pick(rng, ERR_MESSAGES).to_string(),
                    code: status::StatusCode::Error as i32,
                }
            } else {
                Status {
                    message: String::new(),
                    code: status::StatusCode::Unset as i32,
                }
            };
            out.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                trace_state: String::new(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                flags: 0x0000_0101, // sampled, has-is-remote (not remote)
                name,
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                attributes,
                status: Some(status),
                ..Default::default()
            });
            // Child: starts within the first 20% of the parent, lasts 30..80%.
            start += dur * rng.random_range(1..=20) / 100;
            dur = (dur * rng.random_range(30..=80) / 100).max(1_000);
            parent = Some(span_id);
            made += 1;
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(rng, opts.resource_attributes, &opts.service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "loadgen".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                spans: out,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
        }],
    };
    Generated {
        request,
        spans,
        error_spans,
        traces,
    }
}

/// Encode a request as OTLP protobuf or OTLP/JSON.
pub fn encode(request: &ExportTraceServiceRequest, encoding: Encoding) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Proto => Ok(request.encode_to_vec()),
        Encoding::Json => serde_json::to_vec(request).context("encoding OTLP/JSON"),
    }
}

// ---------------------------------------------------------------------------
// ID / timestamp patching
// ---------------------------------------------------------------------------

/// What a patch location holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// 16-byte trace ID (raw bytes, or 32 lowercase hex digits in JSON).
    TraceId,
    /// 8-byte span or parent span ID (raw, or 16 hex digits).
    SpanId,
    /// Unix-nanos timestamp: fixed64 little endian, or a decimal string in JSON.
    Time,
}

#[derive(Debug, Clone, Copy)]
struct Patch {
    offset: usize,
    len: usize,
    slot: Slot,
}

/// Locations of trace IDs, span IDs (incl. parent span IDs) and span
/// start/end timestamps inside one encoded request.
///
/// [`IdLayout::apply`] rewrites them in place: every ID is XORed with a mask
/// derived from a per-request key (so IDs stay distinct within the request,
/// parent links stay consistent, and different keys give different IDs), and
/// every timestamp is shifted by the same amount.
#[derive(Debug, Clone)]
pub struct IdLayout {
    binary: bool,
    patches: Vec<Patch>,
}

impl IdLayout {
    /// Locate the patchable fields in an encoded request. The layout is
    /// derived by walking the protobuf wire format (or scanning the OTLP/JSON
    /// keys) and checked against the expected counts; any mismatch is an error
    /// rather than a silently wrong patch.
    pub fn locate(encoded: &[u8], encoding: Encoding, gen: &Generated) -> Result<Self> {
        let layout = match encoding {
            Encoding::Proto => Self::from_proto(encoded)?,
            Encoding::Json => Self::from_json(encoded)?,
        };
        let count = |slot| layout.patches.iter().filter(|p| p.slot == slot).count();
        let spans = gen.spans as usize;
        let parents = spans - gen.traces as usize;
        ensure!(
            count(Slot::TraceId) == spans,
            "trace id count mismatch in encoded request"
        );
        ensure!(
            count(Slot::SpanId) == spans + parents,
            "span id count mismatch in encoded request"
        );
        ensure!(
            count(Slot::Time) == 2 * spans,
            "timestamp count mismatch in encoded request"
        );
        Ok(layout)
    }

    fn from_proto(buf: &[u8]) -> Result<Self> {
        let mut patches = Vec::new();
        // ExportTraceServiceRequest.resource_spans = 1
        for rs in fields(buf, 0)?.into_iter().filter(|f| f.is_len(1)) {
            // ResourceSpans.scope_spans = 2
            for ss in fields(&buf[rs.range()], rs.start)?
                .into_iter()
                .filter(|f| f.is_len(2))
            {
                // ScopeSpans.spans = 2
                for sp in fields(&buf[ss.range()], ss.start)?
                    .into_iter()
                    .filter(|f| f.is_len(2))
                {
                    for f in fields(&buf[sp.range()], sp.start)? {
                        let len = f.end - f.start;
                        let slot = match (f.number, f.wire, len) {
                            (1, 2, 16) => Slot::TraceId,
                            (2, 2, 8) | (4, 2, 8) => Slot::SpanId,
                            (7, 1, 8) | (8, 1, 8) => Slot::Time,
                            _ => continue,
                        };
                        patches.push(Patch {
                            offset: f.start,
                            len,
                            slot,
                        });
                    }
                }
            }
        }
        Ok(Self {
            binary: true,
            patches,
        })
    }

    fn from_json(buf: &[u8]) -> Result<Self> {
        // serde_json escapes quotes inside string values, so these exact byte
        // sequences only occur as object keys. The request carries no links,
        // so every traceId/spanId belongs to a span.
        const KEYS: &[(&[u8], Slot)] = &[
            (b"\"traceId\":\"", Slot::TraceId),
            (b"\"spanId\":\"", Slot::SpanId),
            (b"\"parentSpanId\":\"", Slot::SpanId),
            (b"\"startTimeUnixNano\":\"", Slot::Time),
            (b"\"endTimeUnixNano\":\"", Slot::Time),
        ];
        let mut patches = Vec::new();
        for &(key, slot) in KEYS {
            let mut from = 0;
            while let Some(pos) = find(&buf[from..], key) {
                let start = from + pos + key.len();
                let len = buf[start..]
                    .iter()
                    .position(|&c| c == b'"')
                    .context("unterminated string in OTLP/JSON")?;
                from = start + len;
                let value = &buf[start..start + len];
                let ok = match slot {
                    Slot::TraceId => len == 32 && value.iter().all(u8::is_ascii_hexdigit),
                    Slot::SpanId if len == 0 => continue, // root span: empty parentSpanId
                    Slot::SpanId => len == 16 && value.iter().all(u8::is_ascii_hexdigit),
                    Slot::Time => (1..=20).contains(&len) && value.iter().all(u8::is_ascii_digit),
                };
                if !ok {
                    bail!(
                        "unexpected value for {} in OTLP/JSON",
                        String::from_utf8_lossy(key)
                    );
                }
                patches.push(Patch {
                    offset: start,
                    len,
                    slot,
                });
            }
        }
        Ok(Self {
            binary: false,
            patches,
        })
    }

    /// Rewrite IDs (XOR with masks derived from `key`) and add `time_shift`
    /// nanoseconds to every timestamp. `buf` must be the encoding this layout
    /// was computed from.
    pub fn apply(&self, buf: &mut [u8], key: u64, time_shift: u64) {
        let m0 = splitmix64(key);
        let m1 = splitmix64(m0);
        let m2 = splitmix64(m1);
        let mut trace_mask = [0u8; 16];
        trace_mask[..8].copy_from_slice(&m0.to_le_bytes());
        trace_mask[8..].copy_from_slice(&m1.to_le_bytes());
        let span_mask = m2.to_le_bytes();
        for p in &self.patches {
            let field = &mut buf[p.offset..p.offset + p.len];
            let mask: &[u8] = match p.slot {
                Slot::TraceId => &trace_mask,
                Slot::SpanId => &span_mask,
                Slot::Time => {
                    if time_shift != 0 {
                        shift_time(field, self.binary, time_shift);
                    }
                    continue;
                }
            };
            if self.binary {
                for (byte, m) in field.iter_mut().zip(mask) {
                    *byte ^= m;
                }
            } else {
                for (pair, m) in field.chunks_exact_mut(2).zip(mask) {
                    let v = (hex_val(pair[0]) << 4 | hex_val(pair[1])) ^ m;
                    pair[0] = HEX[(v >> 4) as usize];
                    pair[1] = HEX[(v & 0xf) as usize];
                }
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn shift_time(field: &mut [u8], binary: bool, shift: u64) {
    if binary {
        let mut le = [0u8; 8];
        le.copy_from_slice(field);
        let v = u64::from_le_bytes(le).saturating_add(shift);
        field.copy_from_slice(&v.to_le_bytes());
    } else {
        let Some(v) = std::str::from_utf8(field)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return;
        };
        let new = v.saturating_add(shift).to_string();
        // Same width until the year 2286; if not, leave the value alone
        // rather than corrupt the document.
        if new.len() == field.len() {
            field.copy_from_slice(new.as_bytes());
        }
    }
}

/// SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One protobuf field; `start..end` is the value (for length-delimited
/// fields, the payload after the length prefix), as absolute offsets.
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    end: usize,
}

impl Field {
    fn is_len(&self, number: u64) -> bool {
        self.number == number && self.wire == 2
    }
    fn range(&self) -> std::ops::Range<usize> {
        // Callers slice the top-level buffer, which `start` is relative to.
        self.start..self.end
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).context("truncated varint")?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// Parse the fields of one message. `buf` is the message bytes and `base`
/// its offset in the whole encoded request.
fn fields(buf: &[u8], base: usize) -> Result<Vec<Field>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let wire = (tag & 7) as u8;
        let number = tag >> 3;
        let (start, end) = match wire {
            0 => {
                let s = pos;
                read_varint(buf, &mut pos)?;
                (s, pos)
            }
            1 => (pos, pos + 8),
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)?;
                (pos, pos + len)
            }
            5 => (pos, pos + 4),
            _ => bail!("unsupported protobuf wire type {wire}"),
        };
        ensure!(end <= buf.len(), "truncated protobuf field");
        pos = end;
        out.push(Field {
            number,
            wire,
            start: base + start,
            end: base + end,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn opts() -> GenOptions {
        GenOptions {
            attributes: 10,
            resource_attributes: 5,
            service: "svc".into(),
            trace_depth: 5,
            error_ratio: 0.1,
        }
    }

    /// (trace id, span id, parent span id, start, end) of every span.
    type Ids = (Vec<u8>, Vec<u8>, Vec<u8>, u64, u64);

    fn all_ids(req: &ExportTraceServiceRequest) -> Vec<Ids> {
        req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| {
                (
                    s.trace_id.clone(),
                    s.span_id.clone(),
                    s.parent_span_id.clone(),
                    s.start_time_unix_nano,
                    s.end_time_unix_nano,
                )
            })
            .collect()
    }

    #[test]
    fn request_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        let g = build_request(&mut rng, &opts(), 12, 1_700_000_000_000_000_000);
        assert_eq!(g.spans, 12);
        assert_eq!(g.traces, 3); // 5 + 5 + 2
        let spans = &g.request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 12);
        for s in spans {
            assert_eq!(s.attributes.len(), 10);
            assert!(s.end_time_unix_nano > s.start_time_unix_nano);
        }
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[1].parent_span_id, spans[0].span_id);
        assert_eq!(spans[1].trace_id, spans[0].trace_id);
        assert!(spans[5].parent_span_id.is_empty());
        assert_ne!(spans[5].trace_id, spans[0].trace_id);
        let res = g.request.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(res.attributes.len(), 5);
        assert_eq!(res.attributes[0].key, "service.name");
        let errors = spans
            .iter()
            .filter(|s| s.status.as_ref().unwrap().code == status::StatusCode::Error as i32)
            .count();
        assert_eq!(errors as u32, g.error_spans);
    }

    #[test]
    fn many_attributes_pad() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut o = opts();
        o.attributes = 40;
        o.resource_attributes = 30;
        let g = build_request(&mut rng, &o, 7, 1_700_000_000_000_000_000);
        for s in &g.request.resource_spans[0].scope_spans[0].spans {
            assert_eq!(s.attributes.len(), 40);
        }
        let res = g.request.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(res.attributes.len(), 30);
    }

    fn check_patch(encoding: Encoding) {
        let mut rng = StdRng::seed_from_u64(3);
        let g = build_request(&mut rng, &opts(), 23, 1_700_000_000_000_000_000);
        let enc = encode(&g.request, encoding).unwrap();
        let layout = IdLayout::locate(&enc, encoding, &g).unwrap();
        let mut patched = enc.clone();
        layout.apply(&mut patched, 42, 1_000);
        let decoded = match encoding {
            Encoding::Proto => ExportTraceServiceRequest::decode(&patched[..]).unwrap(),
            Encoding::Json => serde_json::from_slice(&patched).unwrap(),
        };
        let before = all_ids(&g.request);
        let after = all_ids(&decoded);
        assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_ne!(b.0, a.0, "trace id {i} unchanged");
            assert_ne!(b.1, a.1, "span id {i} unchanged");
            assert_eq!(b.2.is_empty(), a.2.is_empty());
            assert_eq!(a.3, b.3 + 1_000);
            assert_eq!(a.4, b.4 + 1_000);
        }
        // Parent links preserved, traces preserved.
        for w in after.windows(2) {
            if !w[1].2.is_empty() {
                assert_eq!(w[1].2, w[0].1);
                assert_eq!(w[1].0, w[0].0);
            }
        }
        // Everything except IDs and times is unchanged.
        let mut a = decoded.clone();
        let mut b = g.request.clone();
        for r in [&mut a, &mut b] {
            for s in &mut r.resource_spans[0].scope_spans[0].spans {
                s.trace_id.clear();
                s.span_id.clear();
                s.parent_span_id.clear();
                s.start_time_unix_nano = 0;
                s.end_time_unix_nano = 0;
            }
        }
        assert_eq!(a, b);
        // A different key gives different IDs; the same key is deterministic.
        let mut other = enc.clone();
        layout.apply(&mut other, 43, 1_000);
        assert_ne!(other, patched);
        let mut again = enc.clone();
        layout.apply(&mut again, 42, 1_000);
        assert_eq!(again, patched);
    }

    #[test]
    fn patch_proto() {
        check_patch(Encoding::Proto);
    }

    #[test]
    fn patch_json() {
        check_patch(Encoding::Json);
    }

    #[test]
    fn json_is_otlp_json() {
        let mut rng = StdRng::seed_from_u64(4);
        let g = build_request(&mut rng, &opts(), 2, 1_700_000_000_000_000_000);
        let v: serde_json::Value =
            serde_json::from_slice(&encode(&g.request, Encoding::Json).unwrap()).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
        let trace_id = span["traceId"].as_str().unwrap();
        assert_eq!(trace_id.len(), 32);
        assert!(trace_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(span["parentSpanId"].as_str().unwrap().len(), 16);
        assert!(
            span["kind"].is_i64(),
            "kind must be an integer: {}",
            span["kind"]
        );
        assert!(span["status"]["code"].is_i64());
        assert!(span["startTimeUnixNano"].is_string());
        let attrs = span["attributes"].as_array().unwrap();
        let first = &attrs[0];
        assert!(first["key"].is_string());
        assert!(first["value"].is_object());
        let res = &v["resourceSpans"][0]["resource"]["attributes"][0];
        assert_eq!(res["key"], "service.name");
        assert_eq!(res["value"]["stringValue"], "svc");
    }
}
