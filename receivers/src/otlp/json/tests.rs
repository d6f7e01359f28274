use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// The OTLP specification's example (opentelemetry-proto, `examples/trace.json`).
pub(crate) const SPEC_EXAMPLE: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          {
            "key": "service.name",
            "value": {
              "stringValue": "my.service"
            }
          }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              {
                "key": "my.scope.attribute",
                "value": {
                  "stringValue": "some scope attribute"
                }
              }
            ]
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": 1544712660000000000,
              "endTimeUnixNano": 1544712661000000000,
              "kind": 2,
              "attributes": [
                {
                  "key": "my.span.attr",
                  "value": {
                    "stringValue": "some value"
                  }
                }
              ]
            }
          ]
        }
      ]
    }
  ]
}"#;

fn hex(s: &str) -> Vec<u8> {
    primitives::decode_hex_id(s, s.len() / 2).unwrap()
}

fn one_span(json: &str) -> Result<opentelemetry_proto::tonic::trace::v1::Span, JsonError> {
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{json}]}}]}}]}}"#);
    let mut request = decode_request(body.as_bytes())?;
    Ok(request
        .resource_spans
        .remove(0)
        .scope_spans
        .remove(0)
        .spans
        .remove(0))
}

fn attr(json_value: &str) -> Result<Option<any_value::Value>, JsonError> {
    let span = one_span(&format!(
        r#"{{"attributes":[{{"key":"k","value":{json_value}}}]}}"#
    ))?;
    Ok(span.attributes[0]
        .value
        .as_ref()
        .and_then(|v| v.value.clone()))
}

#[test]
fn decodes_the_spec_example() {
    let request = decode_request(SPEC_EXAMPLE.as_bytes()).unwrap();
    let rs = &request.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(
        resource.attributes[0].value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("my.service".into()))
    );
    let ss = &rs.scope_spans[0];
    let scope = ss.scope.as_ref().unwrap();
    assert_eq!(scope.name, "my.library");
    assert_eq!(scope.version, "1.0.0");
    assert_eq!(scope.attributes[0].key, "my.scope.attribute");
    let span = &ss.spans[0];
    assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span.span_id, hex("eee19b7ec3c1b174"));
    assert_eq!(span.parent_span_id, hex("eee19b7ec3c1b173"));
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.attributes[0].key, "my.span.attr");
    assert_eq!(
        span.attributes[0].value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("some value".into()))
    );
}

#[test]
fn int64_as_string_or_number() {
    let a = one_span(
        r#"{"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000}"#,
    )
    .unwrap();
    assert_eq!(a.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(a.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(
        attr(r#"{"intValue":"-42"}"#).unwrap(),
        Some(any_value::Value::IntValue(-42))
    );
    assert_eq!(
        attr(r#"{"intValue":42}"#).unwrap(),
        Some(any_value::Value::IntValue(42))
    );
    assert_eq!(
        attr(r#"{"intValue":"9223372036854775807"}"#).unwrap(),
        Some(any_value::Value::IntValue(i64::MAX))
    );
    assert!(attr(r#"{"intValue":"9223372036854775808"}"#).is_err());
    let e = one_span(r#"{"startTimeUnixNano":"soon"}"#).unwrap_err();
    assert!(e.0.contains("spans[0].startTimeUnixNano"), "{e}");
}

#[test]
fn every_any_value_kind() {
    assert_eq!(
        attr(r#"{"boolValue":true}"#).unwrap(),
        Some(any_value::Value::BoolValue(true))
    );
    assert_eq!(
        attr(r#"{"doubleValue":1.5}"#).unwrap(),
        Some(any_value::Value::DoubleValue(1.5))
    );
    assert_eq!(
        attr(r#"{"doubleValue":"Infinity"}"#).unwrap(),
        Some(any_value::Value::DoubleValue(f64::INFINITY))
    );
    assert_eq!(
        attr(r#"{"bytesValue":"aGk="}"#).unwrap(),
        Some(any_value::Value::BytesValue(b"hi".to_vec()))
    );
    let Some(any_value::Value::ArrayValue(a)) =
        attr(r#"{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"1"}]}}"#).unwrap()
    else {
        panic!("array expected")
    };
    assert_eq!(a.values.len(), 2);
    let Some(any_value::Value::KvlistValue(kv)) =
        attr(r#"{"kvlistValue":{"values":[{"key":"a","value":{"boolValue":false}}]}}"#).unwrap()
    else {
        panic!("kvlist expected")
    };
    assert_eq!(kv.values[0].key, "a");
    // Empty containers and an empty AnyValue are valid.
    assert_eq!(
        attr(r#"{"arrayValue":{}}"#).unwrap(),
        Some(any_value::Value::ArrayValue(Default::default()))
    );
    assert_eq!(attr(r#"{}"#).unwrap(), None);
    assert_eq!(attr(r#"{"stringValue":null}"#).unwrap(), None);
}

#[test]
fn unknown_fields_and_nulls_are_ignored() {
    let span = one_span(
        r#"{"traceId":"5B8EFFF798038103D269B633813FC60C","futureField":{"nested":[1,2,{"x":null}]},
            "attributes":null,"events":[{"name":"e","timeUnixNano":"5","unknown":1}],"status":{"code":2,"message":"boom","extra":true},
            "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}"#,
    )
    .unwrap();
    assert_eq!(span.trace_id.len(), 16);
    assert!(span.attributes.is_empty());
    assert_eq!(span.events[0].time_unix_nano, 5);
    assert_eq!(span.status.as_ref().unwrap().code, 2);
    assert_eq!(span.links[0].span_id.len(), 8);
    let request = decode_request(br#"{"resourceSpans":[{"unknown":[]}],"other":1}"#).unwrap();
    assert_eq!(request.resource_spans.len(), 1);
}

#[test]
fn snake_case_and_enum_names_as_the_collector_accepts() {
    let span = one_span(r#"{"trace_id":"5b8efff798038103d269b633813fc60c","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":7}"#)
        .unwrap();
    assert_eq!(span.trace_id.len(), 16);
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(span.start_time_unix_nano, 7);
}

#[test]
fn ids_are_checked() {
    let e = one_span(r#"{"traceId":"5B8EFFF798038103"}"#).unwrap_err();
    assert!(e.0.contains("spans[0].traceId"), "{e}");
    assert!(
        e.0.contains("must be 16 bytes (32 hex digits), got 16 hex digits"),
        "{e}"
    );
    let e = one_span(r#"{"spanId":"XYZ19B7EC3C1B174"}"#).unwrap_err();
    assert!(e.0.contains("spans[0].spanId"), "{e}");
    assert!(e.0.contains("hex"), "{e}");
    let e = one_span(r#"{"parentSpanId":"EEE19B7EC3C1B17"}"#).unwrap_err();
    assert!(e.0.contains("spans[0].parentSpanId"), "{e}");
    let e = one_span(r#"{"links":[{"traceId":"00"}]}"#).unwrap_err();
    assert!(e.0.contains("links[0].traceId"), "{e}");
    // Base64 (the plain proto3 mapping) is not hex.
    let e = one_span(r#"{"traceId":"W47/95gDgQPSabYzgT/GDA=="}"#).unwrap_err();
    assert!(e.0.contains("traceId"), "{e}");
    // Empty means absent.
    let span = one_span(r#"{"traceId":"","parentSpanId":""}"#).unwrap();
    assert!(span.trace_id.is_empty() && span.parent_span_id.is_empty());
}

#[test]
fn malformed_json_is_refused() {
    for bad in [
        &b"{"[..],
        b"",
        b"[]",
        b"{\"resourceSpans\":{}}",
        b"{\"resourceSpans\":[]} trailing",
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":5}]}]}]}",
        b"\xff\xfe",
    ] {
        assert!(
            decode_request(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn deep_nesting_is_refused() {
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..35 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let e = attr(&value).unwrap_err();
    assert!(e.0.contains("nested deeper"), "{e}");
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..20 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    assert!(attr(&value).is_ok());
}

#[test]
fn depth_matches_the_protobuf_scanner() {
    use prost::Message;
    // Find the deepest nesting the JSON path accepts and check that the protobuf scanner
    // accepts its encoding, and that one level more is refused by both.
    let nested = |levels: usize| {
        let mut value = r#"{"stringValue":"leaf"}"#.to_string();
        for _ in 0..levels {
            value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
        }
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"events":[{{"attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}]}}"#
        )
    };
    let deepest = (0..64)
        .take_while(|&n| decode_request(nested(n).as_bytes()).is_ok())
        .last()
        .unwrap();
    let ok = decode_request(nested(deepest).as_bytes()).unwrap();
    assert!(teletrace_core::traces::wire::scan_export_request(&ok.encode_to_vec()).is_ok());
    assert!(decode_request(nested(deepest + 1).as_bytes()).is_err());
}

#[test]
fn encodes_responses() {
    assert_eq!(
        encode_response(&ExportTraceServiceResponse::default()),
        b"{}"
    );
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "too old".into(),
        }),
    };
    let v: serde_json::Value = serde_json::from_slice(&encode_response(&partial)).unwrap();
    assert_eq!(
        v,
        json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "too old"}})
    );
    let status = RpcStatus {
        code: 3,
        message: "bad".into(),
        details: vec![],
    };
    let v: serde_json::Value = serde_json::from_slice(&encode_status(&status)).unwrap();
    assert_eq!(v, json!({"code": 3, "message": "bad"}));
}
