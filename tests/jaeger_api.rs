//! The Jaeger query API (`/api/...`) and `/v1/service-metrics` of the all-in-one preset,
//! end to end: traces across two services are sent by the `opentelemetry-otlp` crate
//! with fixed timestamps, and every endpoint's answer is checked field by field against
//! Jaeger's JSON shape.

mod common;

use common::otlp::{provider, Transport};
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts the Jaeger envelope of a success and returns `data`.
fn data(status: u16, body: &Value) -> Vec<Value> {
    assert_eq!(status, 200, "{body}");
    let items = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(body["total"], json!(items.len()), "{body}");
    assert_eq!(body["limit"], json!(0));
    assert_eq!(body["offset"], json!(0));
    assert_eq!(body["errors"], Value::Null);
    items
}

/// Asserts the Jaeger error envelope with `code`.
fn jaeger_error(status: u16, body: &Value, code: u16) {
    assert_eq!(status, code, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["total"], json!(0));
    assert_eq!(body["limit"], json!(0));
    assert_eq!(body["offset"], json!(0));
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], json!(code));
    assert!(!errors[0]["msg"].as_str().unwrap().is_empty());
}

fn us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// What the SDK sent, for the checks.
struct Sent {
    base: SystemTime,
    trace_a: String,
    trace_b: String,
    a_root: String,
    a_client: String,
    a_handle: String,
    a_db: String,
    linked_trace: String,
    linked_span: String,
}

const MS: Duration = Duration::from_millis(1);

/// Two traces across `frontend` and `backend`:
/// - A (at base): frontend `GET /checkout` (server, 100 ms, error, event `retry`)
///   -> frontend `call backend` (client, 70 ms) -> backend `handle` (server, 60 ms,
///   error) -> backend `db query` (internal, 20 ms, linked to another trace);
/// - B (at base + 1 s): frontend `GET /home` (server, 50 ms, ok) -> backend `handle`
///   (server, 30 ms).
async fn send(endpoint: String, base: SystemTime) -> Sent {
    tokio::task::spawn_blocking(move || {
        let front = provider(Transport::Grpc, &endpoint, "frontend");
        let back = provider(Transport::Grpc, &endpoint, "backend");
        let scope = InstrumentationScope::builder("checkout-lib")
            .with_version("1.2.3")
            .build();
        let ft = front.tracer_with_scope(scope);
        let bt = back.tracer("backend-lib");

        let other = bt.start("linked-target");
        let linked = other.span_context().clone();
        drop(other);

        // Trace A.
        let mut root = ft
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(base)
            .with_attributes([
                KeyValue::new("http.status_code", 500i64),
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("ratio", 0.25f64),
                KeyValue::new("cached", false),
            ])
            .start(&ft);
        root.add_event_with_timestamp(
            "retry",
            base + 10 * MS,
            vec![KeyValue::new("attempt", 2i64)],
        );
        root.set_status(Status::error("boom"));
        let a_root_cx = opentelemetry::Context::current_with_span(root);
        let client = ft
            .span_builder("call backend")
            .with_kind(SpanKind::Client)
            .with_start_time(base + 10 * MS)
            .start_with_context(&ft, &a_root_cx);
        let client_cx = a_root_cx.with_span(client);
        let mut handle = bt
            .span_builder("handle")
            .with_kind(SpanKind::Server)
            .with_start_time(base + 15 * MS)
            .start_with_context(&bt, &client_cx);
        handle.set_status(Status::error("backend failed"));
        let handle_cx = client_cx.with_span(handle);
        let mut db = bt
            .span_builder("db query")
            .with_kind(SpanKind::Internal)
            .with_start_time(base + 20 * MS)
            .with_links(vec![Link::with_context(linked.clone())])
            .start_with_context(&bt, &handle_cx);
        let sent_ids = |cx: &opentelemetry::Context| cx.span().span_context().span_id().to_string();
        let trace_a = a_root_cx.span().span_context().trace_id().to_string();
        let a_root = sent_ids(&a_root_cx);
        let a_client = sent_ids(&client_cx);
        let a_handle = sent_ids(&handle_cx);
        let a_db = db.span_context().span_id().to_string();
        db.end_with_timestamp(base + 40 * MS);
        handle_cx.span().end_with_timestamp(base + 75 * MS);
        client_cx.span().end_with_timestamp(base + 80 * MS);
        a_root_cx.span().end_with_timestamp(base + 100 * MS);

        // Trace B, a second later.
        let b = base + 1000 * MS;
        let mut home = ft
            .span_builder("GET /home")
            .with_kind(SpanKind::Server)
            .with_start_time(b)
            .start(&ft);
        home.set_status(Status::Ok);
        let home_cx = opentelemetry::Context::current_with_span(home);
        let trace_b = home_cx.span().span_context().trace_id().to_string();
        let mut handle_b = bt
            .span_builder("handle")
            .with_kind(SpanKind::Server)
            .with_start_time(b + 10 * MS)
            .start_with_context(&bt, &home_cx);
        handle_b.end_with_timestamp(b + 40 * MS);
        home_cx.span().end_with_timestamp(b + 50 * MS);

        front.force_flush().unwrap();
        back.force_flush().unwrap();
        front.shutdown().unwrap();
        back.shutdown().unwrap();
        Sent {
            base,
            trace_a,
            trace_b,
            a_root,
            a_client,
            a_handle,
            a_db,
            linked_trace: linked.trace_id().to_string(),
            linked_span: linked.span_id().to_string(),
        }
    })
    .await
    .unwrap()
}

fn tag<'a>(tags: &'a Value, key: &str) -> &'a Value {
    tags.as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .unwrap_or_else(|| panic!("no tag {key} in {tags}"))
}

fn has_tag(tags: &Value, key: &str) -> bool {
    tags.as_array().unwrap().iter().any(|t| t["key"] == key)
}

fn span_named<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operationName"] == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

fn trace_ids(traces: &[Value]) -> Vec<String> {
    traces
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_endpoints_answer_in_jaegers_shape() {
    let dir = common::fresh_dir("jaeger", "endpoints");
    let running = common::start_preset(&dir).await;
    let base_url = format!("http://{}", running.addr("extensions::query", "http"));
    let b = base_url.as_str();
    let now = SystemTime::now();
    let base =
        UNIX_EPOCH + Duration::from_secs(now.duration_since(UNIX_EPOCH).unwrap().as_secs() - 600);
    let sent = send(running.grpc_endpoint(), base).await;

    // Wait until both traces are stored whole.
    for _ in 0..250 {
        let (sa, a) = get(b, &format!("/api/traces/{}", sent.trace_a)).await;
        let (sb, bb) = get(b, &format!("/api/traces/{}", sent.trace_b)).await;
        if sa == 200
            && sb == 200
            && a["data"][0]["spans"].as_array().unwrap().len() == 4
            && bb["data"][0]["spans"].as_array().unwrap().len() == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Services and operations.
    let (s, body) = get(b, "/api/services").await;
    assert_eq!(data(s, &body), vec![json!("backend"), json!("frontend")]);
    let (s, body) = get(b, "/api/services/frontend/operations").await;
    assert_eq!(
        data(s, &body),
        vec![
            json!("GET /checkout"),
            json!("GET /home"),
            json!("call backend")
        ]
    );
    let (s, body) = get(b, "/api/operations?service=backend").await;
    assert_eq!(
        data(s, &body),
        vec![
            json!({"name": "db query", "spanKind": "internal"}),
            json!({"name": "handle", "spanKind": "server"}),
            json!({"name": "linked-target", "spanKind": "internal"}),
        ]
    );
    let (s, body) = get(b, "/api/operations?service=frontend&spanKind=client").await;
    assert_eq!(
        data(s, &body),
        vec![json!({"name": "call backend", "spanKind": "client"})]
    );
    let (s, body) = get(b, "/api/operations?service=nobody").await;
    assert!(data(s, &body).is_empty());
    let (s, body) = get(b, "/api/operations").await;
    jaeger_error(s, &body, 400);
    let (s, body) = get(b, "/api/operations?service=backend&spanKind=sideways").await;
    jaeger_error(s, &body, 400);

    // One trace, field by field.
    let (s, body) = get(b, &format!("/api/traces/{}", sent.trace_a)).await;
    let traces = data(s, &body);
    assert_eq!(traces.len(), 1);
    let trace = &traces[0];
    assert_eq!(trace["traceID"], json!(sent.trace_a));
    assert_eq!(trace["warnings"], Value::Null);
    let processes = trace["processes"].as_object().unwrap();
    assert_eq!(processes.len(), 2, "{processes:?}");
    let mut services: Vec<&str> = processes
        .values()
        .map(|p| p["serviceName"].as_str().unwrap())
        .collect();
    services.sort();
    assert_eq!(services, ["backend", "frontend"]);
    for (id, p) in processes {
        assert!(id == "p1" || id == "p2", "{id}");
        assert!(!has_tag(&p["tags"], "service.name"));
        assert_eq!(
            tag(&p["tags"], "telemetry.sdk.language")["value"],
            json!("rust")
        );
    }
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4);
    // Oldest first.
    let starts: Vec<u64> = spans
        .iter()
        .map(|s| s["startTime"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");

    let root = span_named(trace, "GET /checkout");
    let keys: Vec<&str> = root
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "traceID",
        "spanID",
        "operationName",
        "references",
        "startTime",
        "duration",
        "tags",
        "logs",
        "processID",
        "warnings",
    ] {
        assert!(keys.contains(&key), "{key} missing from {root}");
    }
    assert_eq!(root["traceID"], json!(sent.trace_a));
    assert_eq!(root["spanID"], json!(sent.a_root));
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], json!(us(sent.base)));
    assert_eq!(root["duration"], json!(100_000));
    assert_eq!(root["warnings"], Value::Null);
    assert_eq!(
        processes[root["processID"].as_str().unwrap()]["serviceName"],
        json!("frontend")
    );
    let tags = &root["tags"];
    assert_eq!(
        tag(tags, "otel.scope.name"),
        &json!({"key": "otel.scope.name", "type": "string", "value": "checkout-lib"})
    );
    assert_eq!(tag(tags, "otel.scope.version")["value"], json!("1.2.3"));
    assert_eq!(
        tag(tags, "http.status_code"),
        &json!({"key": "http.status_code", "type": "int64", "value": 500})
    );
    assert_eq!(
        tag(tags, "http.route"),
        &json!({"key": "http.route", "type": "string", "value": "/checkout"})
    );
    assert_eq!(
        tag(tags, "ratio"),
        &json!({"key": "ratio", "type": "float64", "value": 0.25})
    );
    assert_eq!(
        tag(tags, "cached"),
        &json!({"key": "cached", "type": "bool", "value": false})
    );
    assert_eq!(
        tag(tags, "span.kind"),
        &json!({"key": "span.kind", "type": "string", "value": "server"})
    );
    assert_eq!(
        tag(tags, "otel.status_code"),
        &json!({"key": "otel.status_code", "type": "string", "value": "ERROR"})
    );
    assert_eq!(
        tag(tags, "error"),
        &json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(tag(tags, "otel.status_description")["value"], json!("boom"));
    assert_eq!(
        root["logs"],
        json!([{"timestamp": us(sent.base + 10 * MS), "fields": [
            {"key": "event", "type": "string", "value": "retry"},
            {"key": "attempt", "type": "int64", "value": 2}
        ]}])
    );

    let client = span_named(trace, "call backend");
    assert_eq!(client["spanID"], json!(sent.a_client));
    assert_eq!(
        client["references"],
        json!([{"refType": "CHILD_OF", "traceID": sent.trace_a, "spanID": sent.a_root}])
    );
    assert_eq!(client["duration"], json!(70_000));
    assert_eq!(tag(&client["tags"], "span.kind")["value"], json!("client"));
    assert!(!has_tag(&client["tags"], "otel.status_code"));
    assert!(!has_tag(&client["tags"], "error"));
    assert_eq!(client["processID"], root["processID"]);

    let handle = span_named(trace, "handle");
    assert_eq!(handle["spanID"], json!(sent.a_handle));
    assert_eq!(handle["references"][0]["spanID"], json!(sent.a_client));
    assert_ne!(handle["processID"], root["processID"]);
    assert_eq!(
        processes[handle["processID"].as_str().unwrap()]["serviceName"],
        json!("backend")
    );
    assert_eq!(
        tag(&handle["tags"], "otel.scope.name")["value"],
        json!("backend-lib")
    );
    assert!(!has_tag(&handle["tags"], "otel.scope.version"));

    let db = span_named(trace, "db query");
    assert_eq!(db["spanID"], json!(sent.a_db));
    assert_eq!(
        db["references"],
        json!([
            {"refType": "CHILD_OF", "traceID": sent.trace_a, "spanID": sent.a_handle},
            {"refType": "FOLLOWS_FROM", "traceID": sent.linked_trace, "spanID": sent.linked_span}
        ])
    );
    assert_eq!(tag(&db["tags"], "span.kind")["value"], json!("internal"));
    assert_eq!(db["logs"], json!([]));

    let (s, body) = get(b, "/api/traces/0123456789abcdef0123456789abcdef").await;
    jaeger_error(s, &body, 404);
    let (s, body) = get(b, "/api/traces/not-hex").await;
    jaeger_error(s, &body, 400);

    // Search.
    let window = format!("start={}&end={}", us(base) - 1, us(base) + 2_000_000);
    let search = |q: String| {
        let b = b.to_string();
        async move {
            let (s, body) = get(&b, &format!("/api/traces?{q}")).await;
            trace_ids(&data(s, &body))
        }
    };
    assert_eq!(
        search(format!("service=frontend&{window}")).await,
        vec![sent.trace_b.clone(), sent.trace_a.clone()]
    );
    assert_eq!(
        search("service=frontend&lookback=1h".into()).await,
        vec![sent.trace_b.clone(), sent.trace_a.clone()]
    );
    assert_eq!(
        search(format!("service=frontend&{window}&limit=1")).await,
        vec![sent.trace_b.clone()]
    );
    assert_eq!(
        search(format!("service=frontend&operation=GET%20%2Fhome&{window}")).await,
        vec![sent.trace_b.clone()]
    );
    let tags = "%7B%22http.status_code%22%3A%22500%22%7D"; // {"http.status_code":"500"}
    assert_eq!(
        search(format!("service=frontend&tags={tags}&{window}")).await,
        vec![sent.trace_a.clone()]
    );
    assert_eq!(
        search(format!("service=backend&tags=error%3Dtrue&{window}")).await,
        vec![sent.trace_a.clone()]
    );
    assert_eq!(
        search(format!(
            "service=backend&tags=telemetry.sdk.language%3Drust&{window}&limit=5"
        ))
        .await
        .len(),
        2
    );
    assert_eq!(
        search(format!("service=frontend&minDuration=80ms&{window}")).await,
        vec![sent.trace_a.clone()]
    );
    assert_eq!(
        search(format!(
            "service=frontend&minDuration=45ms&maxDuration=0.06s&{window}"
        ))
        .await,
        vec![sent.trace_b.clone()]
    );
    assert!(search(format!(
        "service=frontend&start={}&end={}",
        us(base) - 2_000_000,
        us(base) - 1
    ))
    .await
    .is_empty());
    assert_eq!(
        search(format!("traceID={}", sent.trace_a)).await,
        vec![sent.trace_a.clone()]
    );
    let (s, body) = get(b, "/api/traces?lookback=1h").await;
    jaeger_error(s, &body, 400);
    let (s, body) = get(b, "/api/traces?service=frontend&minDuration=soon").await;
    jaeger_error(s, &body, 400);
    let (s, body) = get(b, "/api/traces?service=frontend&tags=%7Bbad").await;
    jaeger_error(s, &body, 400);

    // Dependencies.
    let end_ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let (s, body) = get(
        b,
        &format!("/api/dependencies?endTs={end_ms}&lookback=3600000"),
    )
    .await;
    assert_eq!(
        data(s, &body),
        vec![json!({"parent": "frontend", "child": "backend", "callCount": 2, "errorCount": 1})]
    );
    let (s, body) = get(
        b,
        &format!(
            "/api/dependencies?endTs={}&lookback=1000",
            ns(base) / 1_000_000 - 10_000
        ),
    )
    .await;
    assert!(data(s, &body).is_empty());
    let (s, body) = get(b, "/api/dependencies?endTs=yesterday").await;
    jaeger_error(s, &body, 400);

    // Service metrics: entry spans are the two frontend roots (100 ms error, 50 ms ok)
    // and the two backend `handle` spans (60 ms error, 30 ms ok).
    let (start, end) = (ns(base), ns(base) + 2_000_000_000);
    let (s, body) = get(
        b,
        &format!("/v1/service-metrics?start={start}&end={end}&step=1000000000"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{body}");
    let front = &groups[1];
    assert_eq!(front["service"], json!("frontend"));
    assert_eq!(front["operation"], Value::Null);
    assert_eq!(front["count"], json!(2));
    assert_eq!(front["errorCount"], json!(1));
    assert_eq!(front["rate"], json!(1.0));
    assert_eq!(front["errorRate"], json!(0.5));
    assert_eq!(front["p50"], json!(50_000_000));
    assert_eq!(front["p95"], json!(100_000_000));
    assert_eq!(front["p99"], json!(100_000_000));
    assert_eq!(
        front["series"],
        json!([
            {"time": start, "count": 1, "errorCount": 1, "p50": 100_000_000, "p95": 100_000_000, "p99": 100_000_000},
            {"time": start + 1_000_000_000, "count": 1, "errorCount": 0, "p50": 50_000_000, "p95": 50_000_000, "p99": 50_000_000}
        ])
    );
    let back = &groups[0];
    assert_eq!(back["service"], json!("backend"));
    assert_eq!(
        (back["count"].clone(), back["errorCount"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(
        (back["p50"].clone(), back["p99"].clone()),
        (json!(30_000_000), json!(60_000_000))
    );

    let (s, body) = get(
        b,
        &format!("/v1/service-metrics?start={start}&end={end}&service=backend"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    assert_eq!(groups[0]["service"], json!("backend"));
    assert_eq!(groups[0]["operation"], json!("handle"));
    assert_eq!(groups[0]["count"], json!(2));
    // Default step: (end - start) / 60; the two spans fall in two buckets.
    assert_eq!(groups[0]["series"].as_array().unwrap().len(), 2);

    for bad in [
        "/v1/service-metrics".to_string(),
        format!("/v1/service-metrics?start={end}&end={start}"),
        format!("/v1/service-metrics?start={start}&end={end}&step=0"),
        format!("/v1/service-metrics?start=x&end={end}"),
    ] {
        let (s, body) = get(b, &bad).await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body["errorMessage"].as_str().is_some(), "{body}");
    }

    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
