use super::*;
use crate::test_util::{attr, span};
use teletrace_core::proto::tonic::common::v1::any_value::Value;

fn props(yaml: &str) -> MatchProperties {
    serde_yaml::from_str(yaml).unwrap()
}

fn resource(service: Option<&str>) -> Resource {
    Resource {
        attributes: service
            .map(|s| vec![attr("service.name", Value::StringValue(s.into()))])
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn scope(name: &str, version: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.into(),
        version: version.into(),
        ..Default::default()
    }
}

fn matches(yaml: &str, r: &Resource, sc: &InstrumentationScope, s: &Span) -> bool {
    PropertiesMatcher::new(&props(yaml))
        .unwrap()
        .matches(r, sc, s)
}

#[test]
fn regexp_is_an_unanchored_search_and_strict_is_equality() {
    let s = span("GET /api/users", vec![], 1);
    let r = resource(Some("api"));
    let sc = scope("", "");
    assert!(matches(
        "{match_type: regexp, span_names: ['api']}",
        &r,
        &sc,
        &s
    ));
    assert!(!matches(
        "{match_type: regexp, span_names: ['^api']}",
        &r,
        &sc,
        &s
    ));
    assert!(!matches(
        "{match_type: strict, span_names: ['api']}",
        &r,
        &sc,
        &s
    ));
    assert!(matches(
        "{match_type: strict, span_names: ['x', 'GET /api/users']}",
        &r,
        &sc,
        &s
    ));
}

#[test]
fn services_use_a_placeholder_when_the_resource_has_none() {
    let s = span("a", vec![], 1);
    let sc = scope("", "");
    assert!(matches(
        "{match_type: strict, services: ['<nil-service-name>']}",
        &resource(None),
        &sc,
        &s
    ));
    assert!(!matches(
        "{match_type: strict, services: ['api']}",
        &resource(None),
        &sc,
        &s
    ));
    assert!(matches(
        "{match_type: strict, services: ['api']}",
        &resource(Some("api")),
        &sc,
        &s
    ));
}

#[test]
fn every_given_property_must_match() {
    let mut s = span(
        "a",
        vec![
            ("http.method", Value::StringValue("GET".into())),
            ("code", Value::IntValue(500)),
        ],
        1,
    );
    s.kind = 2;
    let r = resource(Some("api"));
    let sc = scope("io.opentelemetry.http", "1.2.0");
    let yaml = "{match_type: strict, services: [api], span_kinds: [SPAN_KIND_SERVER],
        attributes: [{key: http.method, value: GET}, {key: code}],
        libraries: [{name: io.opentelemetry.http, version: 1.2.0}]}";
    assert!(matches(yaml, &r, &sc, &s));
    assert!(!matches(&yaml.replace("SERVER", "CLIENT"), &r, &sc, &s));
    assert!(!matches(
        &yaml.replace("{key: code}", "{key: code, value: '500'}"),
        &r,
        &sc,
        &s
    ));
    assert!(matches(
        &yaml.replace("{key: code}", "{key: code, value: 500}"),
        &r,
        &sc,
        &s
    ));
    assert!(!matches(&yaml.replace("1.2.0}", "1.3.0}"), &r, &sc, &s));
    assert!(matches(&yaml.replace(", version: 1.2.0", ""), &r, &sc, &s));
    assert!(!matches(
        "{match_type: strict, attributes: [{key: absent}]}",
        &r,
        &sc,
        &s
    ));
}

#[test]
fn regexp_attribute_values_match_the_string_form() {
    let s = span(
        "a",
        vec![
            ("code", Value::IntValue(503)),
            ("ok", Value::BoolValue(true)),
        ],
        1,
    );
    let r = resource(Some("api"));
    let sc = scope("", "");
    assert!(matches(
        "{match_type: regexp, attributes: [{key: code, value: '^5..$'}]}",
        &r,
        &sc,
        &s
    ));
    assert!(matches(
        "{match_type: regexp, attributes: [{key: ok, value: 'true'}]}",
        &r,
        &sc,
        &s
    ));
    assert!(matches(
        "{match_type: regexp, resources: [{key: service.name, value: 'ap'}]}",
        &r,
        &sc,
        &s
    ));
    assert!(!matches(
        "{match_type: regexp, resources: [{key: service.name, value: 'web'}]}",
        &r,
        &sc,
        &s
    ));
}

#[test]
fn include_then_exclude() {
    let inc = props("{match_type: strict, span_names: [a, b]}");
    let exc = props("{match_type: strict, span_names: [b]}");
    let sel = SpanSelector::new(Some(&inc), Some(&exc)).unwrap();
    let r = resource(None);
    let sc = scope("", "");
    assert!(sel.selects(&r, &sc, &span("a", vec![], 1)));
    assert!(!sel.selects(&r, &sc, &span("b", vec![], 1)));
    assert!(!sel.selects(&r, &sc, &span("c", vec![], 1)));
    let only_exclude = SpanSelector::new(None, Some(&exc)).unwrap();
    assert!(only_exclude.selects(&r, &sc, &span("c", vec![], 1)));
    assert!(SpanSelector::new(None, None).unwrap().selects_all());
}

#[test]
fn kind_names_are_the_collectors() {
    assert_eq!(span_kind_name(2), "SPAN_KIND_SERVER");
    assert_eq!(span_kind_name(5), "SPAN_KIND_CONSUMER");
    assert_eq!(span_kind_name(42), "SPAN_KIND_UNSPECIFIED");
}
