//! The all-in-one preset (the embedded default config) end to end: spans sent by the
//! `opentelemetry-otlp` crate land in SQLite and come back through the Teletrace v1 API.

mod common;

use common::otlp::{provider, Transport};
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::KeyValue;
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(running: &common::Running) -> Api {
        Api {
            base: format!("http://{}", running.addr("extensions::query", "http")),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn search(&self, filters: Value) -> Vec<Value> {
        let (status, body) = self
            .post("/v1/search", json!({"timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0}, "filters": filters}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["spans"].as_array().unwrap().clone()
    }

    /// Waits until a search for `filters` finds `n` spans.
    async fn wait_for(&self, filters: Value, n: usize) {
        for _ in 0..250 {
            if self.search(filters.clone()).await.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never found {n} spans for {filters}");
    }
}

fn kv(key: &str, operator: &str, value: Value) -> Value {
    json!({"keyValueFilter": {"key": key, "operator": operator, "value": value}})
}

/// Sends a trace with typed attributes, an event and a link; returns its trace ID (hex).
async fn send_typed_trace(endpoint: String) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "typed-service");
        let tracer = p.tracer("typed");
        let other = tracer.start("linked-target");
        let linked = other.span_context().clone();
        drop(other);
        let mut root = tracer
            .span_builder("typed-root")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("str.attr", "hello it's \"quoted\""),
                KeyValue::new("int.attr", 42i64),
                KeyValue::new("float.attr", 2.5f64),
                KeyValue::new("bool.attr", true),
            ])
            .with_links(vec![Link::with_context(linked.clone())])
            .start(&tracer);
        root.add_event("checkpoint", vec![KeyValue::new("event.step", 7i64)]);
        root.set_status(Status::error("bad thing"));
        let trace_id = root.span_context().trace_id().to_string();
        root.end();
        p.force_flush().unwrap();
        p.shutdown().unwrap();
        (trace_id, linked.trace_id().to_string())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_teletrace_shapes() {
    let dir = common::fresh_dir("aio", "endpoints");
    let running = common::start_preset(&dir).await;
    let api = Api::new(&running);
    let (trace_id, linked_trace) = send_typed_trace(running.grpc_endpoint()).await;
    api.wait_for(json!([kv("span.name", "equals", json!("typed-root"))]), 1)
        .await;

    // ping
    let r = reqwest::get(format!("{}/v1/ping", api.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "pong");

    // search: the span, field by field, with events and links
    let spans = api
        .search(json!([kv("span.name", "equals", json!("typed-root"))]))
        .await;
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s["span"]["traceId"], json!(trace_id));
    assert_eq!(s["span"]["name"], json!("typed-root"));
    assert_eq!(s["span"]["kind"], json!(2));
    assert_eq!(s["span"]["status"]["code"], json!(2));
    assert_eq!(s["span"]["status"]["message"], json!("bad thing"));
    assert_eq!(s["span"]["attributes"]["int.attr"], json!(42));
    assert_eq!(s["span"]["attributes"]["float.attr"], json!(2.5));
    assert_eq!(s["span"]["attributes"]["bool.attr"], json!(true));
    assert_eq!(
        s["span"]["attributes"]["str.attr"],
        json!("hello it's \"quoted\"")
    );
    assert_eq!(s["span"]["events"][0]["name"], json!("checkpoint"));
    assert_eq!(s["span"]["events"][0]["attributes"]["event.step"], json!(7));
    assert_eq!(s["span"]["links"][0]["traceId"], json!(linked_trace));
    assert_eq!(
        s["resource"]["attributes"]["service.name"],
        json!("typed-service")
    );
    assert_eq!(s["scope"]["name"], json!("typed"));
    let start = s["span"]["startTimeUnixNano"].as_u64().unwrap();
    let end = s["span"]["endTimeUnixNano"].as_u64().unwrap();
    assert_eq!(
        s["externalFields"]["durationNano"].as_u64().unwrap(),
        end - start
    );
    assert!(s["ingestionTimeUnixNano"].as_u64().unwrap() > 1_700_000_000_000_000_000);

    // trace
    let (status, body) = api.get(&format!("/v1/trace/{trace_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["spans"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = api.get("/v1/trace/00000000000000000000000000000001").await;
    assert_eq!(status, 404);
    assert!(body["errorMessage"].is_string());
    let (status, _) = api.get("/v1/trace/not-hex").await;
    assert_eq!(status, 400);

    // tags
    let (status, body) = api.get("/v1/tags").await;
    assert_eq!(status, 200);
    let tags = body["Tags"].as_array().unwrap();
    let names: Vec<&str> = tags.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in [
        "span.attributes.int.attr",
        "resource.attributes.service.name",
        "span.name",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // tag values
    let (status, body) = api
        .post("/v1/tags/span.attributes.int.attr", json!({"timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0}, "filters": []}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"], json!([{"value": 42, "count": 1}]));

    // statistics
    let (status, body) = api
        .post(
            "/v1/tags/externalFields.durationNano/statistics",
            json!({"timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0}, "filters": [kv("span.name", "equals", json!("typed-root"))], "desiredStatistics": ["min", "max", "avg", "p50", "p99"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = (end - start) as f64;
    for stat in ["min", "max", "avg", "p50", "p99"] {
        assert_eq!(body["statistics"][stat].as_f64(), Some(d), "{stat}: {body}");
    }

    // system info: stable
    let (_, first) = api.get("/v1/system-info").await;
    assert!(first["systemId"].as_str().is_some_and(|s| !s.is_empty()));

    // bad request
    let r = api
        .http
        .post(format!("{}/v1/search", api.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["errorMessage"].is_string());

    running.stop().await;
    // The database survives a restart, and so does the system ID.
    let running = common::start_preset(&dir).await;
    let api = Api::new(&running);
    assert_eq!(
        api.search(json!([kv("span.name", "equals", json!("typed-root"))]))
            .await
            .len(),
        1
    );
    let (_, again) = api.get("/v1/system-info").await;
    assert_eq!(first["systemId"], again["systemId"]);
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_on_each_value_type_and_injection() {
    let dir = common::fresh_dir("aio", "operators");
    let running = common::start_preset(&dir).await;
    let api = Api::new(&running);
    let endpoint = running.grpc_endpoint();
    tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "ops");
        let tracer = p.tracer("ops");
        for i in 0..5i64 {
            let mut s = tracer
                .span_builder(format!("op-{i}"))
                .with_attributes([
                    KeyValue::new("s", format!("value-{i}")),
                    KeyValue::new("n", i),
                    KeyValue::new("f", i as f64 + 0.5),
                    KeyValue::new("b", i % 2 == 0),
                ])
                .start(&tracer);
            if i == 0 {
                s.set_attribute(KeyValue::new("only.on.zero", "x"));
            }
            s.end();
        }
        p.shutdown().unwrap();
    })
    .await
    .unwrap();
    api.wait_for(
        json!([kv(
            "resource.attributes.service.name",
            "equals",
            json!("ops")
        )]),
        5,
    )
    .await;

    let names = |spans: Vec<Value>| {
        let mut n: Vec<String> = spans
            .iter()
            .map(|s| s["span"]["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            kv("span.attributes.s", "equals", json!("value-1")),
            vec!["op-1"],
        ),
        (
            kv("span.attributes.s", "not_equals", json!("value-1")),
            vec!["op-0", "op-2", "op-3", "op-4"],
        ),
        (
            kv("span.attributes.s", "in", json!(["value-1", "value-3"])),
            vec!["op-1", "op-3"],
        ),
        (
            kv("span.attributes.s", "not_in", json!(["value-1", "value-3"])),
            vec!["op-0", "op-2", "op-4"],
        ),
        (
            kv("span.attributes.s", "contains", json!("ue-4")),
            vec!["op-4"],
        ),
        (
            kv("span.attributes.s", "not_contains", json!("ue-4")),
            vec!["op-0", "op-1", "op-2", "op-3"],
        ),
        (
            kv("span.attributes.only.on.zero", "exists", Value::Null),
            vec!["op-0"],
        ),
        (
            kv("span.attributes.only.on.zero", "not_exists", Value::Null),
            vec!["op-1", "op-2", "op-3", "op-4"],
        ),
        (kv("span.attributes.n", "equals", json!(3)), vec!["op-3"]),
        (
            kv("span.attributes.n", "gt", json!(2)),
            vec!["op-3", "op-4"],
        ),
        (
            kv("span.attributes.n", "gte", json!(2)),
            vec!["op-2", "op-3", "op-4"],
        ),
        (
            kv("span.attributes.n", "lt", json!(2)),
            vec!["op-0", "op-1"],
        ),
        (
            kv("span.attributes.n", "lte", json!(1)),
            vec!["op-0", "op-1"],
        ),
        (
            kv("span.attributes.f", "gt", json!(3.0)),
            vec!["op-3", "op-4"],
        ),
        (
            kv("span.attributes.f", "lte", json!(1.5)),
            vec!["op-0", "op-1"],
        ),
        (kv("span.attributes.f", "equals", json!(2.5)), vec!["op-2"]),
        (
            kv("span.attributes.b", "equals", json!(true)),
            vec!["op-0", "op-2", "op-4"],
        ),
        (
            kv("span.attributes.b", "not_equals", json!(true)),
            vec!["op-1", "op-3"],
        ),
        // An attribute filter matches that key only: "n" is not "s".
        (kv("span.attributes.n", "equals", json!("value-1")), vec![]),
    ];
    let service = kv("resource.attributes.service.name", "equals", json!("ops"));
    for (filter, expected) in cases {
        let found = names(api.search(json!([service.clone(), filter.clone()])).await);
        assert_eq!(found, expected, "{filter}");
    }
    // Injection attempts match literally and leave the tables alone.
    for evil in [
        "x' OR '1'='1",
        "\"; DROP TABLE spans; --",
        "%",
        "value-1' --",
    ] {
        let found = api
            .search(json!([kv("span.attributes.s", "equals", json!(evil))]))
            .await;
        assert!(found.is_empty(), "{evil} matched {found:?}");
        let found = api
            .search(json!([kv("span.name", "contains", json!(evil))]))
            .await;
        assert!(found.is_empty(), "{evil} matched {found:?}");
    }
    assert_eq!(api.search(json!([service])).await.len(), 5, "tables intact");
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_each_match_once_and_big_traces_whole() {
    let dir = common::fresh_dir("aio", "paging");
    let running = common::start_preset(&dir).await;
    let api = Api::new(&running);
    let endpoint = running.grpc_endpoint();
    // One trace of 2,000 spans (a root and 1,999 children), many with equal start times.
    let trace_id = tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "big");
        let tracer = p.tracer("big");
        let root = tracer.start("big-root");
        let trace_id = root.span_context().trace_id().to_string();
        let cx = opentelemetry::Context::current_with_span(root);
        let start = std::time::SystemTime::now();
        for i in 0..1999 {
            let mut s = tracer
                .span_builder(format!("child-{i}"))
                .with_start_time(start + Duration::from_millis((i / 10) as u64))
                .start_with_context(&tracer, &cx);
            s.end();
            if i % 500 == 499 {
                p.force_flush().unwrap();
            }
        }
        cx.span().end();
        drop(cx);
        p.shutdown().unwrap();
        trace_id
    })
    .await
    .unwrap();
    let service = kv("resource.attributes.service.name", "equals", json!("big"));
    api.wait_for(json!([service.clone()]), 200).await;
    for _ in 0..250 {
        let (_, body) = api.get(&format!("/v1/trace/{trace_id}")).await;
        if body["spans"].as_array().map_or(0, Vec::len) == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api.get(&format!("/v1/trace/{trace_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["spans"].as_array().unwrap().len(),
        2000,
        "the whole trace, no page cap"
    );

    for (field, ascending) in [
        ("span.startTimeUnixNano", true),
        ("span.startTimeUnixNano", false),
        ("externalFields.durationNano", true),
    ] {
        let mut seen = std::collections::HashSet::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut request = json!({
                "timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0},
                "filters": [service.clone()],
                "sort": [{"field": field, "ascending": ascending}],
            });
            if let Some(t) = &token {
                request["metadata"] = json!({"nextToken": t});
            }
            let (status, body) = api.post("/v1/search", request).await;
            assert_eq!(status, 200, "{body}");
            for s in body["spans"].as_array().unwrap() {
                assert!(
                    seen.insert(s["span"]["spanId"].as_str().unwrap().to_string()),
                    "span returned twice"
                );
            }
            pages += 1;
            match body["metadata"]["nextToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
            assert!(pages < 100, "paging does not end");
        }
        assert_eq!(
            seen.len(),
            2000,
            "{field} ascending={ascending}: every match exactly once over {pages} pages"
        );
        assert!(pages > 1);
    }
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
