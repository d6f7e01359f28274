use super::*;
use crate::test_util::{attr, span};
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::{Span, Status};

fn test_span() -> (Resource, InstrumentationScope, Span) {
    let mut s = span(
        "GET /health",
        vec![
            ("http.route", Value::StringValue("/health".into())),
            ("http.response.status_code", Value::IntValue(503)),
            ("ratio", Value::DoubleValue(0.25)),
            ("cache.hit", Value::BoolValue(true)),
            (
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("a".into())),
                    }],
                }),
            ),
            (
                "nested",
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "inner".into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(7)),
                        }),
                        ..Default::default()
                    }],
                }),
            ),
        ],
        2_500_000_000,
    );
    s.kind = 2;
    s.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let resource = Resource {
        attributes: vec![attr("service.name", Value::StringValue("checkout".into()))],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "io.otel.http".into(),
        version: "1.0".into(),
        ..Default::default()
    };
    (resource, scope, s)
}

fn eval(text: &str) -> Result<bool, String> {
    let condition = parse_condition(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let (resource, scope, span) = test_span();
    evaluate(
        &condition,
        SpanContext {
            resource: &resource,
            scope: &scope,
            span: &span,
        },
    )
}

fn yes(text: &str) {
    assert_eq!(eval(text), Ok(true), "{text}");
}

fn no(text: &str) {
    assert_eq!(eval(text), Ok(false), "{text}");
}

#[test]
fn comparisons_on_span_fields() {
    yes(r#"name == "GET /health""#);
    no(r#"name != "GET /health""#);
    yes("kind == SPAN_KIND_SERVER");
    yes("kind == 2");
    no("kind == SPAN_KIND_CLIENT");
    yes(r#"kind.string == "Server""#);
    yes("status.code == STATUS_CODE_ERROR");
    yes(r#"status.message == "boom""#);
    yes(r#"attributes["http.route"] == "/health""#);
    yes(r#"attributes["http.response.status_code"] >= 500"#);
    yes(r#"attributes["http.response.status_code"] > 499.5"#);
    yes(r#"attributes["ratio"] < 1"#);
    yes(r#"attributes["cache.hit"] == true"#);
    yes(r#"attributes["missing"] == nil"#);
    no(r#"attributes["missing"] == "x""#);
    yes(r#"attributes["missing"] != "x""#);
    yes(r#"attributes["nested"]["inner"] == 7"#);
    yes(r#"attributes["tags"][0] == "a""#);
    yes(r#"resource.attributes["service.name"] == "checkout""#);
    yes(r#"instrumentation_scope.name == "io.otel.http""#);
    yes(r#"span.name == "GET /health""#);
    yes(r#"trace_id.string == "01010101010101010101010101010101""#);
}

#[test]
fn types_never_mix_in_equality() {
    no(r#"attributes["http.response.status_code"] == "503""#);
    yes(r#"attributes["http.response.status_code"] != "503""#);
    no(r#"attributes["http.route"] > 5"#);
    no(r#"attributes["cache.hit"] > false"#);
    yes(r#""b" > "a""#);
}

#[test]
fn durations_and_times() {
    yes(r#"end_time - start_time > Duration("2s")"#);
    no(r#"end_time - start_time > Duration("3s")"#);
    yes("end_time_unix_nano - start_time_unix_nano > 1000000000");
    yes("(end_time_unix_nano - start_time_unix_nano) / 1000000 == 2500");
    yes(r#"end_time - start_time == Duration("2.5s")"#);
}

#[test]
fn boolean_logic_and_is_match() {
    yes(r#"IsMatch(name, "health")"#);
    no(r#"IsMatch(name, "^health")"#);
    yes(r#"IsMatch(attributes["http.response.status_code"], "^5\\d\\d$")"#);
    no(r#"IsMatch(attributes["missing"], ".*")"#);
    yes(r#"kind == SPAN_KIND_SERVER and IsMatch(name, "health")"#);
    yes(r#"kind == SPAN_KIND_CLIENT or name == "GET /health""#);
    no(r#"not IsMatch(name, "health")"#);
    yes(r#"not (kind == SPAN_KIND_CLIENT or status.code == STATUS_CODE_OK)"#);
    yes(r#"IsMatch(name, "x") == false"#);
    // and binds tighter than or
    yes(r#"name == "GET /health" or name == "x" and kind == 99"#);
    no(r#"(name == "GET /health" or name == "x") and kind == 99"#);
    yes("true");
}

#[test]
fn runtime_errors_are_reported() {
    assert!(eval(r#"attributes["http.route"] + 1 > 2"#)
        .unwrap_err()
        .contains("cannot apply `+` to string and int"));
    assert!(eval(r#"attributes["http.route"]["x"] == 1"#)
        .unwrap_err()
        .contains("does not support string indexing"));
    assert!(eval("start_time_unix_nano / 0 > 1")
        .unwrap_err()
        .contains("division by zero"));
    assert!(eval("1 + 1.5 > 1").is_err());
}

#[test]
fn parse_errors_point_at_the_column() {
    let cases = [
        ("name == ", 9, "expected a value"),
        (r#"name = "x""#, 6, "unexpected character"),
        (r#"nmae == "x""#, 1, "unknown path `nmae`"),
        ("name", 5, "expected a comparison operator"),
        (r#"name == "x" nor kind == 1"#, 13, "expected `and`, `or`"),
        (r#"IsMatch(name, "(")"#, 15, "invalid regexp"),
        (r#"IsMatch(name, name)"#, 15, "string literal pattern"),
        (r#"Foo(name) == 1"#, 1, "unknown function `Foo`"),
        (r#"kind == SPAN_KIND_SERVR"#, 9, "unknown enum"),
        (
            r#"end_time - start_time > Duration("1 sec")"#,
            34,
            "invalid duration",
        ),
        (r#"name == "x"#, 9, "unterminated string"),
        (r#"(name == "x""#, 13, "expected `)`"),
        (r#"attributes[name] == 1"#, 12, "inside `[]`"),
    ];
    for (text, column, message) in cases {
        let e = parse_condition(text).expect_err(text);
        assert_eq!(e.column, column, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
    }
}
