use super::*;
use crate::test_util::{attr, int_attr, one_span_traces, string_of, Sink};
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::registry::parse_typed_config;

fn parse(yaml: &str) -> Result<AttributesConfig, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    parse_typed_config::<AttributesConfig>(&value).map_err(|e| e.to_string())
}

fn processor(yaml: &str) -> (AttributesProcessor, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    (
        AttributesProcessor::new(&config, sink.clone()).unwrap(),
        sink,
    )
}

async fn run(yaml: &str, attributes: Vec<(&str, Value)>) -> Vec<(String, Value)> {
    let (p, sink) = processor(yaml);
    p.consume(one_span_traces("svc", "op", attributes))
        .await
        .unwrap();
    sink.only_span_attributes()
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

#[tokio::test]
async fn insert_update_upsert_follow_the_collector() {
    let yaml = "actions:
  - {key: new, value: 1, action: insert}
  - {key: present, value: nope, action: insert}
  - {key: missing, value: x, action: update}
  - {key: other, value: updated, action: update}
  - {key: copied, from_attribute: present, action: upsert}
  - {key: ctx, from_context: tenant, action: upsert}
";
    let out = run(yaml, vec![("present", s("keep")), ("other", s("old"))]).await;
    assert_eq!(
        out,
        vec![
            ("present".into(), s("keep")),
            ("other".into(), s("updated")),
            ("new".into(), Value::IntValue(1)),
            ("copied".into(), s("keep")),
        ]
    );
}

#[tokio::test]
async fn delete_by_key_and_pattern() {
    let yaml = "actions:
  - {key: a, action: delete}
  - {pattern: '^http\\.request\\.header\\.', action: DELETE}
";
    let out = run(
        yaml,
        vec![
            ("a", s("1")),
            ("http.request.header.cookie", s("c")),
            ("http.request.method", s("GET")),
        ],
    )
    .await;
    assert_eq!(out, vec![("http.request.method".into(), s("GET"))]);
}

#[tokio::test]
async fn hash_is_hex_sha256_of_the_collector_bytes() {
    let yaml = "actions:
  - {key: email, action: hash}
  - {key: n, action: hash}
  - {key: b, action: hash}
";
    let out = run(
        yaml,
        vec![
            ("email", s("a@b.c")),
            ("n", Value::IntValue(1)),
            ("b", Value::BoolValue(true)),
        ],
    )
    .await;
    // sha256("a@b.c"), sha256(01 00 00 00 00 00 00 00), sha256(01)
    assert_eq!(
        out,
        vec![
            (
                "email".into(),
                s("d648b243a3e817eaa3309e00e183483f2867baadf522099f0c2121770536b25a")
            ),
            (
                "n".into(),
                s("7c9fa136d4413fa6173637e883b6998d32e1d675f88cddff9dcbcf331820f4b8")
            ),
            (
                "b".into(),
                s("4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a")
            ),
        ]
    );
}

#[tokio::test]
async fn extract_sets_named_groups_and_skips_non_strings() {
    let yaml = "actions:
  - key: http.url
    pattern: '^(?P<scheme>[a-z]+)://(?P<host>[^/]+)(?P<path>/[^?]*)?'
    action: extract
  - {key: n, pattern: '(?P<x>.)', action: extract}
";
    let out = run(
        yaml,
        vec![
            ("http.url", s("https://example.com/a/b?q=1")),
            ("n", Value::IntValue(5)),
        ],
    )
    .await;
    assert_eq!(string_of(&out, "scheme"), Some("https".into()));
    assert_eq!(string_of(&out, "host"), Some("example.com".into()));
    assert_eq!(string_of(&out, "path"), Some("/a/b".into()));
    assert!(out.iter().all(|(k, _)| k != "x"));
}

#[tokio::test]
async fn convert_between_int_double_string() {
    let yaml = "actions:
  - {key: a, converted_type: int, action: convert}
  - {key: b, converted_type: double, action: convert}
  - {key: c, converted_type: string, action: convert}
  - {key: d, converted_type: int, action: convert}
  - {key: e, converted_type: int, action: convert}
";
    let out = run(
        yaml,
        vec![
            ("a", s("42")),
            ("b", Value::IntValue(3)),
            ("c", Value::DoubleValue(1.5)),
            ("d", s("not a number")),
            ("e", Value::DoubleValue(-2.9)),
        ],
    )
    .await;
    assert_eq!(
        out,
        vec![
            ("a".into(), Value::IntValue(42)),
            ("b".into(), Value::DoubleValue(3.0)),
            ("c".into(), s("1.5")),
            ("d".into(), s("not a number")),
            ("e".into(), Value::IntValue(-2)),
        ]
    );
}

#[tokio::test]
async fn replace_pattern_masks_matches_in_string_values() {
    let yaml = r#"actions:
  - key: db.statement
    pattern: '\b(?:\d[ -]?){12,18}\d\b'
    value: "****"
    action: replace_pattern
"#;
    let out = run(
        yaml,
        vec![(
            "db.statement",
            s("SELECT * FROM t WHERE card='4111 1111-1111 1111' AND id=7"),
        )],
    )
    .await;
    assert_eq!(
        string_of(&out, "db.statement").unwrap(),
        "SELECT * FROM t WHERE card='****' AND id=7"
    );
}

#[tokio::test]
async fn include_and_exclude_select_spans() {
    let yaml = "include:
  match_type: regexp
  services: ['^checkout']
exclude:
  match_type: strict
  attributes: [{key: keep, value: true}]
actions:
  - {key: touched, value: yes, action: insert}
";
    let (p, sink) = processor(yaml);
    let mut traces = one_span_traces("checkout-api", "a", vec![]);
    traces
        .append(one_span_traces("other", "b", vec![]))
        .unwrap();
    traces
        .append(one_span_traces(
            "checkout-api",
            "c",
            vec![("keep", Value::BoolValue(true))],
        ))
        .unwrap();
    traces
        .append(one_span_traces(
            "checkout-api",
            "d",
            vec![("keep", Value::StringValue("true".into()))],
        ))
        .unwrap();
    p.consume(traces).await.unwrap();
    let touched: Vec<String> = sink
        .spans()
        .into_iter()
        .filter(|s| s.attributes.iter().any(|kv| kv.key == "touched"))
        .map(|s| s.name)
        .collect();
    // strict match is typed: the string "true" does not equal the boolean true.
    assert_eq!(touched, ["a", "d"]);
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        ("", "actions: "),
        ("actions: [{action: insert, value: 1}]", "actions[0]::key: "),
        ("actions: [{key: a, action: insert}]", "actions[0]: "),
        ("actions: [{key: a, action: insert, value: 1, from_attribute: b}]", "actions[0]: "),
        ("actions: [{key: a, action: insert, value: 1, pattern: x}]", "actions[0]::pattern: "),
        ("actions: [{action: delete}]", "actions[0]::key: "),
        ("actions: [{key: a, action: extract, pattern: '(x)'}]", "actions[0]::pattern: "),
        ("actions: [{key: a, action: extract, pattern: '(?P<a>x)(y)'}]", "actions[0]::pattern: "),
        ("actions: [{key: a, action: extract}]", "actions[0]::pattern: "),
        ("actions: [{key: a, action: hash, pattern: '('}]", "actions[0]::pattern: "),
        ("actions: [{key: a, action: convert}]", "actions[0]::converted_type: "),
        ("actions: [{key: a, action: convert, converted_type: bool}]", "actions[0]::converted_type: "),
        ("actions: [{key: a, action: rename}]", "actions[0]::action: "),
        ("actions: [{key: a, action: replace_pattern, pattern: x}]", "actions[0]::value: "),
        ("actions: [{key: a, action: delete, colour: red}]", "colour"),
        ("include: {match_type: strict}\nactions: [{key: a, action: delete}]", "include: "),
        (
            "include: {match_type: fuzzy, services: [a]}\nactions: [{key: a, action: delete}]",
            "include::match_type: ",
        ),
        (
            "exclude: {match_type: regexp, span_names: ['(']}\nactions: [{key: a, action: delete}]",
            "exclude::span_names: ",
        ),
        (
            "include: {match_type: regexp, attributes: [{key: a, value: 1}]}\nactions: [{key: a, action: delete}]",
            "include::attributes[0]::value: ",
        ),
        (
            "include: {match_type: strict, span_kinds: [server]}\nactions: [{key: a, action: delete}]",
            "include::span_kinds: ",
        ),
    ];
    for (yaml, prefix) in cases {
        let e = parse(yaml).expect_err(yaml);
        assert!(
            e.starts_with(prefix) || (prefix == "colour" && e.contains(prefix)),
            "{yaml}: {e}"
        );
    }
}

#[test]
fn hash_value_of_other_types_is_empty() {
    let mut v = attr("x", Value::BytesValue(vec![1])).value.unwrap();
    hash_value(&mut v);
    assert_eq!(v.value, Some(s("")));
    let _ = int_attr;
}
