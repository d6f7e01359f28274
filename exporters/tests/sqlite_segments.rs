//! Ingestion segments and the span attribute postings: a segment is sealed (its postings
//! written) once the writer moves past it, searches and tag values see every span
//! whether its segment is sealed or not, and retention keeps the postings exact.
#![cfg(feature = "sqlite")]

mod sqlite_common;

use serde_json::json;
use sqlite_common::*;
use std::time::Duration;
use teletrace_core::storage::{Operator, Timeframe};
use teletrace_core::{Consumer, Lifecycle};

/// More spans than one segment holds (8,192), in batches of 1,000.
const SPANS: u64 = 10_000;

/// Span `k`: `method` cycles through 4 values, `code` through 5, `user` is unique.
fn attributes(k: u64) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![
        kv(
            "method",
            s(["GET", "POST", "PUT", "DELETE"][(k % 4) as usize]),
        ),
        kv("code", i([200, 201, 404, 500, 503][(k % 5) as usize])),
        kv("user", s(&format!("user-{k}"))),
    ]
}

/// Writes spans 0..SPANS, span `k` starting at `start(k)`.
async fn fill(store: &Store, start: impl Fn(u64) -> u64) {
    fill_with(store, |k| {
        span(k / 10, k, &format!("n{k}"), start(k), 10, attributes(k))
    })
    .await
}

/// Writes spans `make(0..SPANS)` in batches of 1,000.
async fn fill_with(
    store: &Store,
    make: impl Fn(u64) -> opentelemetry_proto::tonic::trace::v1::Span,
) {
    for chunk in 0..SPANS / 1000 {
        let spans = (chunk * 1000..(chunk + 1) * 1000).map(&make).collect();
        store
            .exporter
            .consume(batch(vec![kv("service.name", s("svc"))], spans))
            .await
            .unwrap();
    }
}

/// Waits (up to 30 s) until `n` segments are sealed: sealing runs beside the writes.
async fn wait_sealed(store: &Store, n: i64) {
    for _ in 0..300 {
        if store
            .count("SELECT count(*) FROM segments WHERE sealed = 1")
            .await
            == n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} segments were not sealed within 30 s");
}

async fn count_matching(store: &Store, key: &str, op: Operator, value: serde_json::Value) -> usize {
    let mut req = request(vec![filter(key, op, value)], 10_000);
    let mut n = 0;
    loop {
        let page = store.reader.search(&req).await.unwrap();
        n += page.spans.len();
        match page.next_token {
            Some(t) => req.next_token = Some(t),
            None => return n,
        }
    }
}

#[tokio::test]
async fn sqlite_a_full_segment_is_sealed_and_searches_see_sealed_and_open_segments_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    fill(&store, |k| 1_000_000 + k).await;

    // The first segment filled up and is sealed in the background; the second is open.
    wait_sealed(&store, 1).await;
    assert_eq!(
        store
            .count("SELECT count(*) FROM segments WHERE sealed = 1")
            .await,
        1
    );
    assert_eq!(
        store
            .count("SELECT count(*) FROM segments WHERE sealed = 0")
            .await,
        1
    );
    let sealed_spans = store
        .count("SELECT spans FROM segments WHERE sealed = 1")
        .await;
    assert!(sealed_spans >= 8_192 && sealed_spans < SPANS as i64);
    // One posting per distinct (key, value, type) of the sealed segment: 4 methods,
    // 5 codes, one user per span.
    assert_eq!(
        store
            .count("SELECT count(*) FROM span_attribute_postings")
            .await,
        4 + 5 + sealed_spans
    );
    // The postings list exactly the spans the view shows.
    assert_eq!(
        store
            .count(
                "SELECT count(*) FROM span_attribute_postings AS p CROSS JOIN json_each(p.span_rowids) AS j \
                 CROSS JOIN spans AS s ON s.rowid = j.value \
                 WHERE s.bucket = p.bucket AND EXISTS (SELECT 1 FROM span_attributes AS a \
                 WHERE a.span_id = s.span_id AND a.key = p.key AND a.value = p.value AND a.type = p.type)"
            )
            .await,
        3 * sealed_spans
    );

    // Selective filters (driven by postings and the open segment's scan) and broad ones
    // (the time index, checking each span) find every span.
    let r = &store;
    assert_eq!(
        count_matching(
            r,
            "span.attributes.user",
            Operator::Equals,
            json!("user-17")
        )
        .await,
        1
    );
    assert_eq!(
        count_matching(
            r,
            "span.attributes.user",
            Operator::Equals,
            json!("user-9999")
        )
        .await,
        1
    );
    assert_eq!(
        count_matching(
            r,
            "span.attributes.user",
            Operator::In,
            json!(["user-1", "user-9000", "nobody"])
        )
        .await,
        2
    );
    assert_eq!(
        count_matching(r, "span.attributes.method", Operator::Equals, json!("PUT")).await,
        2_500
    );
    assert_eq!(
        count_matching(r, "span.attributes.code", Operator::Gte, json!(500)).await,
        4_000
    );
    assert_eq!(
        count_matching(r, "span.attributes.code", Operator::Lt, json!(201)).await,
        2_000
    );
    assert_eq!(
        count_matching(r, "span.attributes.code", Operator::Equals, json!(404.0)).await,
        2_000
    );
    assert_eq!(
        count_matching(r, "span.attributes.user", Operator::Contains, json!("-999")).await,
        11
    );
    assert_eq!(
        count_matching(
            r,
            "span.attributes.method",
            Operator::NotEquals,
            json!("GET")
        )
        .await,
        7_500
    );

    // Tag values: whole sealed segments are counted from postings, the rest by reading.
    let values = store
        .reader
        .tag_values("span.attributes.method", everything(), &[])
        .await
        .unwrap();
    assert_eq!(values.len(), 4);
    assert!(values.iter().all(|v| v.count == 2_500), "{values:?}");
    // A timeframe cutting the sealed segment: its spans are read one by one.
    let part = Timeframe {
        start_ns: 1_000_000 + 100,
        end_ns: 1_000_000 + 8_999,
    };
    let values = store
        .reader
        .tag_values("span.attributes.code", part, &[])
        .await
        .unwrap();
    assert_eq!(values.iter().map(|v| v.count).sum::<u64>(), 8_900);
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_retention_reseals_the_segments_it_cuts_so_postings_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |c| c.retention = Duration::from_secs(3600)).await;
    let now = now_ns();
    let old = now - 7_200 * 1_000_000_000;
    // Spans 0..5000 are old, the rest recent; the first segment holds both.
    fill(&store, |k| if k < 5_000 { old + k } else { now + k }).await;
    assert_eq!(store.exporter.enforce_retention().await.unwrap(), 5_000);
    assert_eq!(
        store
            .count("SELECT count(*) FROM segments WHERE sealed = 0 AND bucket != (SELECT max(bucket) FROM segments)")
            .await,
        0,
        "the cut segment is sealed again"
    );
    // No posting names a deleted span.
    assert_eq!(
        store
            .count(
                "SELECT count(*) FROM span_attribute_postings AS p, json_each(p.span_rowids) AS j \
                 WHERE NOT EXISTS (SELECT 1 FROM spans AS s WHERE s.rowid = j.value)"
            )
            .await,
        0
    );
    assert_eq!(
        count_matching(
            &store,
            "span.attributes.method",
            Operator::Equals,
            json!("GET")
        )
        .await,
        1_250
    );
    assert_eq!(
        count_matching(
            &store,
            "span.attributes.user",
            Operator::Equals,
            json!("user-10")
        )
        .await,
        0
    );
    let values = store
        .reader
        .tag_values("span.attributes.method", everything(), &[])
        .await
        .unwrap();
    assert!(values.iter().all(|v| v.count == 1_250), "{values:?}");
    store.exporter.shutdown().await.unwrap();
}

/// Sorting by duration walks each segment's part of `duration_index` and merges them:
/// paging over spans of two segments, with durations tied within and across segments,
/// returns each span once, in order, both ways.
#[tokio::test]
async fn sqlite_sorting_by_duration_merges_segments_and_pages_every_span_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let duration = |k: u64| (k * 7919 % 13) * 100;
    fill_with(&store, |k| {
        span(k / 10, k, &format!("n{k}"), 1_000 + k, duration(k), vec![])
    })
    .await;
    assert_eq!(
        store
            .count("SELECT count(DISTINCT bucket) FROM spans")
            .await,
        2
    );
    for ascending in [false, true] {
        let mut req = request(vec![], 997);
        req.sort = vec![teletrace_core::storage::Sort {
            field: teletrace_core::storage::SortField::Duration,
            ascending,
        }];
        let mut seen = Vec::new();
        loop {
            let page = store.reader.search(&req).await.unwrap();
            seen.extend(page.spans.iter().map(|s| {
                (
                    s.duration_ns,
                    u64::from_be_bytes(s.span.span_id.clone().try_into().unwrap()),
                )
            }));
            match page.next_token {
                Some(t) => req.next_token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen.len(), SPANS as usize, "ascending {ascending}");
        let mut ids: Vec<u64> = seen.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            SPANS as usize,
            "every span once, ascending {ascending}"
        );
        for pair in seen.windows(2) {
            let in_order = if ascending {
                pair[0].0 <= pair[1].0
            } else {
                pair[0].0 >= pair[1].0
            };
            assert!(in_order, "out of order: {pair:?}, ascending {ascending}");
        }
        for (d, id) in &seen {
            assert_eq!(*d, duration(id - 1), "span {id}");
        }
    }
    store.exporter.shutdown().await.unwrap();
}

/// Attributes of every kind of value for span `k`: doubles that need every digit,
/// escapes, bytes, arrays, maps, an empty value, NaN, and a repeated key.
fn typed_attributes(k: u64) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList};
    let any = |value| AnyValue { value: Some(value) };
    vec![
        kv("ratio", d(k as f64 / 7.0)),
        kv("tiny", d(-1.5e-300 * (k % 3) as f64)),
        kv("nan", d(f64::NAN)),
        kv("big", i(i64::MAX - (k % 2) as i64)),
        kv("ok", b(k.is_multiple_of(2))),
        kv("text", s(&format!("\"q\" \\ \n é {}", k % 5))),
        kv("bytes", any(Value::BytesValue(vec![0, (k % 7) as u8]))),
        kv(
            "list",
            any(Value::ArrayValue(ArrayValue {
                values: vec![any(Value::IntValue((k % 4) as i64)), s("x")],
            })),
        ),
        kv(
            "map",
            any(Value::KvlistValue(KeyValueList {
                values: vec![kv("half", d((k % 3) as f64 / 2.0))],
            })),
        ),
        opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
        kv("text", s("a repeated key keeps its first value")),
    ]
}

/// Every posting row of the segments in `buckets`, comparable.
async fn postings_rows(
    store: &Store,
    buckets: &[i64],
) -> Vec<(i64, String, String, String, String)> {
    let mut conn = store.raw().await;
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT bucket, key, quote(value), type, span_rowids FROM span_attribute_postings \
         ORDER BY bucket, key, type, quote(value)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .filter(|r| buckets.contains(&r.0))
        .collect()
}

/// How many segments the store sealed from each source, from its metrics.
fn sealed_from(store: &Store, from: &str) -> u64 {
    let needle = format!("from=\"{from}\"}} ");
    store
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("teletrace_sqlite_segments_sealed{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn sqlite_postings_from_the_batches_equal_postings_read_back_from_the_spans() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    fill_with(&store, |k| {
        span(
            k / 10,
            k,
            &format!("n{k}"),
            1_000_000 + k,
            10,
            typed_attributes(k),
        )
    })
    .await;
    wait_sealed(&store, 1).await;
    assert_eq!(
        sealed_from(&store, "batches"),
        1,
        "sealed from the batches' lists"
    );
    assert_eq!(sealed_from(&store, "spans"), 0);
    let sealed: Vec<i64> = {
        let mut conn = store.raw().await;
        sqlx::query_scalar("SELECT bucket FROM segments WHERE sealed = 1")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    let from_batches = postings_rows(&store, &sealed).await;
    // 9,000 spans: a list for each distinct value of each key but nan and empty.
    assert!(from_batches.len() > 9_000, "{}", from_batches.len());
    assert!(from_batches.iter().any(|r| r.1 == "tiny" && r.2 != "0.0"));
    store.exporter.shutdown().await.unwrap();

    // Without the postings, the next start seals every segment from its spans.
    {
        let mut conn = store.raw().await;
        sqlx::query("DELETE FROM span_attribute_postings")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("UPDATE segments SET sealed = 0")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let reopened = Store::open(dir.path(), |_| {}).await;
    assert_eq!(sealed_from(&reopened, "spans"), 2);
    assert_eq!(postings_rows(&reopened, &sealed).await, from_batches);
    reopened.exporter.shutdown().await.unwrap();
}
