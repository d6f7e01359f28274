use super::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

fn span(trace: u8, id: u8) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("span-{trace}-{id}"),
        ..Default::default()
    }
}

fn resource(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "test".into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

fn encoded(rs: Vec<ResourceSpans>) -> Traces {
    let bytes = ExportTraceServiceRequest { resource_spans: rs }.encode_to_vec();
    Traces::from_encoded(bytes.into()).expect("valid request")
}

fn names(t: Traces) -> Vec<String> {
    let mut out = Vec::new();
    for r in t.into_resource_spans().unwrap() {
        for s in r.scope_spans {
            out.extend(s.spans.into_iter().map(|s| s.name));
        }
    }
    out
}

#[test]
fn encoded_batches_join_without_decoding() {
    let mut a = encoded(vec![resource("a", vec![span(1, 1), span(1, 2)])]);
    let b = encoded(vec![resource("b", vec![span(2, 1)])]);
    a.append(b).unwrap();
    assert!(a.is_encoded());
    assert_eq!(a.span_count(), 3);
    assert_eq!(names(a), ["span-1-1", "span-1-2", "span-2-1"]);
}

#[test]
fn mixed_batches_join_decoded() {
    let mut a = encoded(vec![resource("a", vec![span(1, 1)])]);
    a.append(Traces::new(vec![resource(
        "b",
        vec![span(2, 1), span(2, 2)],
    )]))
    .unwrap();
    assert_eq!(a.span_count(), 3);
    assert_eq!(names(a), ["span-1-1", "span-2-1", "span-2-2"]);
}

#[test]
fn split_on_resource_boundary_stays_encoded() {
    let mut t = encoded(vec![
        resource("a", vec![span(1, 1), span(1, 2)]),
        resource("b", vec![span(2, 1), span(2, 2)]),
    ]);
    let front = t.split_front(3).unwrap();
    assert!(front.is_encoded() && t.is_encoded());
    assert_eq!((front.span_count(), t.span_count()), (2, 2));
}

#[test]
fn split_inside_a_resource_decodes_and_keeps_resource() {
    let mut t = encoded(vec![resource("a", (0..5).map(|i| span(1, i)).collect())]);
    let front = t.split_front(3).unwrap();
    assert_eq!((front.span_count(), t.span_count()), (3, 2));
    let mut front = front;
    assert_eq!(
        front.resource_spans().unwrap()[0].resource,
        t.resource_spans().unwrap()[0].resource
    );
    assert_eq!(names(front), ["span-1-0", "span-1-1", "span-1-2"]);
    assert_eq!(names(t), ["span-1-3", "span-1-4"]);
}

#[test]
fn split_of_everything_takes_all() {
    let mut t = encoded(vec![resource("a", vec![span(1, 1)])]);
    let front = t.split_front(10).unwrap();
    assert_eq!((front.span_count(), t.span_count()), (1, 0));
}

#[test]
fn groups_by_trace_with_resources() {
    let t = Traces::new(vec![
        resource("a", vec![span(1, 1), span(2, 1), span(1, 2)]),
        resource("b", vec![span(2, 2)]),
    ]);
    let groups = t.group_by_trace().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[&[1u8; 16]].span_count(), 2);
    let mut two = groups[&[2u8; 16]].clone();
    assert_eq!(two.span_count(), 2);
    assert_eq!(
        two.resource_spans().unwrap().len(),
        2,
        "one entry per resource"
    );
}

#[test]
fn retain_drops_empty_containers_and_recounts() {
    let mut t = encoded(vec![
        resource("a", vec![span(1, 1), span(1, 2)]),
        resource("b", vec![span(2, 1)]),
    ]);
    t.retain_spans(|_, _, s| s.trace_id[0] == 1).unwrap();
    assert_eq!(t.span_count(), 2);
    assert_eq!(t.resource_spans().unwrap().len(), 1);
}

#[test]
fn decoded_encodes_like_prost() {
    let rs = vec![resource("a", vec![span(1, 1)])];
    let t = Traces::new(rs.clone());
    let expected = ExportTraceServiceRequest { resource_spans: rs }.encode_to_vec();
    assert_eq!(&t.to_encoded()[..], &expected[..]);
}

#[test]
fn malformed_bytes_are_refused_up_front() {
    let mut bytes = ExportTraceServiceRequest {
        resource_spans: vec![resource("a", vec![span(1, 1)])],
    }
    .encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    assert!(Traces::from_encoded(bytes.into()).is_err());
}

#[test]
fn concat_joins_encoded_parts_in_one_go() {
    let parts = vec![
        encoded(vec![resource("a", vec![span(1, 1)])]),
        Traces::default(),
        encoded(vec![resource("b", vec![span(2, 1), span(2, 2)])]),
        encoded(vec![resource("c", vec![span(3, 1)])]),
    ];
    let joined = Traces::concat(parts).unwrap();
    assert!(joined.is_encoded());
    assert_eq!((joined.span_count(), joined.resource_count()), (4, 3));
    assert_eq!(
        names(joined),
        ["span-1-1", "span-2-1", "span-2-2", "span-3-1"]
    );
}

#[test]
fn append_onto_empty_takes_the_other_as_is() {
    let mut t = Traces::default();
    t.append(encoded(vec![resource("a", vec![span(1, 1)])]))
        .unwrap();
    assert!(
        t.is_encoded(),
        "no decode when the receiving batch is empty"
    );
    assert_eq!(t.span_count(), 1);
}

#[test]
fn resource_count_without_decoding() {
    let t = encoded(vec![
        resource("a", vec![span(1, 1)]),
        resource("b", vec![]),
        resource("c", vec![span(3, 1)]),
    ]);
    assert_eq!(t.resource_count(), 3);
    assert!(t.is_encoded());
}

#[test]
fn split_across_resources_and_scopes_keeps_order() {
    let mut two_scopes = resource("b", vec![span(2, 1), span(2, 2)]);
    two_scopes.scope_spans.push(ScopeSpans {
        scope: None,
        spans: vec![span(2, 3), span(2, 4)],
        schema_url: String::new(),
    });
    let mut t = Traces::new(vec![resource("a", vec![span(1, 1)]), two_scopes]);
    let front = t.split_front(4).unwrap();
    assert_eq!((front.span_count(), t.span_count()), (4, 1));
    assert_eq!(
        names(front),
        ["span-1-1", "span-2-1", "span-2-2", "span-2-3"]
    );
    assert_eq!(names(t), ["span-2-4"]);
}
