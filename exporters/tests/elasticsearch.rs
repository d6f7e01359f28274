//! The `elasticsearch` exporter against the wire contract of Elasticsearch.
//!
//! By default every test runs against the in-test node in `es_mock` (a real HTTP server
//! on 127.0.0.1). With `TELETRACE_TEST_ES_URL` set (and optionally
//! `TELETRACE_TEST_ES_USER` / `TELETRACE_TEST_ES_PASSWORD` or `TELETRACE_TEST_ES_API_KEY`),
//! the tests that need no failure injection run against that cluster instead, each in
//! indexes of its own; the others print that they are skipped.

mod es_mock;

use es_mock::MockEs;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::component::Kind;
use teletrace_core::registry::{self, BuildContext};
use teletrace_core::storage::StoredSpan;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Exporter, FactoryRef, Host, Traces};
use teletrace_exporters::elasticsearch::bulk::{document_id, BulkEncoder};
use teletrace_exporters::elasticsearch::{MappingMode, METRIC_DOCS_PROCESSED};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Where the tests write: the mock, or a real cluster.
struct Target {
    url: String,
    /// `None` against a real cluster.
    mock: Option<MockEs>,
    /// Auth keys for the exporter config (real cluster only).
    auth_yaml: String,
    /// The `Authorization` header for the test's own reads.
    auth_header: Option<String>,
}

async fn target() -> Target {
    match std::env::var("TELETRACE_TEST_ES_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let user = std::env::var("TELETRACE_TEST_ES_USER").ok();
            let password = std::env::var("TELETRACE_TEST_ES_PASSWORD").unwrap_or_default();
            let api_key = std::env::var("TELETRACE_TEST_ES_API_KEY").ok();
            let (auth_yaml, auth_header) = match (user, api_key) {
                (Some(u), _) => {
                    use base64::Engine as _;
                    let basic =
                        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{password}"));
                    (
                        format!("user: {u:?}\npassword: {password:?}\n"),
                        Some(format!("Basic {basic}")),
                    )
                }
                (None, Some(k)) => (format!("api_key: {k:?}\n"), Some(format!("ApiKey {k}"))),
                (None, None) => (String::new(), None),
            };
            Target {
                url: url.trim_end_matches('/').to_string(),
                mock: None,
                auth_yaml,
                auth_header,
            }
        }
        _ => {
            let mock = MockEs::start().await;
            Target {
                url: mock.url(),
                mock: Some(mock),
                auth_yaml: String::new(),
                auth_header: None,
            }
        }
    }
}

/// The mock, or `None` (and a note) against a real cluster, for tests that inject
/// failures.
async fn mock_only(test: &str) -> Option<(Target, MockEs)> {
    let t = target().await;
    match t.mock.clone() {
        Some(m) => Some((t, m)),
        None => {
            eprintln!("{test}: skipped against a real cluster (needs failure injection)");
            None
        }
    }
}

/// An index name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000_007
    )
}

/// Test configs send in the caller's task with no helper retry, so `consume` returns
/// the exporter's own result; unless the test sets `flush`, the bulk buffer is sent
/// 20ms after its first document rather than 30s.
fn config(target: &Target, extra: &str) -> String {
    let flush = if extra.contains("flush:") {
        ""
    } else {
        "flush: {interval: 20ms}\n"
    };
    format!(
        "endpoint: {}\n{}sending_queue: {{enabled: false}}\nretry_on_failure: {{enabled: false}}\n{flush}{extra}",
        target.url, target.auth_yaml
    )
}

fn parse(yaml: &str) -> Result<teletrace_core::registry::AnyConfig, String> {
    let registration = registry::find(Kind::Exporter, "elasticsearch").expect("registered");
    let FactoryRef::Exporter(factory) = registration.factory else {
        panic!("not an exporter");
    };
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    factory.parse_config(&value).map_err(|e| e.to_string())
}

fn build(yaml: &str) -> Result<(Arc<dyn Exporter>, Metrics), String> {
    let registration = registry::find(Kind::Exporter, "elasticsearch").expect("registered");
    let FactoryRef::Exporter(factory) = registration.factory else {
        panic!("not an exporter");
    };
    let config = parse(yaml)?;
    let metrics = Metrics::new();
    let ctx = BuildContext {
        id: ComponentId::parse("elasticsearch/test").unwrap(),
        pipeline: None,
        metrics: metrics.clone(),
        host: Host::default(),
    };
    let exporter = factory.create(&ctx, config).map_err(|e| e.to_string())?;
    Ok((exporter, metrics))
}

async fn started(yaml: &str) -> (Arc<dyn Exporter>, Metrics) {
    let (exporter, metrics) = build(yaml).unwrap_or_else(|e| panic!("build: {e}"));
    exporter.start(&Host::default()).await.expect("start");
    (exporter, metrics)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Documents of `index` by `_id` (after a refresh), read through the search API.
async fn fetch(target: &Target, index: &str, ids: &[String]) -> HashMap<String, Value> {
    let client = http();
    let auth = |r: reqwest::RequestBuilder| match &target.auth_header {
        Some(h) => r.header("authorization", h),
        None => r,
    };
    auth(client.post(format!("{}/{index}/_refresh", target.url)))
        .send()
        .await
        .unwrap();
    let response = auth(client.post(format!("{}/{index}/_search", target.url)))
        .header("content-type", "application/json")
        .body(json!({"query": {"ids": {"values": ids}}, "size": 10_000}).to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| (h["_id"].as_str().unwrap().to_string(), h["_source"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Best-effort cleanup on a real cluster.
async fn cleanup(target: &Target, index: &str, template: &str, data_stream: bool) {
    if target.mock.is_some() {
        return;
    }
    let client = http();
    let auth = |r: reqwest::RequestBuilder| match &target.auth_header {
        Some(h) => r.header("authorization", h),
        None => r,
    };
    let path = if data_stream {
        format!("{}/_data_stream/{index}", target.url)
    } else {
        format!("{}/{index}", target.url)
    };
    let _ = auth(client.delete(path)).send().await;
    let _ = auth(client.delete(format!("{}/_index_template/{template}", target.url)))
        .send()
        .await;
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// `n` spans over two resources, with every kind of attribute value, events, links,
/// status and dropped counts.
fn sample(n: usize, seed: u8) -> Vec<ResourceSpans> {
    use any_value::Value as V;
    let resource = |service: &str| Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("host.cpus", V::IntValue(8)),
            kv("data_stream.dataset", s("must.not.leak")),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "io.test".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.flag", V::BoolValue(true))],
        dropped_attributes_count: 0,
    };
    let make = |i: usize| {
        let mut trace_id = [seed; 16];
        trace_id[15] = (i / 4) as u8;
        let span_id = (u64::from(seed) << 32 | (i as u64 + 1))
            .to_be_bytes()
            .to_vec();
        let start = 1_700_000_000_123_456_789 + i as u64 * 1000;
        Span {
            trace_id: trace_id.to_vec(),
            span_id,
            trace_state: if i.is_multiple_of(2) {
                "k=v".into()
            } else {
                String::new()
            },
            parent_span_id: if i.is_multiple_of(4) {
                vec![]
            } else {
                vec![9; 8]
            },
            name: format!("GET /items/{i} \"quoted\"\n"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_500_000 + i as u64,
            attributes: vec![
                kv("http.method", s("GET")),
                kv("http.status_code", V::IntValue(200 + i as i64)),
                kv("ratio", V::DoubleValue(1.0)),
                kv("ok", V::BoolValue(i.is_multiple_of(2))),
                kv("raw", V::BytesValue(vec![0, 1, 254, 255])),
                kv(
                    "list",
                    V::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(s("a")),
                            },
                            AnyValue {
                                value: Some(V::IntValue(2)),
                            },
                        ],
                    }),
                ),
                kv(
                    "map",
                    V::KvlistValue(KeyValueList {
                        values: vec![kv("inner", s("x"))],
                    }),
                ),
                kv("http.method", s("POST")),
            ],
            dropped_attributes_count: 2,
            events: vec![
                span::Event {
                    time_unix_nano: start + 10,
                    name: "exception".into(),
                    attributes: vec![kv("exception.message", s("boom"))],
                    dropped_attributes_count: 1,
                },
                span::Event {
                    time_unix_nano: start + 20,
                    name: String::new(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                },
            ],
            dropped_events_count: 3,
            links: vec![span::Link {
                trace_id: vec![7; 16],
                span_id: vec![8; 8],
                trace_state: "l=1".into(),
                attributes: vec![kv("link.kind", s("follows"))],
                dropped_attributes_count: 0,
                flags: 0,
            }],
            dropped_links_count: 4,
            status: Some(Status {
                message: "failed".into(),
                code: status::StatusCode::Error as i32,
            }),
            flags: 0,
        }
    };
    let half = n / 2;
    vec![
        ResourceSpans {
            resource: Some(resource("frontend")),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope.clone()),
                spans: (0..half).map(make).collect(),
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.20.0".into(),
        },
        ResourceSpans {
            resource: Some(resource("backend")),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans: (half..n).map(make).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        },
    ]
}

fn ids_of(batch: &[ResourceSpans]) -> Vec<String> {
    batch
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|sp| document_id(&sp.trace_id, &sp.span_id))
        .collect()
}

fn docs_metric(metrics: &Metrics, outcome: &str) -> u64 {
    let text = metrics.render();
    text.lines()
        .find(|l| {
            l.starts_with(METRIC_DOCS_PROCESSED) && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Document shapes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn teletrace_documents_are_the_query_api_span_json() {
    let t = target().await;
    let index = unique("tt-shape");
    let (exporter, _) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let batch = sample(6, 1);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();

    let ids = ids_of(&batch);
    let docs = fetch(&t, &index, &ids).await;
    assert_eq!(docs.len(), 6, "one document per span, by _id");
    for rs in &batch {
        let resource = rs.resource.clone().unwrap();
        for ss in &rs.scope_spans {
            for sp in &ss.spans {
                let id = document_id(&sp.trace_id, &sp.span_id);
                assert_eq!(id.len(), 48, "_id is trace ID + span ID in hex");
                let mut doc = docs[&id].clone();
                // The search date: the start time as epoch millis with the ns fraction.
                let ts = doc.as_object_mut().unwrap().remove("@timestamp").unwrap();
                let start = sp.start_time_unix_nano;
                assert_eq!(
                    ts,
                    json!(format!("{}.{:06}", start / 1_000_000, start % 1_000_000))
                );
                let ingestion = doc["ingestionTimeUnixNano"].as_u64().unwrap();
                assert!(ingestion > 1_700_000_000_000_000_000);
                let stored = StoredSpan {
                    resource: std::sync::Arc::new(resource.clone()),
                    scope: std::sync::Arc::new(ss.scope.clone().unwrap()),
                    span: sp.clone(),
                    duration_ns: sp.end_time_unix_nano - sp.start_time_unix_nano,
                    ingestion_time_ns: ingestion,
                };
                // The document is the query API's span (tested field by field in
                // `teletrace_core::span_json`), `@timestamp` taken off above.
                let mut api = Vec::new();
                teletrace_core::span_json::write_stored_span(&mut api, &stored);
                let expected: serde_json::Value = serde_json::from_slice(&api).unwrap();
                assert_eq!(doc, expected, "document {id}");
                // Spot checks of what the equality covers.
                assert_eq!(
                    doc["span"]["attributes"]["http.method"], "POST",
                    "last value of a repeated key"
                );
                assert_eq!(doc["span"]["events"].as_array().unwrap().len(), 2);
                assert_eq!(doc["span"]["links"][0]["traceId"], "07".repeat(16));
                assert_eq!(doc["span"]["startTimeUnixNano"], json!(start));
                assert_eq!(
                    doc["externalFields"]["durationNano"],
                    json!(sp.end_time_unix_nano - start)
                );
            }
        }
    }
    if let Some(m) = &t.mock {
        assert!(m.violations().is_empty(), "{:?}", m.violations());
        let bulks = m.bulks();
        assert_eq!(bulks.len(), 1);
        assert!(
            bulks[0].query.contains("filter_path="),
            "{}",
            bulks[0].query
        );
    }
    exporter.shutdown().await.unwrap();
    cleanup(&t, &index, &format!("teletrace-{index}"), false).await;
}

#[tokio::test]
async fn otel_documents_have_the_collector_shape() {
    let t = target().await;
    let index = format!("traces-{}-default", unique("otel.shape").replace('-', "."));
    let (exporter, _) = started(&config(
        &t,
        &format!("mapping: {{mode: otel}}\ntraces_index: {index}"),
    ))
    .await;
    let batch = sample(2, 2);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    let sp = &batch[0].scope_spans[0].spans[0];
    let id = document_id(&sp.trace_id, &sp.span_id);
    let event_ids = vec![format!("{id}-e0"), format!("{id}-e1")];
    let mut all_ids = vec![id.clone()];
    all_ids.extend(event_ids.clone());
    let docs = fetch(&t, &index, &all_ids).await;
    assert_eq!(
        docs.len(),
        3,
        "the span and its two events: {:?}",
        docs.keys()
    );
    let doc = &docs[&id];
    let start = sp.start_time_unix_nano;
    let dataset = index
        .trim_start_matches("traces-")
        .trim_end_matches("-default");
    let expected = json!({
        "@timestamp": format!("{}.{:06}", start / 1_000_000, start % 1_000_000),
        "data_stream": {"type": "traces", "dataset": dataset, "namespace": "default"},
        "trace_id": hex(&sp.trace_id),
        "span_id": hex(&sp.span_id),
        "trace_state": "k=v",
        "name": sp.name,
        "kind": "Server",
        "duration": sp.end_time_unix_nano - start,
        "attributes": {
            "http.method": "POST",
            "http.status_code": 200,
            "ratio": 1.0,
            "ok": true,
            "raw": "0001feff",
            "list": ["a", 2],
            "map": {"inner": "x"},
        },
        "dropped_attributes_count": 2,
        "dropped_events_count": 3,
        "links": [{
            "trace_id": "07".repeat(16),
            "span_id": "08".repeat(8),
            "trace_state": "l=1",
            "attributes": {"link.kind": "follows"},
        }],
        "dropped_links_count": 4,
        "status": {"message": "failed", "code": "Error"},
        "resource": {
            "schema_url": "https://opentelemetry.io/schemas/1.20.0",
            "attributes": {"service.name": "frontend", "host.cpus": 8},
            "dropped_attributes_count": 1,
        },
        "scope": {
            "schema_url": "https://opentelemetry.io/schemas/1.21.0",
            "name": "io.test",
            "version": "1.2.3",
            "attributes": {"scope.flag": true},
        },
    });
    assert_eq!(doc, &expected);
    let event = &docs[&event_ids[0]];
    assert_eq!(event["event_name"], "exception");
    assert_eq!(
        event["attributes"],
        json!({"exception.message": "boom", "event.name": "exception"})
    );
    assert_eq!(event["dropped_attributes_count"], 1);
    assert_eq!(event["span_id"], hex(&sp.span_id));
    assert_eq!(event["resource"]["attributes"]["service.name"], "frontend");
    assert!(docs[&event_ids[1]].get("event_name").is_none());
    // A root span has no parent_span_id; the second span has one.
    let second = &batch[1].scope_spans[0].spans[0];
    let docs2 = fetch(
        &t,
        &index,
        &[document_id(&second.trace_id, &second.span_id)],
    )
    .await;
    let doc2 = docs2.values().next().unwrap();
    assert_eq!(doc2["parent_span_id"], "09".repeat(8));
    assert!(doc2.get("trace_state").is_none());
    if let Some(m) = &t.mock {
        assert!(m.violations().is_empty(), "{:?}", m.violations());
    }
    cleanup(&t, &index, &format!("teletrace-{index}"), true).await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Template, idempotence, flushing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_index_template_is_installed_at_start() {
    let t = target().await;
    let index = unique("tt-template");
    let name = format!("teletrace-{index}");
    let (exporter, _) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let mut request = http().get(format!("{}/_index_template/{name}", t.url));
    if let Some(h) = &t.auth_header {
        request = request.header("authorization", h);
    }
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    let template = &answer["index_templates"][0]["index_template"];
    assert_eq!(template["index_patterns"], json!([index]));
    let props = &template["template"]["mappings"]["properties"];
    assert_eq!(props["span"]["properties"]["traceId"]["type"], "keyword");
    assert_eq!(
        props["span"]["properties"]["startTimeUnixNano"]["type"],
        "long"
    );
    assert_eq!(props["@timestamp"]["type"], "date_nanos");
    if let Some(m) = &t.mock {
        assert_eq!(m.bulks().len(), 0, "start sends no documents");
        assert!(m.violations().is_empty());
    }
    exporter.shutdown().await.unwrap();
    cleanup(&t, &index, &name, false).await;
}

#[tokio::test]
async fn a_resent_batch_overwrites_instead_of_duplicating() {
    let t = target().await;
    let index = unique("tt-resend");
    let (exporter, _) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let batch = sample(8, 3);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    let ids = ids_of(&batch);
    let docs = fetch(&t, &index, &ids).await;
    assert_eq!(docs.len(), 8);
    if let Some(m) = &t.mock {
        for id in &ids {
            assert_eq!(m.writes(&index, id), 2, "{id} written twice, stored once");
        }
    }
    cleanup(&t, &index, &format!("teletrace-{index}"), false).await;
}

#[tokio::test]
async fn a_resent_batch_into_a_data_stream_is_not_duplicated() {
    let t = target().await;
    let index = format!("traces-{}-default", unique("otel.resend").replace('-', "."));
    let (exporter, metrics) = started(&config(
        &t,
        &format!("mapping: {{mode: otel}}\ntraces_index: {index}"),
    ))
    .await;
    let batch = sample(4, 4);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    // Data streams take `create` only: the second time every document answers 409,
    // which means "already stored", not an error.
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    let ids = ids_of(&batch);
    assert_eq!(fetch(&t, &index, &ids).await.len(), 4);
    assert_eq!(docs_metric(&metrics, "failed_client"), 0);
    cleanup(&t, &index, &format!("teletrace-{index}"), true).await;
}

#[tokio::test]
async fn batches_are_cut_at_flush_bytes() {
    let t = target().await;
    let index = unique("tt-flush");
    let (exporter, _) = started(&config(
        &t,
        &format!("traces_index: {index}\nflush: {{bytes: 4000, interval: 20ms}}"),
    ))
    .await;
    let batch = sample(20, 5);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    assert_eq!(fetch(&t, &index, &ids_of(&batch)).await.len(), 20);
    if let Some(m) = &t.mock {
        let bulks = m.bulks();
        assert!(bulks.len() >= 5, "{} bulk requests", bulks.len());
        assert_eq!(bulks.iter().map(|b| b.ids.len()).sum::<usize>(), 20);
    }
    cleanup(&t, &index, &format!("teletrace-{index}"), false).await;
}

// ---------------------------------------------------------------------------------------
// The shared bulk buffer: flush::bytes and flush::interval (mock only)
// ---------------------------------------------------------------------------------------

/// The `_bulk` body size of `batch` in the Teletrace shape.
fn body_len(batch: &[ResourceSpans], index: &str) -> usize {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    BulkEncoder::new(MappingMode::Teletrace, index)
        .encode(batch, now, usize::MAX)
        .iter()
        .map(|c| c.body.len())
        .sum()
}

/// Consumes `batch` in a task of its own; the handle says when and how it returned.
fn consume_in_task(
    exporter: &Arc<dyn Exporter>,
    batch: Vec<ResourceSpans>,
) -> tokio::task::JoinHandle<Result<(), ConsumeError>> {
    let exporter = Arc::clone(exporter);
    tokio::spawn(async move { exporter.consume(Traces::new(batch)).await })
}

#[tokio::test]
async fn concurrent_small_consumes_share_one_bulk_request_and_wait_for_it() {
    let Some((t, m)) = mock_only("concurrent consumes share one bulk request").await else {
        return;
    };
    let index = unique("tt-gather");
    let batches: Vec<_> = (0..4).map(|i| sample(3, 40 + i)).collect();
    let one = body_len(&batches[0], &index);
    // Three batches stay below flush::bytes, the fourth reaches it; the interval is far
    // longer than the test.
    let flush_bytes = 3 * one + one / 2;
    let (exporter, metrics) = started(&config(
        &t,
        &format!("traces_index: {index}\nflush: {{bytes: {flush_bytes}, interval: 60s}}"),
    ))
    .await;
    let mut waiting: Vec<_> = batches[..3]
        .iter()
        .map(|b| consume_in_task(&exporter, b.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(m.bulks().is_empty(), "nothing sent below flush::bytes");
    assert!(
        waiting.iter().all(|h| !h.is_finished()),
        "no consume returns before its documents are sent"
    );
    waiting.push(consume_in_task(&exporter, batches[3].clone()));
    for handle in waiting {
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .expect("answered once the body is full")
            .unwrap()
            .unwrap();
    }
    let bulks = m.bulks();
    assert_eq!(bulks.len(), 1, "one _bulk request for the four consumes");
    let mut sent = bulks[0].ids.clone();
    sent.sort();
    let mut all: Vec<String> = batches.iter().flat_map(|b| ids_of(b)).collect();
    all.sort();
    assert_eq!(sent, all);
    assert_eq!(fetch(&t, &index, &all).await.len(), 12);
    assert_eq!(docs_metric(&metrics, "success"), 12);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[tokio::test]
async fn the_interval_sends_a_lone_small_batch() {
    let Some((t, m)) = mock_only("the interval sends a lone batch").await else {
        return;
    };
    let index = unique("tt-interval");
    let (exporter, _) = started(&config(
        &t,
        &format!("traces_index: {index}\nflush: {{interval: 300ms}}"),
    ))
    .await;
    let batch = sample(2, 50);
    let start = std::time::Instant::now();
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "sent by the interval, not at once: {:?}",
        start.elapsed()
    );
    let bulks = m.bulks();
    assert_eq!(bulks.len(), 1);
    assert_eq!(bulks[0].ids, ids_of(&batch));
    assert_eq!(fetch(&t, &index, &ids_of(&batch)).await.len(), 2);
}

#[tokio::test]
async fn per_item_429s_go_back_only_to_the_consume_that_owns_them() {
    let Some((t, m)) = mock_only("429s go back to their owner").await else {
        return;
    };
    let index = unique("tt-owner");
    let mine = sample(3, 60);
    let theirs = sample(3, 61);
    let one = body_len(&mine, &index);
    let (exporter, metrics) = started(&config(
        &t,
        &format!(
            "traces_index: {index}\nflush: {{bytes: {}, interval: 1s}}\n\
             retry: {{max_requests: 2, initial_interval: 5ms}}",
            one + one / 2
        ),
    ))
    .await;
    let mine_ids = ids_of(&mine);
    let theirs_ids = ids_of(&theirs);
    m.fail_id(&mine_ids[1], 429, usize::MAX);
    let a = consume_in_task(&exporter, mine.clone());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let b = consume_in_task(&exporter, theirs.clone());
    b.await
        .unwrap()
        .expect("the other consume's documents are all stored");
    let err = a.await.unwrap().unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let bulks = m.bulks();
    assert_eq!(bulks.len(), 2, "{bulks:?}");
    let mut first = bulks[0].ids.clone();
    first.sort();
    let mut both: Vec<String> = mine_ids.iter().chain(&theirs_ids).cloned().collect();
    both.sort();
    assert_eq!(first, both, "both consumes in the first request");
    assert_eq!(
        bulks[1].ids,
        vec![mine_ids[1].clone()],
        "only the throttled document is resent"
    );
    for id in theirs_ids.iter().chain([&mine_ids[0], &mine_ids[2]]) {
        assert_eq!(m.writes(&index, id), 1, "{id}");
    }
    assert_eq!(docs_metric(&metrics, "too_many"), 2);
    assert_eq!(docs_metric(&metrics, "success"), 5);
}

#[tokio::test]
async fn shutdown_sends_what_waits_for_the_interval() {
    let Some((t, m)) = mock_only("shutdown sends the buffer").await else {
        return;
    };
    let index = unique("tt-drain");
    let yaml = format!(
        "endpoint: {}\ntraces_index: {index}\nflush: {{interval: 60s}}\n",
        t.url
    );
    let (exporter, metrics) = started(&yaml).await;
    let batch = sample(2, 70);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(m.bulks().is_empty(), "waiting for the interval");
    tokio::time::timeout(Duration::from_secs(20), exporter.shutdown())
        .await
        .expect("shutdown does not wait for the interval")
        .unwrap();
    assert_eq!(m.bulks().len(), 1);
    assert_eq!(fetch(&t, &index, &ids_of(&batch)).await.len(), 2);
    assert_eq!(docs_metric(&metrics, "success"), 2);
}

// ---------------------------------------------------------------------------------------
// Partial failures (mock only)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn only_items_answered_429_are_resent() {
    let Some((t, m)) = mock_only("only_items_answered_429_are_resent").await else {
        return;
    };
    let index = unique("tt-429");
    let (exporter, metrics) = started(&config(
        &t,
        &format!("traces_index: {index}\nretry: {{initial_interval: 5ms}}"),
    ))
    .await;
    let batch = sample(6, 6);
    let ids = ids_of(&batch);
    m.fail_id(&ids[1], 429, 1);
    m.fail_id(&ids[4], 503, 2);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    let bulks = m.bulks();
    assert_eq!(bulks.len(), 3);
    assert_eq!(bulks[0].ids, ids);
    assert_eq!(bulks[1].ids, vec![ids[1].clone(), ids[4].clone()]);
    assert_eq!(bulks[2].ids, vec![ids[4].clone()]);
    assert_eq!(fetch(&t, &index, &ids).await.len(), 6);
    for id in &ids {
        assert_eq!(m.writes(&index, id), 1, "{id}: no duplicate write");
    }
    assert_eq!(docs_metric(&metrics, "too_many"), 1);
    assert_eq!(docs_metric(&metrics, "failed_server"), 2);
    assert_eq!(docs_metric(&metrics, "success"), 6);
    assert!(m.violations().is_empty());
}

#[tokio::test]
async fn items_still_throttled_after_max_requests_make_the_batch_retryable() {
    let Some((t, m)) = mock_only("items_still_throttled").await else {
        return;
    };
    let index = unique("tt-throttled");
    let (exporter, _) = started(&config(
        &t,
        &format!("traces_index: {index}\nretry: {{max_requests: 2, initial_interval: 5ms}}"),
    ))
    .await;
    let batch = sample(3, 7);
    let ids = ids_of(&batch);
    m.fail_id(&ids[0], 429, usize::MAX);
    let err = exporter
        .consume(Traces::new(batch.clone()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(m.bulks().len(), 2, "max_requests bounds the bulk requests");
    // The helper resends the whole batch; the stored documents are overwritten, the
    // throttled one goes in once the node accepts it.
    m.fail_id(&ids[0], 429, 0);
    exporter.consume(Traces::new(batch)).await.unwrap();
    assert_eq!(fetch(&t, &index, &ids).await.len(), 3);
    assert_eq!(m.writes(&index, &ids[0]), 1);
    assert_eq!(m.writes(&index, &ids[1]), 2);
}

#[tokio::test]
async fn items_refused_with_4xx_are_counted_not_resent() {
    let Some((t, m)) = mock_only("items_refused_with_4xx").await else {
        return;
    };
    let index = unique("tt-400");
    let (exporter, metrics) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let batch = sample(4, 8);
    let ids = ids_of(&batch);
    m.fail_id(&ids[2], 400, usize::MAX);
    m.fail_id(&ids[3], 429, 1);
    let err = exporter.consume(Traces::new(batch)).await.unwrap_err();
    match &err {
        ConsumeError::PartiallyRejected {
            rejected_spans,
            message,
        } => {
            assert_eq!(*rejected_spans, 1);
            assert!(message.contains("document_parsing_exception"), "{message}");
            assert!(
                message.contains(&ids[2]),
                "Elasticsearch's reason: {message}"
            );
        }
        other => panic!("expected a partial rejection, got {other:?}"),
    }
    let bulks = m.bulks();
    assert_eq!(bulks.len(), 2);
    assert_eq!(bulks[1].ids, vec![ids[3].clone()], "the 400 is not resent");
    assert_eq!(docs_metric(&metrics, "failed_client"), 1);
    assert_eq!(fetch(&t, &index, &ids).await.len(), 3);
}

#[tokio::test]
async fn a_batch_refused_entirely_is_a_permanent_error() {
    let Some((t, m)) = mock_only("a_batch_refused_entirely").await else {
        return;
    };
    let index = unique("tt-all400");
    let (exporter, _) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let batch = sample(2, 9);
    for id in ids_of(&batch) {
        m.fail_id(&id, 400, usize::MAX);
    }
    let err = exporter.consume(Traces::new(batch)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent { .. }), "{err:?}");
    assert_eq!(m.bulks().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Endpoints (mock only)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_node_is_skipped_then_tried_again_after_the_cooldown() {
    let Some((_t, healthy)) = mock_only("node failover").await else {
        return;
    };
    let down = MockEs::start().await;
    down.set_down(true);
    // A third endpoint with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let index = unique("tt-failover");
    let yaml = format!(
        "endpoints: [{}, http://{closed}, {}]\ntraces_index: {index}\nnode_cooldown: 2s\n\
         sending_queue: {{enabled: false}}\nretry_on_failure: {{enabled: false}}\n\
         flush: {{interval: 20ms}}\n",
        down.url(),
        healthy.url()
    );
    let (exporter, _) = started(&yaml).await;
    for seed in 0..4 {
        exporter
            .consume(Traces::new(sample(2, 20 + seed)))
            .await
            .unwrap();
    }
    let down_hits = down.requests();
    assert!(down_hits >= 1, "the down node was tried");
    assert_eq!(
        healthy.bulks().len(),
        4,
        "every batch reached the healthy node"
    );
    // Within the cool-down the failed node is not asked again.
    for seed in 0..3 {
        exporter
            .consume(Traces::new(sample(2, 30 + seed)))
            .await
            .unwrap();
    }
    assert_eq!(down.requests(), down_hits, "skipped during the cool-down");
    // After it, it is tried again; once back, it takes its share.
    down.set_down(false);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for seed in 0..6 {
        exporter
            .consume(Traces::new(sample(2, 40 + seed)))
            .await
            .unwrap();
    }
    assert!(
        !down.bulks().is_empty(),
        "the recovered node takes bulk requests again"
    );
    assert!(healthy.bulks().len() > 4);
}

#[tokio::test]
async fn an_unreachable_cluster_does_not_stop_the_start() {
    let Some((t, m)) = mock_only("unreachable at start").await else {
        return;
    };
    m.set_down(true);
    let index = unique("tt-late");
    let (exporter, _) = started(&config(&t, &format!("traces_index: {index}"))).await;
    let batch = sample(2, 50);
    let err = exporter
        .consume(Traces::new(batch.clone()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(m.bulks().is_empty(), "no document before the template");
    m.set_down(false);
    exporter.consume(Traces::new(batch.clone())).await.unwrap();
    assert!(m.templates().contains_key(&format!("teletrace-{index}")));
    assert_eq!(fetch(&t, &index, &ids_of(&batch)).await.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Auth and headers (mock only: they need a node that checks given credentials)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_variants_send_the_matching_authorization_header() {
    let Some((t, _)) = mock_only("auth variants").await else {
        return;
    };
    drop(t);
    let cases = [
        (
            "user: elastic\npassword: changeme",
            "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==",
        ),
        (
            "api_key: VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
        ),
        ("bearer_token: AAEAAWVsYXN0aWM", "Bearer AAEAAWVsYXN0aWM"),
    ];
    for (auth, header) in cases {
        let m = MockEs::start().await;
        m.expect_auth(header);
        m.expect_header("x-tenant", "blue");
        let index = unique("tt-auth");
        let yaml = format!(
            "endpoint: {}\n{auth}\nheaders: {{x-tenant: blue}}\ntraces_index: {index}\n\
             sending_queue: {{enabled: false}}\nretry_on_failure: {{enabled: false}}\n\
             flush: {{interval: 20ms}}\n",
            m.url()
        );
        let (exporter, _) = started(&yaml).await;
        exporter.consume(Traces::new(sample(2, 60))).await.unwrap();
        assert_eq!(m.bulks().len(), 1, "{auth}");
        assert!(m.violations().is_empty(), "{:?}", m.violations());
    }
}

#[tokio::test]
async fn wrong_credentials_fail_the_start_with_elasticsearchs_reason() {
    let Some((_, m)) = mock_only("wrong credentials").await else {
        return;
    };
    m.expect_auth("ApiKey right");
    let yaml = format!("endpoint: {}\napi_key: wrong\n", m.url());
    let (exporter, _) = build(&yaml).unwrap();
    let err = exporter
        .start(&Host::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401") && err.contains("security_exception"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Config errors
// ---------------------------------------------------------------------------------------

#[test]
fn bad_configs_are_refused_with_their_key() {
    let cases = [
        (
            "endpoint: http://a:9200\nendpoints: [http://b:9200]",
            "endpoint",
        ),
        (
            "endpoints: [http://a:9200, 'localhost:9200']",
            "endpoints[1]",
        ),
        (
            "endpoint: http://a:9200\nmapping: {mode: ecs}",
            "mapping::mode",
        ),
        (
            "endpoint: http://a:9200\nuser: u\nbearer_token: t",
            "api_key",
        ),
        (
            "endpoint: http://a:9200\nauth: {authenticator: basicauth}",
            "auth::authenticator",
        ),
        (
            "endpoint: http://a:9200\ntraces_index: 'a,b'",
            "traces_index",
        ),
        ("endpoint: http://a:9200\nflush: {bytes: 0}", "flush::bytes"),
        (
            "endpoint: http://a:9200\nflush: {interval: soon}",
            "flush::interval",
        ),
        (
            "endpoint: http://a:9200\nsending_queue: {num_consumers: 0}",
            "sending_queue::num_consumers",
        ),
        (
            "endpoint: http://a:9200\nflush: {interval: 0s}",
            "flush::interval",
        ),
        (
            "endpoint: http://a:9200\nflush: {interval: 90s}",
            "flush::interval",
        ),
        ("endpoint: http://a:9200\nunknown: 1", "unknown"),
    ];
    for (yaml, key) in cases {
        let err = parse(yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        assert!(err.contains(key), "{yaml}: {err}");
    }
    if std::env::var_os("ELASTICSEARCH_URL").is_none() {
        let Err(err) = parse("traces_index: x") else {
            panic!("a config without endpoint was accepted");
        };
        assert!(err.contains("endpoint"), "{err}");
    }
}

#[test]
fn unreadable_tls_files_fail_the_build_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = build(&format!(
        "endpoint: https://a:9200\ntls: {{ca_file: {}}}",
        missing.display()
    ))
    .err()
    .unwrap();
    assert!(
        err.contains("tls::ca_file") && err.contains("missing.pem"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let err = build(&format!(
        "endpoint: https://a:9200\ntls: {{ca_file: {}}}",
        garbage.display()
    ))
    .err()
    .unwrap();
    assert!(err.contains("tls::ca_file"), "{err}");
}
