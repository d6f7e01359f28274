//! Retention deletes old spans with everything hanging off them, and nothing else.
#![cfg(feature = "sqlite")]

mod sqlite_common;

use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Span;
use sqlite_common::*;
use std::time::Duration;
use teletrace_core::{Consumer, Lifecycle};

const HOUR: u64 = 3_600_000_000_000;

fn decorated(trace: u64, id: u64, name: &str, start: u64) -> Span {
    let mut sp = span(
        trace,
        id,
        name,
        start,
        1_000,
        vec![kv("a", s(name)), kv("b", i(1))],
    );
    sp.events = vec![Event {
        name: format!("{name}-event"),
        time_unix_nano: start,
        attributes: vec![kv("e", s(name))],
        ..Default::default()
    }];
    sp.links = vec![Link {
        trace_id: trace_id(99),
        span_id: span_id(99),
        attributes: vec![kv("l", s(name))],
        ..Default::default()
    }];
    sp
}

async fn counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "spans",
        "span_attributes",
        "events",
        "event_attributes",
        "links",
        "link_attributes",
        "span_resource_attributes",
        "resource_attributes",
    ] {
        out.push(store.count(&format!("SELECT count(*) FROM {table}")).await);
    }
    out
}

#[tokio::test]
async fn sqlite_retention_deletes_old_spans_with_their_rows_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |c| c.retention = Duration::from_secs(3600)).await;
    let now = now_ns();
    let old: Vec<Span> = (0..3)
        .map(|k| decorated(1, k, &format!("old{k}"), now - 2 * HOUR - k))
        .collect();
    let fresh: Vec<Span> = (10..12)
        .map(|k| decorated(2, k, &format!("new{k}"), now - k))
        .collect();
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("gone"))], old))
        .await
        .unwrap();
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("kept"))], fresh))
        .await
        .unwrap();
    assert_eq!(counts(&store).await, [5, 10, 5, 5, 5, 5, 5, 2]);

    assert_eq!(store.exporter.enforce_retention().await.unwrap(), 3);
    assert_eq!(counts(&store).await, [2, 4, 2, 2, 2, 2, 2, 1]);
    let remaining = names(store.reader.as_ref(), vec![]).await;
    assert_eq!(remaining, ["new10", "new11"]);
    let kept = store
        .reader
        .get_trace(&trace_id(2).try_into().unwrap())
        .await
        .unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|st| st.span.events.len() == 1
        && st.span.links.len() == 1
        && st.span.attributes.len() == 2
        && st.resource.attributes == vec![kv("service.name", s("kept"))]));
    // Nothing more to delete.
    assert_eq!(store.exporter.enforce_retention().await.unwrap(), 0);
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_the_background_task_applies_retention_and_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |c| {
        c.retention = Duration::from_secs(3600);
        c.retention_check_interval = Duration::from_millis(50);
    })
    .await;
    let now = now_ns();
    store
        .exporter
        .consume(batch(
            vec![],
            vec![
                decorated(1, 1, "old", now - 3 * HOUR),
                decorated(1, 2, "new", now),
            ],
        ))
        .await
        .unwrap();
    let mut waited = 0;
    while store.count("SELECT count(*) FROM spans").await != 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 100, "retention task did not run");
    }
    store.exporter.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let keep = Store::open(dir.path(), |_| {}).await;
    keep.exporter
        .consume(batch(vec![], vec![decorated(1, 1, "ancient", 1)]))
        .await
        .unwrap();
    assert_eq!(keep.exporter.enforce_retention().await.unwrap(), 0);
    assert_eq!(keep.count("SELECT count(*) FROM spans").await, 1);
    keep.exporter.shutdown().await.unwrap();
}

/// A batch of `spans` under a resource with `resource_key` and a scope named `scope`
/// carrying the attribute `scope.attr`.
fn scoped(scope: &str, resource_key: &str, spans: Vec<Span>) -> teletrace_core::Traces {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    teletrace_core::Traces::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s(scope)), kv(resource_key, s("x"))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: scope.to_string(),
                version: "1.0".to_string(),
                attributes: vec![kv("scope.attr", s(scope))],
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

async fn tag_names(store: &Store) -> Vec<String> {
    store
        .reader
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect()
}

#[tokio::test]
async fn sqlite_retention_prunes_scopes_and_tags_no_span_uses_and_they_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |c| c.retention = Duration::from_secs(3600)).await;
    let now = now_ns();
    let old = |id| {
        span(
            1,
            id,
            "old",
            now - 2 * HOUR,
            1_000,
            vec![kv("old.only", s("v"))],
        )
    };
    let fresh = |id| span(2, id, "new", now, 1_000, vec![kv("a", s("v"))]);
    store
        .exporter
        .consume(scoped("old-lib", "old.res", vec![old(1), old(2)]))
        .await
        .unwrap();
    store
        .exporter
        .consume(scoped("new-lib", "new.res", vec![fresh(10)]))
        .await
        .unwrap();
    let before = tag_names(&store).await;
    for name in ["span.attributes.old.only", "resource.attributes.old.res"] {
        assert!(
            before.iter().any(|t| t == name),
            "{name} missing in {before:?}"
        );
    }
    assert_eq!(store.count("SELECT count(*) FROM scopes").await, 2);

    assert_eq!(store.exporter.enforce_retention().await.unwrap(), 2);
    let after = tag_names(&store).await;
    for name in ["span.attributes.old.only", "resource.attributes.old.res"] {
        assert!(!after.iter().any(|t| t == name), "{name} left in {after:?}");
    }
    for name in [
        "span.attributes.a",
        "resource.attributes.new.res",
        "scope.attributes.scope.attr",
    ] {
        assert!(after.iter().any(|t| t == name), "{name} lost: {after:?}");
    }
    assert_eq!(
        store
            .count("SELECT count(*) FROM scopes WHERE name = 'new-lib'")
            .await,
        1
    );
    assert_eq!(store.count("SELECT count(*) FROM scopes").await, 1);
    assert_eq!(
        store.count("SELECT count(*) FROM scope_attributes").await,
        1
    );

    // The writer forgot the pruned entries: a new span with the key lists it again.
    store
        .exporter
        .consume(scoped(
            "old-lib",
            "old.res",
            vec![span(
                3,
                20,
                "again",
                now,
                1_000,
                vec![kv("old.only", s("w"))],
            )],
        ))
        .await
        .unwrap();
    let again = tag_names(&store).await;
    for name in ["span.attributes.old.only", "resource.attributes.old.res"] {
        assert!(
            again.iter().any(|t| t == name),
            "{name} not listed again: {again:?}"
        );
    }
    assert_eq!(store.count("SELECT count(*) FROM scopes").await, 2);
    store.exporter.shutdown().await.unwrap();
}
