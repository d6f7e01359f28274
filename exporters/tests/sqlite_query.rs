//! The sqlite exporter's read side: operators, injection, paging, whole traces, tags.
#![cfg(feature = "sqlite")]

mod sqlite_common;

use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::json;
use sqlite_common::*;
use std::collections::{BTreeMap, HashSet};
use teletrace_core::storage::{
    Operator, SearchRequest, Sort, SortField, Statistic, StorageError, TagInfo, Timeframe,
    TraceReader,
};
use teletrace_core::{Consumer, Lifecycle};

const STRINGS: [&str; 8] = [
    "alpha",
    "beta",
    "gamma",
    "alpha-beta",
    "delta",
    "epsilon",
    "zeta",
    "eta",
];

/// Spans n0..n10: n0..n7 carry s (string), i (int), d (double), bo (bool); n8 carries s as
/// an Int; n9 has no attributes; n10 only a different key holding "alpha".
/// The operator fixture. `sealed`: restarted after the write, so its segment is sealed
/// and searches go through the attribute postings; otherwise the open segment is scanned.
async fn operator_store(dir: &std::path::Path, sealed: bool) -> Store {
    let store = Store::open(dir, |_| {}).await;
    let mut spans = Vec::new();
    for k in 0..11u64 {
        let attrs = match k {
            0..=7 => vec![
                kv("s", s(STRINGS[k as usize])),
                kv("i", i(k as i64 * 10)),
                kv("d", d(k as f64 + 0.25)),
                kv("bo", b(k % 2 == 0)),
            ],
            8 => vec![kv("s", i(5))],
            10 => vec![kv("other", s("alpha"))],
            _ => vec![],
        };
        spans.push(span(1, k, &format!("n{k}"), 1_000 + k, 10, attrs));
    }
    store
        .exporter
        .consume(batch(vec![kv("s", s("alpha"))], spans))
        .await
        .unwrap();
    if !sealed {
        return store;
    }
    store.exporter.shutdown().await.unwrap();
    let store = Store::open(dir, |_| {}).await;
    assert_eq!(
        store
            .count("SELECT count(*) FROM segments WHERE sealed = 0 AND spans > 0")
            .await,
        0
    );
    assert!(
        store
            .count("SELECT count(*) FROM span_attribute_postings")
            .await
            > 0
    );
    store
}

fn expect(ks: &[u64]) -> Vec<String> {
    let mut names: Vec<String> = ks.iter().map(|k| format!("n{k}")).collect();
    names.sort();
    names
}

async fn check(
    reader: &dyn TraceReader,
    key: &str,
    op: Operator,
    value: serde_json::Value,
    ks: &[u64],
) {
    let got = names(reader, vec![filter(key, op, value.clone())]).await;
    assert_eq!(got, expect(ks), "{key} {op:?} {value}");
}

#[tokio::test]
async fn sqlite_every_operator_on_strings() {
    for sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = operator_store(dir.path(), sealed).await;
        let r = store.reader.as_ref();
        let key = "span.attributes.s";
        check(r, key, Operator::Equals, json!("gamma"), &[2]).await;
        check(r, key, Operator::Equals, json!("alpha"), &[0]).await;
        check(r, key, Operator::Equals, json!("5"), &[]).await;
        check(
            r,
            key,
            Operator::NotEquals,
            json!("gamma"),
            &[0, 1, 3, 4, 5, 6, 7, 8],
        )
        .await;
        check(r, key, Operator::In, json!(["alpha", "zeta"]), &[0, 6]).await;
        check(
            r,
            key,
            Operator::NotIn,
            json!(["alpha", "zeta"]),
            &[1, 2, 3, 4, 5, 7, 8],
        )
        .await;
        check(r, key, Operator::Contains, json!("alpha"), &[0, 3]).await;
        check(
            r,
            key,
            Operator::NotContains,
            json!("alpha"),
            &[1, 2, 4, 5, 6, 7, 8],
        )
        .await;
        check(
            r,
            key,
            Operator::Exists,
            json!(null),
            &[0, 1, 2, 3, 4, 5, 6, 7, 8],
        )
        .await;
        check(r, key, Operator::NotExists, json!(null), &[9, 10]).await;
        check(r, key, Operator::Gt, json!("delta"), &[2, 5, 6, 7]).await;
        check(r, key, Operator::Gte, json!("delta"), &[2, 4, 5, 6, 7]).await;
        check(r, key, Operator::Lt, json!("beta"), &[0, 3]).await;
        check(r, key, Operator::Lte, json!("beta"), &[0, 1, 3]).await;
        store.exporter.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_every_operator_on_integers() {
    for sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = operator_store(dir.path(), sealed).await;
        let r = store.reader.as_ref();
        let key = "span.attributes.i";
        check(r, key, Operator::Equals, json!(30), &[3]).await;
        check(r, key, Operator::Equals, json!(30.0), &[3]).await;
        check(
            r,
            key,
            Operator::NotEquals,
            json!(30),
            &[0, 1, 2, 4, 5, 6, 7],
        )
        .await;
        check(r, key, Operator::In, json!([10, 50]), &[1, 5]).await;
        check(
            r,
            key,
            Operator::NotIn,
            json!([10, 50]),
            &[0, 2, 3, 4, 6, 7],
        )
        .await;
        check(r, key, Operator::Contains, json!("1"), &[1]).await;
        check(r, key, Operator::NotContains, json!("0"), &[]).await;
        check(
            r,
            key,
            Operator::Exists,
            json!(null),
            &[0, 1, 2, 3, 4, 5, 6, 7],
        )
        .await;
        check(r, key, Operator::NotExists, json!(null), &[8, 9, 10]).await;
        check(r, key, Operator::Gt, json!(40), &[5, 6, 7]).await;
        check(r, key, Operator::Gte, json!(40), &[4, 5, 6, 7]).await;
        check(r, key, Operator::Lt, json!(20), &[0, 1]).await;
        check(r, key, Operator::Lte, json!(20), &[0, 1, 2]).await;
        // A number never matches text, and text never matches a number.
        check(r, "span.attributes.s", Operator::Equals, json!(5), &[8]).await;
        check(r, "span.attributes.s", Operator::Gt, json!(0), &[8]).await;
        store.exporter.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_every_operator_on_floats() {
    for sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = operator_store(dir.path(), sealed).await;
        let r = store.reader.as_ref();
        let key = "span.attributes.d";
        check(r, key, Operator::Equals, json!(2.25), &[2]).await;
        check(
            r,
            key,
            Operator::NotEquals,
            json!(2.25),
            &[0, 1, 3, 4, 5, 6, 7],
        )
        .await;
        check(r, key, Operator::In, json!([0.25, 7.25]), &[0, 7]).await;
        check(
            r,
            key,
            Operator::NotIn,
            json!([0.25, 7.25]),
            &[1, 2, 3, 4, 5, 6],
        )
        .await;
        check(r, key, Operator::Contains, json!("3.25"), &[3]).await;
        check(r, key, Operator::NotContains, json!(".25"), &[]).await;
        check(
            r,
            key,
            Operator::Exists,
            json!(null),
            &[0, 1, 2, 3, 4, 5, 6, 7],
        )
        .await;
        check(r, key, Operator::NotExists, json!(null), &[8, 9, 10]).await;
        check(r, key, Operator::Gt, json!(5), &[5, 6, 7]).await;
        check(r, key, Operator::Gte, json!(5.25), &[5, 6, 7]).await;
        check(r, key, Operator::Lt, json!(1.25), &[0]).await;
        check(r, key, Operator::Lte, json!(1.25), &[0, 1]).await;
        store.exporter.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_every_operator_on_booleans() {
    for sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = operator_store(dir.path(), sealed).await;
        let r = store.reader.as_ref();
        let key = "span.attributes.bo";
        check(r, key, Operator::Equals, json!(true), &[0, 2, 4, 6]).await;
        check(r, key, Operator::Equals, json!(false), &[1, 3, 5, 7]).await;
        check(r, key, Operator::NotEquals, json!(true), &[1, 3, 5, 7]).await;
        check(r, key, Operator::In, json!([false]), &[1, 3, 5, 7]).await;
        check(r, key, Operator::NotIn, json!([false]), &[0, 2, 4, 6]).await;
        check(
            r,
            key,
            Operator::Exists,
            json!(null),
            &[0, 1, 2, 3, 4, 5, 6, 7],
        )
        .await;
        check(r, key, Operator::NotExists, json!(null), &[8, 9, 10]).await;
        // An integer 1 is not true.
        check(r, "span.attributes.i", Operator::Equals, json!(true), &[]).await;
        for op in [Operator::Gt, Operator::Gte, Operator::Lt, Operator::Lte] {
            let err = store
                .reader
                .search(&request(vec![filter(key, op, json!(true))], 10))
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::BadRequest(_)), "{op:?}");
        }
        store.exporter.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_span_fields_resource_scope_and_event_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let mut a = span(1, 1, "GET /a", 100, 5_000, vec![]);
    a.events = vec![Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", s("IOError"))],
        ..Default::default()
    }];
    a.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        message: "bad".into(),
        code: 2,
    });
    let mut b_span = span(2, 2, "POST /b", 200, 50, vec![]);
    b_span.kind = 3;
    b_span.parent_span_id = span_id(1);
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("frontend"))], vec![a]))
        .await
        .unwrap();
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("backend"))], vec![b_span]))
        .await
        .unwrap();
    let r = store.reader.as_ref();
    let one = |k: &str, op, v| filter(k, op, v);
    assert_eq!(
        names(
            r,
            vec![one(
                "resource.attributes.service.name",
                Operator::Equals,
                json!("backend")
            )]
        )
        .await,
        ["POST /b"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "resource.attributes.service.name",
                Operator::NotEquals,
                json!("backend")
            )]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(r, vec![one("span.name", Operator::Contains, json!("/b"))]).await,
        ["POST /b"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "span.kind",
                Operator::Equals,
                json!("SPAN_KIND_CLIENT")
            )]
        )
        .await,
        ["POST /b"]
    );
    assert_eq!(
        names(r, vec![one("span.kind", Operator::Equals, json!("Server"))]).await,
        ["GET /a"]
    );
    assert_eq!(
        names(r, vec![one("span.status.code", Operator::Equals, json!(2))]).await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one("span.status.message", Operator::Equals, json!("bad"))]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "externalFields.durationNano",
                Operator::Gt,
                json!(1000)
            )]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one("span.parentSpanId", Operator::Exists, json!(null))]
        )
        .await,
        ["POST /b"]
    );
    assert_eq!(
        names(
            r,
            vec![one("span.parentSpanId", Operator::NotExists, json!(null))]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "span.traceId",
                Operator::Equals,
                json!("ABABABABABABABAB0000000000000002")
            )]
        )
        .await,
        ["POST /b"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "span.spanId",
                Operator::In,
                json!(["0000000000000002"])
            )]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one("scope.name", Operator::Equals, json!("test-scope"))]
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "span.events.name",
                Operator::Equals,
                json!("exception")
            )]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one(
                "span.events.attributes.exception.type",
                Operator::Equals,
                json!("IOError")
            )]
        )
        .await,
        ["GET /a"]
    );
    assert_eq!(
        names(
            r,
            vec![one("span.events.name", Operator::NotExists, json!(null))]
        )
        .await,
        ["POST /b"]
    );
    // Two filters together.
    assert_eq!(
        names(
            r,
            vec![
                one(
                    "resource.attributes.service.name",
                    Operator::In,
                    json!(["frontend", "backend"])
                ),
                one("span.kind", Operator::Equals, json!(3)),
            ]
        )
        .await,
        ["POST /b"]
    );
    let unknown = store
        .reader
        .search(&request(
            vec![one("nope", Operator::Exists, json!(null))],
            10,
        ))
        .await;
    assert!(matches!(unknown, Err(StorageError::BadRequest(_))));
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_injection_attempts_match_literally_and_tables_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let evil = ["x' OR '1'='1", "\"; DROP TABLE spans; --", "100%", "x"];
    let spans = evil
        .iter()
        .enumerate()
        .map(|(k, v)| {
            span(
                1,
                k as u64,
                &format!("n{k}"),
                10,
                1,
                vec![kv("q", s(v)), kv("we'ird", s(v))],
            )
        })
        .collect();
    store.exporter.consume(batch(vec![], spans)).await.unwrap();
    let r = store.reader.as_ref();
    let q = |op, v| vec![filter("span.attributes.q", op, v)];
    assert_eq!(
        names(r, q(Operator::Equals, json!("x' OR '1'='1"))).await,
        ["n0"]
    );
    assert_eq!(
        names(r, q(Operator::Equals, json!("\"; DROP TABLE spans; --"))).await,
        ["n1"]
    );
    assert_eq!(
        names(r, q(Operator::Equals, json!("' OR '1'='1"))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(r, q(Operator::Contains, json!("' OR '"))).await,
        ["n0"]
    );
    assert_eq!(names(r, q(Operator::Contains, json!("%"))).await, ["n2"]);
    assert_eq!(
        names(r, q(Operator::Contains, json!("_"))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(r, q(Operator::In, json!(["x') OR 1=1 --", "x"]))).await,
        ["n3"]
    );
    // '"' sorts before '\'', so the DROP value is not greater.
    assert_eq!(
        names(r, q(Operator::Gt, json!("' OR 1=1 --"))).await,
        ["n0", "n2", "n3"]
    );
    assert_eq!(
        names(
            r,
            vec![filter(
                "span.attributes.we'ird",
                Operator::Equals,
                json!("x")
            )]
        )
        .await,
        ["n3"]
    );
    assert_eq!(
        names(
            r,
            vec![filter(
                "span.attributes.q' OR '1'='1",
                Operator::Exists,
                json!(null)
            )]
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            r,
            vec![filter(
                "span.name",
                Operator::Equals,
                json!("n0' OR '1'='1")
            )]
        )
        .await,
        Vec::<String>::new()
    );
    let values = store
        .reader
        .tag_values(
            "span.attributes.q'); DROP TABLE spans; --",
            everything(),
            &[],
        )
        .await
        .unwrap();
    assert!(values.is_empty());
    assert_eq!(store.count("SELECT count(*) FROM spans").await, 4);
    assert_eq!(store.count("SELECT count(*) FROM span_attributes").await, 8);
    store.exporter.shutdown().await.unwrap();
}

/// Collects every page of `req` and checks each span comes once and in order.
async fn all_pages(reader: &dyn TraceReader, mut req: SearchRequest) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = reader.search(&req).await.unwrap();
        pages += 1;
        assert!(page.spans.len() <= req.limit);
        out.extend(page.spans.iter().map(|s| {
            (
                s.span.start_time_unix_nano,
                s.duration_ns,
                s.span.span_id.clone(),
            )
        }));
        match page.next_token {
            Some(token) => req.next_token = Some(token),
            None => break,
        }
        assert!(pages < 10_000, "paging does not end");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_paging_returns_every_match_once_with_ties() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    // 6,000 spans over 60 start times (100 spans share each), durations 0..6.
    for chunk in 0..6u64 {
        let spans = (chunk * 1000..(chunk + 1) * 1000)
            .map(|k| {
                let group = if k % 5 == 0 { "skip" } else { "keep" };
                span(
                    k % 13,
                    k,
                    &format!("n{k}"),
                    1_000_000 + k / 100,
                    k % 7,
                    vec![kv("grp", s(group))],
                )
            })
            .collect();
        store.exporter.consume(batch(vec![], spans)).await.unwrap();
    }
    let sorts = [
        (SortField::StartTime, false),
        (SortField::StartTime, true),
        (SortField::Duration, false),
        (SortField::Duration, true),
    ];
    // A selective filter (4,800 matches), a broad one (6,000), a small timeframe (700).
    let cases: Vec<(Vec<_>, Timeframe, usize)> = vec![
        (
            vec![filter(
                "span.attributes.grp",
                Operator::Equals,
                json!("keep"),
            )],
            everything(),
            4800,
        ),
        (
            vec![filter(
                "span.attributes.grp",
                Operator::In,
                json!(["keep", "skip"]),
            )],
            everything(),
            6000,
        ),
        (
            vec![],
            Timeframe {
                start_ns: 1_000_010,
                end_ns: 1_000_016,
            },
            700,
        ),
    ];
    for (filters, timeframe, expected) in cases {
        for (field, ascending) in sorts {
            let req = SearchRequest {
                timeframe,
                filters: filters.clone(),
                sort: vec![Sort { field, ascending }],
                next_token: None,
                limit: 250,
            };
            let got = all_pages(store.reader.as_ref(), req).await;
            assert_eq!(got.len(), expected, "{field:?} asc={ascending} {filters:?}");
            let unique: HashSet<&Vec<u8>> = got.iter().map(|(_, _, id)| id).collect();
            assert_eq!(
                unique.len(),
                expected,
                "duplicates with {field:?} asc={ascending}"
            );
            let keys: Vec<(u64, Vec<u8>)> = got
                .iter()
                .map(|(start, dur, id)| {
                    (
                        if field == SortField::StartTime {
                            *start
                        } else {
                            *dur
                        },
                        id.clone(),
                    )
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if !ascending {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "order with {field:?} asc={ascending}");
        }
    }
    // Tokens are checked.
    let mut req = request(vec![], 10);
    req.next_token = Some("definitely-not-a-token".into());
    assert!(matches!(
        store.reader.search(&req).await,
        Err(StorageError::BadRequest(_))
    ));
    let first = store.reader.search(&request(vec![], 10)).await.unwrap();
    req.next_token = first.next_token;
    req.sort = vec![Sort {
        field: SortField::Duration,
        ascending: true,
    }];
    assert!(matches!(
        store.reader.search(&req).await,
        Err(StorageError::BadRequest(_))
    ));
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_trace_of_2000_spans_comes_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), |_| {}).await;
    for part in 0..4u64 {
        if part == 2 {
            // A restart starts a new ingestion segment: the trace spans two.
            store.exporter.shutdown().await.unwrap();
            store = Store::open(dir.path(), |_| {}).await;
        }
        let spans = (part * 500..(part + 1) * 500)
            .map(|k| {
                let mut sp = span(
                    42,
                    k,
                    &format!("op{k}"),
                    5_000_000 - k * 10,
                    7,
                    vec![kv("k", i(k as i64)), kv("svc", s("x"))],
                );
                if k % 100 == 0 {
                    sp.events = vec![Event {
                        name: "e".into(),
                        attributes: vec![kv("n", i(k as i64))],
                        ..Default::default()
                    }];
                }
                sp
            })
            .collect();
        store
            .exporter
            .consume(batch(vec![kv("service.name", s("big"))], spans))
            .await
            .unwrap();
    }
    // Another trace, to be left out.
    store
        .exporter
        .consume(batch(vec![], vec![span(43, 9_999, "other", 1, 1, vec![])]))
        .await
        .unwrap();
    let spans = store
        .reader
        .get_trace(&trace_id(42).try_into().unwrap())
        .await
        .unwrap();
    assert_eq!(spans.len(), 2000);
    assert!(spans
        .windows(2)
        .all(|w| w[0].span.start_time_unix_nano <= w[1].span.start_time_unix_nano));
    assert!(spans.iter().all(|s| s.span.attributes.len() == 2));
    assert!(spans
        .iter()
        .all(|st| st.resource.attributes == vec![kv("service.name", s("big"))]));
    assert_eq!(
        spans.iter().filter(|s| s.span.events.len() == 1).count(),
        20
    );
    assert!(store.reader.get_trace(&[9; 16]).await.unwrap().is_empty());
    assert_eq!(store.count("SELECT count(*) FROM segments").await, 2);
    // Filters and tag values see every segment.
    let found = names(
        store.reader.as_ref(),
        vec![
            filter("span.attributes.k", Operator::Lt, json!(10)),
            filter("span.attributes.svc", Operator::Equals, json!("x")),
        ],
    )
    .await;
    assert_eq!(found.len(), 10);
    let found = names(
        store.reader.as_ref(),
        vec![filter("span.attributes.k", Operator::In, json!([1, 1999]))],
    )
    .await;
    assert_eq!(found, ["op1", "op1999"]);
    let svc = store
        .reader
        .tag_values("span.attributes.svc", everything(), &[])
        .await
        .unwrap();
    assert_eq!(svc[0].count, 2000);
    // A timeframe cutting through both segments (spans 500..=1499).
    let cut = Timeframe {
        start_ns: 5_000_000 - 1_499 * 10,
        end_ns: 5_000_000 - 500 * 10,
    };
    let svc = store
        .reader
        .tag_values("span.attributes.svc", cut, &[])
        .await
        .unwrap();
    assert_eq!(svc[0].count, 1000);
    let svc = store
        .reader
        .tag_values(
            "span.attributes.svc",
            cut,
            &[filter("span.attributes.k", Operator::Gte, json!(1000))],
        )
        .await
        .unwrap();
    assert_eq!(svc[0].count, 500);
    store.exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_tags_values_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    let spans: Vec<_> = (1..=100u64)
        .map(|k| {
            let route = if k <= 60 {
                "/a"
            } else if k <= 90 {
                "/b"
            } else {
                "/c"
            };
            let mut sp = span(
                k,
                k,
                "op",
                1_000 + k,
                k,
                vec![kv("http.route", s(route)), kv("size", d(k as f64))],
            );
            if k == 1 {
                sp.events = vec![Event {
                    name: "ev".into(),
                    attributes: vec![kv("ev.attr", b(true))],
                    ..Default::default()
                }];
            }
            sp
        })
        .collect();
    store
        .exporter
        .consume(batch(vec![kv("service.name", s("svc"))], spans))
        .await
        .unwrap();
    let tags = store.reader.tags().await.unwrap();
    let has = |name: &str, ty: &str| {
        tags.contains(&TagInfo {
            name: name.into(),
            value_type: ty.into(),
        })
    };
    assert!(has("span.attributes.http.route", "Str"), "{tags:?}");
    assert!(has("span.attributes.size", "Double"));
    assert!(has("resource.attributes.service.name", "Str"));
    assert!(has("span.events.attributes.ev.attr", "Bool"));
    assert!(has("scope.name", "Str"));
    assert!(has("span.name", "Str"));
    assert!(has("externalFields.durationNano", "Int"));

    let values = store
        .reader
        .tag_values("span.attributes.http.route", everything(), &[])
        .await
        .unwrap();
    let pairs: Vec<(serde_json::Value, u64)> =
        values.iter().map(|v| (v.value.clone(), v.count)).collect();
    assert_eq!(
        pairs,
        vec![(json!("/a"), 60), (json!("/b"), 30), (json!("/c"), 10)]
    );
    let filtered = store
        .reader
        .tag_values(
            "span.attributes.http.route",
            everything(),
            &[filter(
                "externalFields.durationNano",
                Operator::Gt,
                json!(85),
            )],
        )
        .await
        .unwrap();
    let pairs: Vec<(serde_json::Value, u64)> = filtered
        .iter()
        .map(|v| (v.value.clone(), v.count))
        .collect();
    assert_eq!(pairs, vec![(json!("/c"), 10), (json!("/b"), 5)]);
    let kinds = store
        .reader
        .tag_values("span.kind", everything(), &[])
        .await
        .unwrap();
    assert_eq!(kinds[0].value, json!("Server"));
    assert_eq!(kinds[0].count, 100);
    let bools = store
        .reader
        .tag_values("span.events.attributes.ev.attr", everything(), &[])
        .await
        .unwrap();
    assert_eq!(bools[0].value, json!(true));

    let all = [
        Statistic::Min,
        Statistic::Max,
        Statistic::Avg,
        Statistic::P50,
        Statistic::P75,
        Statistic::P90,
        Statistic::P95,
        Statistic::P99,
    ];
    let stats = store
        .reader
        .tag_statistics("externalFields.durationNano", everything(), &[], &all)
        .await
        .unwrap();
    let want: BTreeMap<Statistic, f64> = [
        (Statistic::Min, 1.0),
        (Statistic::Max, 100.0),
        (Statistic::Avg, 50.5),
        (Statistic::P50, 50.0),
        (Statistic::P75, 75.0),
        (Statistic::P90, 90.0),
        (Statistic::P95, 95.0),
        (Statistic::P99, 99.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(stats, want);
    let sizes = store
        .reader
        .tag_statistics(
            "span.attributes.size",
            everything(),
            &[filter(
                "span.attributes.http.route",
                Operator::Equals,
                json!("/c"),
            )],
            &[Statistic::Min, Statistic::Max, Statistic::P50],
        )
        .await
        .unwrap();
    assert_eq!(sizes[&Statistic::Min], 91.0);
    assert_eq!(sizes[&Statistic::Max], 100.0);
    assert_eq!(sizes[&Statistic::P50], 95.0);
    let none = store
        .reader
        .tag_statistics(
            "externalFields.durationNano",
            Timeframe {
                start_ns: 0,
                end_ns: 10,
            },
            &[],
            &all,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    store.exporter.shutdown().await.unwrap();
}

/// The JSON `GET /v1/trace/{id}` answers with, written by the store from its rows
/// (`write_trace_json`), is byte for byte what the query API would write from the spans
/// `get_trace` returns: for every kind of value, escapes, a repeated key, resources and
/// scopes with dropped counts, events, links, and start times that tie.
#[tokio::test]
async fn sqlite_trace_json_from_rows_equals_the_json_of_the_spans_read() {
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value as V, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Link;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
    use teletrace_core::Traces;

    let any = |v: V| AnyValue { value: Some(v) };
    let every_value = vec![
        kv("str", s("plain")),
        kv("escaped", s("q\"uote\\back\nline\u{1}é😀")),
        kv("k\"ey", s("v")),
        kv("int", i(i64::MIN)),
        kv("int.max", i(i64::MAX)),
        kv("double", d(0.1)),
        kv("double.whole", d(3.0)),
        kv("double.big", d(1e300)),
        kv("nan", d(f64::NAN)),
        kv("inf", d(f64::NEG_INFINITY)),
        kv("neg.zero", d(-0.0)),
        kv("bool", b(true)),
        kv("bytes", any(V::BytesValue(vec![0, 1, 0xfe, 0xff]))),
        kv(
            "array",
            any(V::ArrayValue(ArrayValue {
                values: vec![i(1), s("two"), d(2.5), b(false)],
            })),
        ),
        kv(
            "map",
            any(V::KvlistValue(KeyValueList {
                values: vec![kv("inner", s("x")), kv("n", i(7))],
            })),
        ),
        KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
        kv("str", s("repeated: the store keeps the first value")),
    ];
    // Stored without a backslash anywhere: read by the plain-list scanner, where the
    // list above goes through serde_json.
    let plain_values = vec![
        kv("str", s("plain")),
        kv("int", i(i64::MIN)),
        kv("double", d(0.1)),
        kv("double.whole", d(3.0)),
        kv("nan", d(f64::NAN)),
        kv("inf", d(f64::NEG_INFINITY)),
        kv("neg.zero", d(-0.0)),
        kv("bool", b(false)),
        kv("bytes", any(V::BytesValue(vec![0, 0xff]))),
        kv(
            "ints",
            any(V::ArrayValue(ArrayValue {
                values: vec![i(1), i(-2)],
            })),
        ),
        KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
    ];
    let rich = |id: u64, start: u64| {
        let values = if id.is_multiple_of(2) {
            &plain_values
        } else {
            &every_value
        };
        let mut sp = span(77, id, &format!("op \"{id}\""), start, 500, values.clone());
        sp.trace_state = "vendor=a,other=\"b\"".into();
        sp.parent_span_id = span_id(1);
        sp.kind = (id % 6) as i32;
        sp.dropped_attributes_count = 3;
        sp.dropped_events_count = 4;
        sp.dropped_links_count = 5;
        sp.status = Some(Status {
            message: "bad\ttab".into(),
            code: (id % 3) as i32,
        });
        sp
    };
    let mut with_children = rich(2, 1_000);
    with_children.events = vec![
        Event {
            time_unix_nano: 1_100,
            name: "first".into(),
            attributes: every_value.clone(),
            dropped_attributes_count: 1,
        },
        Event {
            time_unix_nano: 1_200,
            name: "second \"one\"".into(),
            ..Default::default()
        },
    ];
    with_children.links = vec![Link {
        trace_id: trace_id(78),
        span_id: span_id(9),
        trace_state: "l=1".into(),
        attributes: vec![kv("link.attr", d(1.5))],
        dropped_attributes_count: 2,
        flags: 0,
    }];
    let resource = |attributes: Vec<KeyValue>, dropped| Resource {
        attributes,
        dropped_attributes_count: dropped,
        ..Default::default()
    };
    let scope = |name: &str, attributes| InstrumentationScope {
        name: name.into(),
        version: "2.0".into(),
        attributes,
        dropped_attributes_count: 6,
    };
    let traces = Traces::new(vec![
        ResourceSpans {
            resource: Some(resource(
                vec![kv("service.name", s("front")), kv("host.cores", i(8))],
                1,
            )),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope("lib \"a\"", vec![kv("scope.attr", b(true))])),
                    // Spans 3 and 4 start at the same time: the span ID orders them.
                    spans: vec![with_children, rich(4, 3_000), rich(3, 3_000)],
                    ..Default::default()
                },
                ScopeSpans {
                    scope: Some(scope("lib-b", vec![])),
                    spans: vec![rich(5, 500)],
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
        ResourceSpans {
            resource: Some(resource(vec![kv("service.name", s("back"))], 0)),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans: vec![rich(6, 2_000), span(79, 10, "another trace", 1, 1, vec![])],
                ..Default::default()
            }],
            ..Default::default()
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), |_| {}).await;
    store.exporter.consume(traces).await.unwrap();

    let id: [u8; 16] = trace_id(77).try_into().unwrap();
    let spans = store.reader.get_trace(&id).await.unwrap();
    assert_eq!(spans.len(), 5);
    assert_eq!(spans[3].span.span_id, span_id(3), "ties ordered by span ID");
    assert_eq!(spans[4].span.span_id, span_id(4));
    assert_eq!(spans[0].span.events.len(), 0);
    assert_eq!(spans[1].span.events.len(), 2);
    let mut expected = Vec::new();
    teletrace_core::span_json::write_array(&mut expected, &spans);
    let mut written = b"prefix".to_vec();
    let count = store
        .reader
        .write_trace_json(&id, &mut written)
        .await
        .unwrap();
    assert_eq!(count, 5);
    assert_eq!(
        String::from_utf8_lossy(&written[6..]),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(&written[..6], b"prefix", "appended, not overwritten");
    let parsed: serde_json::Value = serde_json::from_slice(&written[6..]).unwrap();
    assert_eq!(parsed[0]["span"]["attributes"]["str"], "plain");
    assert_eq!(parsed[0]["span"]["attributes"]["k\"ey"], "v");
    assert_eq!(parsed[1]["span"]["attributes"]["ints"], json!([1, -2]));
    assert_eq!(parsed[1]["span"]["attributes"]["bytes"], "AP8=");
    assert_eq!(parsed[1]["span"]["events"][0]["attributes"]["nan"], "NaN");
    assert_eq!(parsed[2]["span"]["attributes"]["neg.zero"], -0.0);
    assert_eq!(
        parsed[1]["span"]["links"][0]["attributes"]["link.attr"],
        1.5
    );

    let to_hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // Each span row counts its events and links, so only the spans that have some are
    // looked up in `events` and `links`.
    let counted: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT span_id, event_count, link_count FROM spans \
         WHERE trace_id = ? ORDER BY span_id",
    )
    .bind(to_hex(&trace_id(77)))
    .fetch_all(&mut store.raw().await)
    .await
    .unwrap();
    let with_counts: Vec<_> = counted
        .iter()
        .filter(|(_, e, l)| *e != Some(0) || *l != Some(0))
        .collect();
    assert_eq!(counted.len(), 5);
    assert_eq!(
        with_counts,
        [&(to_hex(&span_id(2)), Some(2), Some(1))],
        "{counted:?}"
    );
    // Rows stored before the counts existed (migration 0005) have NULL there: the
    // reader looks their events and links up, and both paths still agree.
    sqlx::query("UPDATE spans SET event_count = NULL, link_count = NULL")
        .execute(&mut store.raw().await)
        .await
        .unwrap();
    // (Compared as JSON: the spans hold NaN, which equals nothing.)
    let mut read_uncounted = Vec::new();
    teletrace_core::span_json::write_array(
        &mut read_uncounted,
        &store.reader.get_trace(&id).await.unwrap(),
    );
    assert_eq!(read_uncounted, expected);
    let mut written_uncounted = Vec::new();
    store
        .reader
        .write_trace_json(&id, &mut written_uncounted)
        .await
        .unwrap();
    assert_eq!(written_uncounted, expected);

    let mut unknown = Vec::new();
    assert_eq!(
        store
            .reader
            .write_trace_json(&[9; 16], &mut unknown)
            .await
            .unwrap(),
        0
    );
    assert_eq!(unknown, b"[]");
    store.exporter.shutdown().await.unwrap();
}
