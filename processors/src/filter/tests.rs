use super::*;
use crate::test_util::{span, traces_of, Sink};
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;

fn parse(yaml: &str) -> Result<FilterConfig, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    parse_typed_config::<FilterConfig>(&value).map_err(|e| e.to_string())
}

fn processor(yaml: &str) -> (FilterProcessor, Arc<Sink>, Metrics) {
    let sink = Arc::new(Sink::default());
    let metrics = Metrics::new();
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    let p = FilterProcessor::new("filter/test", &config, &metrics, sink.clone()).unwrap();
    (p, sink, metrics)
}

fn batch() -> Traces {
    let mut health = span("GET /health", vec![], 1_000);
    health.kind = 2;
    let slow = span(
        "checkout",
        vec![("http.response.status_code", Value::IntValue(200))],
        3_000_000_000,
    );
    let fast = span(
        "checkout",
        vec![("http.response.status_code", Value::IntValue(500))],
        1_000,
    );
    traces_of("shop", vec![health, slow, fast])
}

#[tokio::test]
async fn drops_spans_matching_any_condition_and_counts_them() {
    let (p, sink, metrics) = processor(
        r#"
traces:
  span:
    - 'IsMatch(name, "health")'
    - 'end_time - start_time > Duration("1s")'
"#,
    );
    p.consume(batch()).await.unwrap();
    let spans = sink.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].end_time_unix_nano - spans[0].start_time_unix_nano,
        1_000
    );
    assert_eq!(metrics.counter_total(METRIC_SPANS_FILTERED), 2);
    assert!(metrics
        .render()
        .contains("otelcol_processor_filter_spans_filtered{processor=\"filter/test\"} 2"));
}

#[tokio::test]
async fn a_batch_with_every_span_dropped_is_not_sent_on() {
    let (p, sink, metrics) =
        processor("traces: {span: ['resource.attributes[\"service.name\"] == \"shop\"']}");
    p.consume(batch()).await.unwrap();
    assert!(sink.batches.lock().unwrap().is_empty());
    assert_eq!(metrics.counter_total(METRIC_SPANS_FILTERED), 3);
}

#[tokio::test]
async fn no_conditions_pass_batches_through_undecoded() {
    let (p, sink, _) = processor("");
    let encoded = Traces::from_encoded(batch().to_encoded()).unwrap();
    p.consume(encoded).await.unwrap();
    let batches = sink.batches.lock().unwrap();
    assert_eq!(batches.len(), 1);
    assert!(batches[0].is_encoded());
}

#[tokio::test]
async fn error_mode_propagate_refuses_the_batch_and_ignore_keeps_going() {
    let conditions = "traces: {span: ['attributes[\"http.response.status_code\"] + \"x\" == 1', 'name == \"checkout\"']}";
    let (p, sink, _) = processor(conditions);
    let e = p.consume(batch()).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message().contains("traces.span[0]"), "{e}");
    assert!(sink.batches.lock().unwrap().is_empty());

    let (p, sink, metrics) = processor(&format!("error_mode: ignore\n{conditions}"));
    p.consume(batch()).await.unwrap();
    assert_eq!(
        sink.spans().len(),
        1,
        "the erroring condition counts as false"
    );
    assert_eq!(metrics.counter_total(METRIC_SPANS_FILTERED), 2);
}

#[tokio::test]
async fn legacy_include_exclude_keeps_included_and_drops_excluded() {
    let (p, sink, _) = processor(
        "spans:\n  include: {match_type: strict, services: [shop]}\n  exclude: {match_type: regexp, span_names: ['health']}\n",
    );
    p.consume(batch()).await.unwrap();
    let names: Vec<String> = sink.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["checkout", "checkout"]);
}

#[test]
fn config_errors_show_the_condition_and_column() {
    let e = parse("traces:\n  span:\n    - 'name == \"a\"'\n    - 'kind == SPAN_KIND_SERVR'\n")
        .unwrap_err();
    assert_eq!(
        e,
        "traces::span[1]: at column 9: unknown enum `SPAN_KIND_SERVR`: supported are SPAN_KIND_* and STATUS_CODE_*"
    );
    let e = parse("traces: {spanevent: ['name == \"a\"']}").unwrap_err();
    assert!(e.starts_with("traces::spanevent: "), "{e}");
    let e = parse("error_mode: loud").unwrap_err();
    assert!(e.starts_with("error_mode: "), "{e}");
    let e = parse("traces: {span: ['name == \"a\"']}\nspans: {include: {match_type: strict, span_names: [a]}}").unwrap_err();
    assert!(e.starts_with("spans: "), "{e}");
    let e = parse("spans: {exclude: {match_type: regexp, span_names: ['(']}}").unwrap_err();
    assert!(e.starts_with("spans::exclude::span_names: "), "{e}");
    assert_eq!(parse("").unwrap().error_mode, ErrorMode::Propagate);
    assert!(parse("error_mode: silent\nlogs: {log_record: []}").is_ok());
}

#[test]
fn the_service_config_error_names_the_component_condition_and_column() {
    let yaml = r#"
processors:
  filter:
    traces:
      span:
        - 'name == "a"'
        - 'kind == SPAN_KIND_SERVR'
service:
  pipelines:
    traces:
      processors: [filter]
"#;
    let raw = teletrace_core::config::load_merged(
        &[teletrace_core::config::ConfigSource::Embedded {
            name: "test".into(),
            text: yaml.into(),
        }],
        &[],
        &|_| None,
    )
    .unwrap();
    let e = teletrace_core::config::resolve(&raw)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(
            "processors::filter::traces::span[1]: at column 9: unknown enum `SPAN_KIND_SERVR`"
        ),
        "{e}"
    );
}
