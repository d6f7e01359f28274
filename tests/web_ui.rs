//! The query extension's web UI in a real browser: the all-in-one preset on ephemeral
//! ports gets spans from the `opentelemetry-otlp` SDK (two services, http attributes,
//! events, an error) and a 10,000-span trace over raw OTLP/HTTP, then
//! `tests/browser/ui.mjs` drives the pages in headless Chromium (`playwright-core`) and
//! headless Firefox (`puppeteer-core` over WebDriver BiDi) through the same scenarios and
//! writes screenshots to `target/screenshots/<browser>/`.
//!
//! The Chromium test needs `TELETRACE_TEST_BROWSER` (the Chromium executable, e.g.
//! `/usr/bin/chromium`), the Firefox test `TELETRACE_TEST_FIREFOX` (e.g.
//! `/usr/bin/firefox`), and both `npm ci` run in `tests/browser`; `.ci/run` does all
//! three. Without its variable a browser test is skipped with a notice. The asset checks
//! run everywhere.

mod common;

use common::otlp::{provider, Transport};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue as PbKeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status as PbStatus,
};
use prost::Message;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Spans in the large trace.
const BIG_TRACE_SPANS: usize = 10_000;

fn base(running: &common::Running) -> String {
    format!("http://{}", running.addr("extensions::query", "http"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets_are_served_with_types_and_validators() {
    let dir = common::fresh_dir("ui", "assets");
    let running = common::start_preset(&dir).await;
    let base = base(&running);
    let http = reqwest::Client::new();

    for path in [
        "/",
        "/search?range=15m",
        "/trace/0af7651916cd43dd8448eb211c80319c",
        "/services",
        "/dependencies",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains(r#"<script type="module" src="/assets/app.js">"#),
            "{body}"
        );
        // Nothing is loaded from another origin.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }

    let r = http
        .get(format!("{base}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].clone();
    let again = http
        .get(format!("{base}/assets/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let css = http
        .get(format!("{base}/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // Unknown assets and routes stay JSON errors; the API is untouched.
    for path in ["/assets/missing.js", "/no-such-page", "/v1/nope"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["errorMessage"].is_string(), "{path}: {body}");
    }
    let pong = http.get(format!("{base}/v1/ping")).send().await.unwrap();
    assert_eq!(pong.text().await.unwrap(), "pong");
    running.stop().await;
}

/// Sends two services' spans through the SDK: a `GET /checkout` in `ui-frontend` calling
/// `POST /pay` in `ui-backend` (over OTLP/HTTP), which fails, and a database child. Returns the trace ID.
async fn send_checkout_trace(grpc: String, http: String) -> String {
    tokio::task::spawn_blocking(move || {
        let front = provider(Transport::Grpc, &grpc, "ui-frontend");
        let back = provider(Transport::HttpProto, &http, "ui-backend");
        let ft = front.tracer("ui-tests");
        let bt = back.tracer("ui-tests-backend");
        let mut root = ft
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("http.response.status_code", 200i64),
            ])
            .start(&ft);
        root.add_event("cart loaded", vec![KeyValue::new("cart.items", 3i64)]);
        let trace_id = root.span_context().trace_id().to_string();
        let root_cx = opentelemetry::Context::current_with_span(root);
        let client = ft
            .span_builder("call payment")
            .with_kind(SpanKind::Client)
            .start_with_context(&ft, &root_cx);
        let client_cx = root_cx.with_span(client);
        let mut pay = bt
            .span_builder("POST /pay")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/pay"),
                KeyValue::new("http.response.status_code", 500i64),
            ])
            .start_with_context(&bt, &client_cx);
        std::thread::sleep(Duration::from_millis(5));
        pay.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", "PaymentDeclined"),
                KeyValue::new("exception.message", "card declined"),
            ],
        );
        let pay_cx = client_cx.with_span(pay);
        let mut db = bt
            .span_builder("db query")
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("db.system.name", "sqlite")])
            .start_with_context(&bt, &pay_cx);
        std::thread::sleep(Duration::from_millis(3));
        db.end();
        pay_cx.span().set_status(Status::error("payment declined"));
        pay_cx.span().end();
        client_cx.span().end();
        root_cx.span().end();
        back.force_flush().unwrap();
        front.force_flush().unwrap();
        back.shutdown().unwrap();
        front.shutdown().unwrap();
        trace_id
    })
    .await
    .unwrap()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn attr(key: &str, value: any_value::Value) -> PbKeyValue {
    PbKeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Sends a trace of `BIG_TRACE_SPANS` spans (a tree ten wide, four deep, every 7th span
/// with an event and every 97th failing) over raw OTLP/HTTP; returns its trace ID.
async fn send_big_trace(http_endpoint: &str) -> String {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&now_ns().to_be_bytes());
    trace_id[8..].copy_from_slice(b"big-10k!");
    let span_id = |i: usize| -> Vec<u8> { ((i as u64) + 1).to_be_bytes().to_vec() };
    // Two minutes ago, so that the SDK's spans are the newest in searches.
    let start = now_ns() - 120_000_000_000;
    let spans: Vec<Span> = (0..BIG_TRACE_SPANS)
        .map(|i| {
            let parent = if i == 0 {
                vec![]
            } else {
                span_id((i - 1) / 10)
            };
            let offset = i as u64 * 100_000;
            let duration = 5_000_000 + (i as u64 % 13) * 1_000_000;
            let events = if i % 7 == 0 {
                vec![span::Event {
                    time_unix_nano: start + offset + 1_000_000,
                    name: format!("tick-{i}"),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                }]
            } else {
                vec![]
            };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(i),
                parent_span_id: parent,
                name: if i == 0 {
                    "bulk-root".into()
                } else {
                    format!("bulk-{i}")
                },
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: start + offset,
                end_time_unix_nano: start + offset + duration,
                attributes: vec![attr("bulk.index", any_value::Value::IntValue(i as i64))],
                events,
                status: Some(PbStatus {
                    message: String::new(),
                    code: if i % 97 == 96 {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                }),
                ..Default::default()
            }
        })
        .collect();
    let http = reqwest::Client::new();
    for chunk in spans.chunks(2_000) {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attr(
                        "service.name",
                        any_value::Value::StringValue("ui-bulk".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "ui-tests-raw".into(),
                        ..Default::default()
                    }),
                    spans: chunk.to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let r = http
            .post(format!("{http_endpoint}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    hex(&trace_id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `GET /v1/trace/{id}` holds `n` spans.
async fn wait_for_trace(base: &str, id: &str, n: usize) {
    let http = reqwest::Client::new();
    let mut seen = 0;
    for _ in 0..500 {
        let r = http
            .get(format!("{base}/v1/trace/{id}"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            seen = body["spans"].as_array().map_or(0, |s| s.len());
            if seen >= n {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("trace {id} has {seen} spans, never {n}");
}

/// One browser at a time: two of them at once on a small machine make the scenarios'
/// waits flaky, and their screenshots would interleave.
static BROWSER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The checks `ui.mjs` reports as passed in every browser.
const BROWSER_CHECKS: [&str; 13] = [
    "ok search finds the preset's spans",
    "ok scrolling loads the next page",
    "ok facet click filters",
    "ok status facet filters errors",
    "ok shared URL restores the search",
    "ok waterfall draws every span",
    "ok span details show attributes and events",
    "ok download is OTLP/JSON",
    "ok 10000-span trace renders virtualized",
    "ok filter builder filters",
    "ok custom range searches that range",
    "ok live mode refreshes",
    "ok waterfall keyboard: collapse, expand, select",
];

/// Runs `tests/browser/ui.mjs` in `browser` (`chromium` or `firefox`, the executable
/// named by the environment variable `executable_var`) against the preset fed with the
/// checkout trace and the 10,000-span trace; screenshots go to
/// `target/screenshots/<browser>/`.
async fn run_scenarios(browser: &str, executable_var: &str, library: &str) {
    let Ok(executable) = std::env::var(executable_var) else {
        eprintln!("skipping the {browser} test: {executable_var} is not set (run .ci/run, or point it at {browser} after `npm ci` in tests/browser)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/ui.mjs");
    assert!(
        root.join("tests/browser/node_modules")
            .join(library)
            .is_dir(),
        "run `npm ci` in tests/browser first"
    );
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("target"))
        .join("screenshots")
        .join(browser);
    std::fs::create_dir_all(&screenshots).unwrap();
    let _one_at_a_time = BROWSER_LOCK.lock().await;

    let dir = common::fresh_dir("ui", browser);
    let running = common::start_preset(&dir).await;
    let base = base(&running);
    let big = send_big_trace(&running.http_endpoint()).await;
    let checkout = send_checkout_trace(running.grpc_endpoint(), running.http_endpoint()).await;
    wait_for_trace(&base, &checkout, 4).await;
    wait_for_trace(&base, &big, BIG_TRACE_SPANS).await;
    let http = reqwest::Client::new();
    let probe = http
        .post(format!("{base}/v1/search"))
        .json(&json!({"filters": [{"keyValueFilter": {"key": "span.traceId", "operator": "equals", "value": checkout}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);

    let node = std::env::var("TELETRACE_TEST_NODE").unwrap_or_else(|_| "node".into());
    let browser_name = browser.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(&script)
            .arg(&base)
            .arg(&checkout)
            .arg(&big)
            .env("BROWSER", browser_name)
            .env("BROWSER_PATH", executable)
            .env("SCREENSHOT_DIR", &screenshots)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{browser} test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("browser {browser}:")),
        "not run in {browser}:\n{stdout}"
    );
    for check in BROWSER_CHECKS {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_searches_opens_traces_and_renders_a_10k_span_trace() {
    run_scenarios("chromium", "TELETRACE_TEST_BROWSER", "playwright-core").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_searches_opens_traces_and_renders_a_10k_span_trace() {
    run_scenarios("firefox", "TELETRACE_TEST_FIREFOX", "puppeteer-core").await;
}
