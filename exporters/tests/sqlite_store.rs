//! The sqlite exporter's write side: schema, round trip, duplicates, restart, errors,
//! lifecycle.
#![cfg(feature = "sqlite")]

mod sqlite_common;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::json;
use sqlite_common::*;
use sqlx::{Connection as _, Row as _};
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::registry::{self, BuildContext};
use teletrace_core::storage::Operator;
use teletrace_core::storage::StorageError;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Consumer, Host, Kind, Lifecycle, Traces};
use teletrace_exporters::sqlite::SqliteExporter;

fn sorted(mut attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    attrs.sort_by(|a, b| a.key.cmp(&b.key));
    attrs
}

fn every_type() -> Vec<KeyValue> {
    vec![
        kv("str", s("hello 'world'")),
        kv("int", i(-42)),
        kv("double", d(0.1)),
        kv("bool", b(true)),
        kv(
            "bytes",
            AnyValue {
                value: Some(Value::BytesValue(vec![0, 1, 254, 255])),
            },
        ),
        kv(
            "slice",
            AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![s("a"), i(1), d(2.5), b(false)],
                })),
            },
        ),
        kv(
            "map",
            AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", s("x")), kv("n", i(7))],
                })),
            },
        ),
    ]
}

fn full_span() -> Span {
    Span {
        trace_id: trace_id(7),
        span_id: span_id(70),
        parent_span_id: span_id(69),
        trace_state: "vendor=a".into(),
        name: "GET /users".into(),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: every_type(),
        dropped_attributes_count: 1,
        events: vec![
            Event {
                time_unix_nano: 1_700_000_000_100_000_000,
                name: "exception".into(),
                attributes: vec![kv("exception.type", s("IOError")), kv("retry", i(3))],
                dropped_attributes_count: 2,
            },
            Event {
                time_unix_nano: 1_700_000_000_200_000_000,
                name: "done".into(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: trace_id(8),
            span_id: span_id(80),
            trace_state: "k=v".into(),
            attributes: vec![kv("link.kind", s("follows"))],
            dropped_attributes_count: 4,
            flags: 0,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
        flags: 0,
    }
}

fn full_batch() -> Traces {
    Traces::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", s("frontend")),
                kv("host.cores", i(8)),
                kv("deployed", b(true)),
            ],
            dropped_attributes_count: 6,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "io.opentelemetry.http".into(),
                version: "1.2.3".into(),
                attributes: vec![kv("scope.attr", s("yes")), kv("scope.n", d(1.5))],
                dropped_attributes_count: 7,
            }),
            spans: vec![full_span()],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

#[tokio::test]
async fn sqlite_schema_has_the_teletrace_tables_columns_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let mut conn = store.raw().await;
    let expected: &[(&str, &[&str])] = &[
        (
            "spans",
            &[
                "span_id",
                "trace_id",
                "trace_state",
                "parent_span_id",
                "name",
                "kind",
                "start_time_unix_nano",
                "end_time_unix_nano",
                "dropped_span_attributes_count",
                "span_status_message",
                "span_status_code",
                "dropped_resource_attributes_count",
                "dropped_events_count",
                "dropped_links_count",
                "duration",
                "ingestion_time_unix_nano",
                "instrumentation_scope_id",
                // Added by this store.
                "bucket",
                "resource_set_id",
                "attributes",
                "event_count",
                "link_count",
            ],
        ),
        (
            "scopes",
            &["id", "name", "version", "dropped_attributes_count"],
        ),
        (
            "events",
            &[
                "id",
                "span_id",
                "time_unix_nano",
                "name",
                "dropped_attributes_count",
            ],
        ),
        (
            "links",
            &[
                "id",
                "span_id",
                "trace_state",
                "dropped_attributes_count",
                "linked_trace_id",
                "linked_span_id",
            ],
        ),
        ("span_attributes", &["span_id", "key", "value", "type"]),
        ("scope_attributes", &["scope_id", "key", "value", "type"]),
        (
            "resource_attributes",
            &["resource_id", "key", "value", "type"],
        ),
        ("event_attributes", &["event_id", "key", "value", "type"]),
        ("link_attributes", &["link_id", "key", "value", "type"]),
        (
            "span_resource_attributes",
            &["id", "span_id", "resource_attribute_id"],
        ),
    ];
    for (table, columns) in expected {
        let rows = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get::<String, _>("name")).collect();
        assert_eq!(&names, columns, "columns of {table}");
    }
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for index in [
        "start_time_index",
        "end_time_index",
        "duration_index",
        "trace_id_index",
        "parent_span_id_index",
        "resource_attributes_key_value_index",
        "event_attributes_key_value_index",
    ] {
        assert!(
            indexes.iter().any(|i| i == index),
            "missing index {index}: {indexes:?}"
        );
    }
    // The sort indexes hold the sort column and (implicitly) the rowid, which pages
    // break ties by. Indexes on random values (span IDs, durations) lead with the
    // ingestion segment; a span stored again is recognised by start time and span ID.
    for (index, columns) in [
        ("start_time_index", vec!["start_time_unix_nano"]),
        ("duration_index", vec!["bucket", "duration"]),
        ("span_id_index", vec!["bucket", "span_id"]),
        (
            "span_identity_index",
            vec!["start_time_unix_nano", "span_id"],
        ),
        (
            "trace_id_index",
            vec!["bucket", "trace_id", "start_time_unix_nano"],
        ),
        ("parent_span_id_index", vec!["bucket", "parent_span_id"]),
    ] {
        let found: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                .bind(index)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(found, columns, "columns of {index}");
    }
    // No index of `spans` puts a batch's entries at random places over the whole index
    // (see migrations/0004): each leads with a time, the segment or the resource set.
    let leading: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.name, i.name FROM pragma_index_list('spans') AS l, \
         pragma_index_info(l.name) AS i WHERE i.seqno = 0",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(leading.len(), 8, "indexes of spans: {leading:?}");
    for (index, column) in &leading {
        assert!(
            [
                "start_time_unix_nano",
                "end_time_unix_nano",
                "bucket",
                "resource_set_id"
            ]
            .contains(&column.as_str()),
            "{index} leads with {column}"
        );
    }
    let unique: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_index_list('spans') WHERE \"unique\" = 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(unique, ["span_identity_index"]);
    // The span attribute key/value lookup: per-segment postings keyed by
    // (bucket, key, value, type).
    let key: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, pk FROM pragma_table_info('span_attribute_postings') WHERE pk > 0 ORDER BY pk",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        key,
        [("bucket", 1), ("key", 2), ("value", 3), ("type", 4)]
            .map(|(n, p)| (n.to_string(), p))
            .to_vec()
    );
    conn.close().await.unwrap();
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_a_batch_round_trips_with_every_type_events_links_resource_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let before = now_ns();
    store.exporter.consume(full_batch()).await.unwrap();

    let spans = store
        .reader
        .get_trace(&trace_id(7).try_into().unwrap())
        .await
        .unwrap();
    assert_eq!(spans.len(), 1);
    let got = &spans[0];
    let mut want = full_span();
    want.attributes = sorted(want.attributes);
    let mut span = got.span.clone();
    span.attributes = sorted(span.attributes);
    assert_eq!(span, want);
    assert_eq!(got.duration_ns, 250_000_000);
    assert!(got.ingestion_time_ns >= before && got.ingestion_time_ns <= now_ns());
    let mut resource = Resource::clone(&got.resource);
    resource.attributes = sorted(resource.attributes);
    assert_eq!(
        resource,
        Resource {
            attributes: sorted(vec![
                kv("service.name", s("frontend")),
                kv("host.cores", i(8)),
                kv("deployed", b(true)),
            ]),
            dropped_attributes_count: 6,
            ..Default::default()
        }
    );
    assert_eq!(got.scope.name, "io.opentelemetry.http");
    assert_eq!(got.scope.version, "1.2.3");
    assert_eq!(got.scope.dropped_attributes_count, 7);
    assert_eq!(
        sorted(got.scope.attributes.clone()),
        vec![kv("scope.attr", s("yes")), kv("scope.n", d(1.5))]
    );

    // The stored values are what existing SQL expects.
    let mut conn = store.raw().await;
    let row = sqlx::query(
        "SELECT span_id, trace_id, parent_span_id, kind, span_status_code, duration FROM spans",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "0000000000000047");
    assert_eq!(row.get::<String, _>(1), "abababababababab0000000000000007");
    assert_eq!(row.get::<String, _>(2), "0000000000000046");
    assert_eq!(row.get::<String, _>(3), "Client");
    assert_eq!(row.get::<String, _>(4), "Error");
    assert_eq!(row.get::<i64, _>(5), 250_000_000);
    let types: Vec<(String, String)> =
        sqlx::query_as("SELECT key, type FROM span_attributes ORDER BY key")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            ("bool", "Bool"),
            ("bytes", "Bytes"),
            ("double", "Double"),
            ("int", "Int"),
            ("map", "Map"),
            ("slice", "Slice"),
            ("str", "Str")
        ]
        .map(|(k, t)| (k.to_string(), t.to_string()))
    );
    let slice: String = sqlx::query_scalar("SELECT value FROM span_attributes WHERE key = 'slice'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(slice, r#"["a",1,2.5,false]"#);
    let map: String = sqlx::query_scalar("SELECT value FROM span_attributes WHERE key = 'map'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(map, r#"{"inner":"x","n":7}"#);
    let links: (String, String) =
        sqlx::query_as("SELECT linked_trace_id, linked_span_id FROM links")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        links,
        (
            "abababababababab0000000000000008".into(),
            "0000000000000051".into()
        )
    );
    // The Teletrace join from spans to resource attributes still works.
    let service: String = sqlx::query_scalar(
        "SELECT ra.value FROM spans s JOIN span_resource_attributes sra ON sra.span_id = s.span_id \
         JOIN resource_attributes ra ON ra.resource_id = sra.resource_attribute_id WHERE ra.key = 'service.name'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(service, "frontend");
    conn.close().await.unwrap();

    assert_eq!(
        store.metrics.counter_total("otelcol_exporter_sent_spans"),
        1
    );
    assert_eq!(
        store
            .metrics
            .counter_total("otelcol_exporter_send_failed_spans"),
        0
    );
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_spans_without_events_or_links_leave_no_placeholder_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    store
        .exporter
        .consume(batch(vec![], vec![span(1, 1, "bare", 1_000, 10, vec![])]))
        .await
        .unwrap();
    for table in [
        "events",
        "links",
        "event_attributes",
        "link_attributes",
        "span_attributes",
    ] {
        assert_eq!(
            store.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_repeated_span_ids_do_not_fail_a_batch_nor_store_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    store.exporter.consume(full_batch()).await.unwrap();
    // A client retry: the same batch again, plus one new span.
    let mut retry = full_batch().into_resource_spans().unwrap();
    retry[0].scope_spans[0].spans.push(span(
        7,
        71,
        "new",
        1_700_000_000_000_000_000,
        5,
        vec![kv("k", s("v"))],
    ));
    store.exporter.consume(Traces::new(retry)).await.unwrap();
    // The same span twice within one batch.
    let twice = batch(
        vec![],
        vec![
            span(9, 90, "first", 10, 1, vec![kv("k", s("1"))]),
            span(9, 90, "second", 10, 1, vec![kv("k", s("2"))]),
        ],
    );
    store.exporter.consume(twice).await.unwrap();

    assert_eq!(store.count("SELECT count(*) FROM spans").await, 3);
    assert_eq!(
        store.count("SELECT count(*) FROM span_attributes").await,
        7 + 1 + 1
    );
    assert_eq!(store.count("SELECT count(*) FROM events").await, 2);
    assert_eq!(
        store.count("SELECT count(*) FROM event_attributes").await,
        2
    );
    assert_eq!(store.count("SELECT count(*) FROM links").await, 1);
    assert_eq!(
        store
            .count("SELECT count(*) FROM span_resource_attributes")
            .await,
        3 + 3
    );
    assert_eq!(
        store
            .count("SELECT count(*) FROM resource_attributes")
            .await,
        3
    );
    assert_eq!(store.count("SELECT count(*) FROM scopes").await, 2);
    let kept: String = {
        let mut conn = store.raw().await;
        sqlx::query_scalar("SELECT name FROM spans WHERE span_id = '000000000000005b'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(kept, "first");
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_the_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    store.exporter.consume(full_batch()).await.unwrap();
    store.exporter.shutdown().await.unwrap();
    store.exporter.shutdown().await.unwrap();
    assert!(matches!(
        store.exporter.consume(full_batch()).await,
        Err(ConsumeError::Retryable { .. })
    ));

    let again = Store::open(dir.path(), |_| {}).await;
    let spans = again
        .reader
        .get_trace(&trace_id(7).try_into().unwrap())
        .await
        .unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].span.events.len(), 2);
    // Event IDs continue after the stored ones.
    let mut more = full_span();
    more.span_id = span_id(1234);
    again
        .exporter
        .consume(batch(vec![], vec![more]))
        .await
        .unwrap();
    assert_eq!(
        again.count("SELECT count(DISTINCT id) FROM events").await,
        4
    );
    again.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_a_locked_database_is_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |c| c.busy_timeout = Duration::from_millis(100)).await;
    let mut blocker = store.raw().await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO scopes (name, version, dropped_attributes_count) VALUES ('x', 'y', 0)",
    )
    .execute(&mut blocker)
    .await
    .unwrap();
    let err = store
        .exporter
        .consume(batch(vec![], vec![span(1, 1, "blocked", 1, 1, vec![])]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(
        store
            .metrics
            .counter_total("otelcol_exporter_send_failed_spans"),
        1
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    blocker.close().await.unwrap();
    store
        .exporter
        .consume(batch(vec![], vec![span(1, 1, "blocked", 1, 1, vec![])]))
        .await
        .unwrap();
    store.exporter.shutdown().await.unwrap();
}

/// Makes the database refuse any span named `poison` (a trigger), as a constraint would.
async fn refuse_spans_named_poison(store: &Store) {
    let mut conn = store.raw().await;
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON spans WHEN NEW.name = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poison is refused'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_a_row_the_database_refuses_is_permanent_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    refuse_spans_named_poison(&store).await;
    let err = store
        .exporter
        .consume(batch(
            vec![],
            vec![
                span(1, 1, "fine", 1, 1, vec![kv("a", s("b"))]),
                span(1, 2, "poison", 1, 1, vec![]),
            ],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent { .. }), "{err:?}");
    assert!(err.message().contains("0000000000000003"), "{err}");
    assert!(err.message().contains("poison"), "{err}");
    assert_eq!(store.count("SELECT count(*) FROM spans").await, 0);
    assert_eq!(store.count("SELECT count(*) FROM span_attributes").await, 0);

    // Malformed IDs are refused before the database, naming the span too.
    let mut bad = span(1, 3, "short-id", 1, 1, vec![]);
    bad.span_id = vec![1, 2, 3];
    let err = store
        .exporter
        .consume(batch(vec![], vec![bad]))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent { .. }));
    assert!(err.message().contains("span_id must be 8 bytes"), "{err}");
    assert!(err.message().contains("short-id"), "{err}");
    store.exporter.shutdown().await.unwrap();
}

/// A batch of thousands of spans is one transaction: a span refused at its end leaves
/// nothing of it stored; and a span repeated far apart in it is stored once, with its
/// events once.
#[tokio::test]
async fn sqlite_a_batch_is_one_transaction_however_big() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let spans = |poison_last: bool| -> Vec<Span> {
        (0..3000u64)
            .map(|n| {
                // Span 2,500 repeats span 0 (same ID and start: a client's retry).
                let id = if n == 2500 { 0 } else { n };
                let name = if poison_last && n == 2999 {
                    "poison"
                } else {
                    "ok"
                };
                let mut span = span(
                    id / 10,
                    id,
                    name,
                    1_000 + id,
                    5,
                    vec![kv("n", i(id as i64))],
                );
                span.events = vec![Event {
                    time_unix_nano: 1_001 + id,
                    name: format!("event {id}"),
                    ..Default::default()
                }];
                span
            })
            .collect()
    };
    refuse_spans_named_poison(&store).await;
    let err = store
        .exporter
        .consume(batch(vec![], spans(true)))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent { .. }), "{err:?}");
    assert!(err.message().contains("poison"), "{err}");
    // The spans inserted before the refused one were rolled back with it.
    assert_eq!(store.count("SELECT count(*) FROM spans").await, 0);
    assert_eq!(store.count("SELECT count(*) FROM events").await, 0);

    store
        .exporter
        .consume(batch(vec![], spans(false)))
        .await
        .unwrap();
    assert_eq!(store.count("SELECT count(*) FROM spans").await, 2999);
    assert_eq!(store.count("SELECT count(*) FROM events").await, 2999);
    assert_eq!(
        store
            .count("SELECT count(DISTINCT span_id) FROM events")
            .await,
        2999
    );
    assert_eq!(
        store.count("SELECT count(*) FROM span_attributes").await,
        2999
    );
    let found = names(
        &*store.reader,
        vec![filter("span.attributes.n", Operator::Equals, json!(2999))],
    )
    .await;
    assert_eq!(found, vec!["ok".to_string()]);
    store.exporter.shutdown().await.unwrap();
}

/// The build context of exporter `sqlite/test`, with metrics of its own.
fn context() -> BuildContext {
    BuildContext {
        id: ComponentId::parse("sqlite/test").unwrap(),
        pipeline: None,
        metrics: Metrics::new(),
        host: Host::default(),
    }
}

/// The `sqlite` exporter as the service builds it (behind the sending queue), from `yaml`.
fn built(yaml: &str, ctx: &BuildContext) -> Arc<dyn teletrace_core::Exporter> {
    let _ = teletrace_exporters::link;
    let registration = registry::find(Kind::Exporter, "sqlite").expect("sqlite registered");
    let teletrace_core::FactoryRef::Exporter(factory) = registration.factory else {
        panic!("not an exporter factory");
    };
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let config = registration.factory.parse_config(&value).unwrap();
    factory.create(ctx, config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_sending_queue_makes_senders_wait_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.db");
    let ctx = context();
    let exporter = built(
        &format!(
            "path: {}\nsending_queue: {{num_consumers: 1, queue_size: 1}}",
            path.display()
        ),
        &ctx,
    );
    exporter.start(&Host::default()).await.unwrap();
    // Twenty senders at once against one consumer and room for one batch.
    let senders: Vec<_> = (0..20u64)
        .map(|b| {
            let exporter = exporter.clone();
            tokio::spawn(async move {
                let spans = (0..500)
                    .map(|i| span(b, b * 1000 + i, "flood", 1 + i, 1, vec![]))
                    .collect();
                exporter.consume(batch(vec![], spans)).await
            })
        })
        .collect();
    for sender in senders {
        sender
            .await
            .unwrap()
            .expect("a full queue waits, it does not refuse");
    }
    exporter.shutdown().await.unwrap();
    let metrics = &ctx.metrics;
    assert_eq!(
        metrics.counter_total("otelcol_exporter_enqueue_failed_spans"),
        0
    );
    assert_eq!(metrics.counter_total("otelcol_exporter_sent_spans"), 10_000);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spans")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, 10_000);
}

#[tokio::test]
async fn sqlite_building_opens_nothing_and_the_reader_waits_for_start() {
    let _ = teletrace_exporters::link;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("spans.db");
    let registration = registry::find(Kind::Exporter, "sqlite").expect("sqlite registered");
    assert!(registration.has(teletrace_core::Capability::TraceStorage));
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&format!("path: {}", path.display())).unwrap();
    let config = registration.factory.parse_config(&yaml).unwrap();
    let teletrace_core::FactoryRef::Exporter(factory) = registration.factory else {
        panic!("not an exporter factory");
    };
    let exporter = factory.create(&context(), config).unwrap();
    assert!(!path.exists(), "building must not create the database");
    let reader = exporter.reader().expect("reader right after build");
    match reader.tags().await {
        Err(StorageError::Backend(m)) => assert!(m.contains("not started")),
        other => panic!("expected not started, got {other:?}"),
    }
    // The service never sends before start; if something does, the sending queue holds
    // the batch until the store is open (and with the queue full, a further batch would
    // wait for start). An empty batch is dropped, full queue or not.
    exporter
        .consume(batch(vec![], vec![span(1, 1, "early", 1, 1, vec![])]))
        .await
        .unwrap();
    exporter.consume(Traces::default()).await.unwrap();
    assert!(!path.exists(), "the queued batch waits for start");

    exporter.start(&Host::default()).await.unwrap();
    assert!(path.exists());
    exporter
        .consume(batch(vec![], vec![span(1, 2, "late", 2, 1, vec![])]))
        .await
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..200 {
        let id: [u8; 16] = trace_id(1).try_into().unwrap();
        names = reader
            .get_trace(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.span.name)
            .collect();
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    names.sort();
    assert_eq!(names, ["early", "late"]);
    assert!(reader.tags().await.unwrap().len() > 10);
    exporter.shutdown().await.unwrap();
    exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_store_used_directly_refuses_batches_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = teletrace_exporters::sqlite::SqliteConfig {
        path: dir.path().join("spans.db").display().to_string(),
        ..Default::default()
    };
    let store = SqliteExporter::new("sqlite", config, &Metrics::new());
    let err = store
        .consume(batch(vec![], vec![span(1, 1, "x", 1, 1, vec![])]))
        .await
        .unwrap_err();
    assert!(
        err.is_retryable() && err.message().contains("not started"),
        "{err}"
    );
    store.consume(Traces::default()).await.unwrap();
}
