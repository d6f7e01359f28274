//! The shipped `configs/redaction.yaml`, started in-process with its exporter swapped for
//! the test-only `capture` exporter: spans sent by the OpenTelemetry SDK with an
//! authorization header, a cookie, a user email and card numbers in a SQL statement reach
//! the exporter without any of those values, while their other attributes survive.

mod common;

use common::capture;
use opentelemetry::trace::{Span as _, Tracer, TracerProvider as _};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use teletrace_core::proto::tonic::common::v1::any_value;

const CONFIG: &str = include_str!("../configs/redaction.yaml");

const SECRETS: [&str; 10] = [
    "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0",
    "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "session=7f3c9a1e2b4d",
    "csrftoken=Zx81QpLm",
    "alice@example.com",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
    "6011 0009-9013 9424",
    "4012888888881881",
];

/// Card numbers as digits only: what must not appear however they were written.
const CARD_DIGITS: [&str; 5] = [
    "4111111111111111",
    "5500000000000004",
    "378282246310005",
    "6011000990139424",
    "4012888888881881",
];

fn overrides(name: &str) -> Vec<String> {
    [
        "receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0",
        "receivers::otlp::protocols::http::endpoint=127.0.0.1:0",
        "processors::batch::timeout=20ms",
        "service::telemetry::metrics::level=none",
        "service::pipelines::traces::exporters=[capture]",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("exporters::capture::name={name}")])
    .collect()
}

fn string_attr<'a>(
    span: &'a teletrace_core::proto::tonic::trace::v1::Span,
    key: &str,
) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_exporter() {
    let name = "redaction";
    let running = common::start_with(CONFIG, &overrides(name)).await;
    let endpoint = running.grpc_endpoint();
    tokio::task::spawn_blocking(move || {
        let provider = common::otlp::provider(common::otlp::Transport::Grpc, &endpoint, "payments");
        let tracer = provider.tracer("redaction-test");
        let mut span = tracer
            .span_builder("POST /pay")
            .with_attributes([
                // Semantic-convention header attributes are string arrays.
                KeyValue::new(
                    "http.request.header.authorization",
                    Value::Array(Array::String(vec![StringValue::from(SECRETS[0])])),
                ),
                KeyValue::new(
                    "http.request.header.cookie",
                    Value::Array(Array::String(vec![StringValue::from(SECRETS[2])])),
                ),
                KeyValue::new("http.response.header.set-cookie", SECRETS[3]),
                KeyValue::new("user.email", SECRETS[4]),
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/pay"),
            ])
            .start(&tracer);
        span.end();
        let mut span = tracer
            .span_builder("INSERT payments")
            .with_attributes([
                KeyValue::new("Authorization", SECRETS[1]),
                KeyValue::new("cookie", SECRETS[2]),
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new(
                    "db.statement",
                    format!(
                        "INSERT INTO payments (card) VALUES ('{}'), ('{}'), ('{}'), ('{}'), ('{}') -- id 42",
                        SECRETS[5], SECRETS[6], SECRETS[7], SECRETS[8], SECRETS[9]
                    ),
                ),
                KeyValue::new("user.email", SECRETS[4]),
            ])
            .start(&tracer);
        span.end();
        provider.force_flush().expect("flush");
        provider.shutdown().expect("sdk shutdown");
    })
    .await
    .unwrap();

    assert!(
        common::eventually(Duration::from_secs(10), || capture::count(name) == 2).await,
        "got {} spans",
        capture::count(name)
    );
    let spans = capture::spans(name);

    // Nothing secret anywhere in what the exporter got.
    let everything =
        serde_json::to_string(&spans.iter().map(|(_, s)| s).collect::<Vec<_>>()).unwrap();
    for secret in SECRETS.iter().chain(CARD_DIGITS.iter()) {
        assert!(
            !everything.contains(secret),
            "{secret:?} reached the exporter: {everything}"
        );
    }
    for key in ["authorization", "cookie", "set-cookie"] {
        assert!(
            spans.iter().all(|(_, s)| s
                .attributes
                .iter()
                .all(|kv| !kv.key.to_lowercase().ends_with(key))),
            "an attribute named like {key:?} survived"
        );
    }

    // The rest survives, and the hash and mask are what the config says.
    let email_hash = hex::encode(Sha256::digest(SECRETS[4].as_bytes()));
    let pay = &spans.iter().find(|(_, s)| s.name == "POST /pay").unwrap().1;
    assert_eq!(string_attr(pay, "http.request.method"), Some("POST"));
    assert_eq!(string_attr(pay, "http.route"), Some("/pay"));
    assert_eq!(string_attr(pay, "user.email"), Some(email_hash.as_str()));
    let insert = &spans
        .iter()
        .find(|(_, s)| s.name == "INSERT payments")
        .unwrap()
        .1;
    assert_eq!(string_attr(insert, "db.system"), Some("postgresql"));
    assert_eq!(string_attr(insert, "user.email"), Some(email_hash.as_str()));
    assert_eq!(
        string_attr(insert, "db.statement"),
        Some("INSERT INTO payments (card) VALUES ('****'), ('****'), ('****'), ('****'), ('****') -- id 42")
    );
    assert!(spans.iter().all(|(service, _)| service == "payments"));
    running.stop().await;
}

#[test]
fn the_shipped_config_resolves_unchanged() {
    common::link_all();
    let raw = teletrace_core::config::load_merged(
        &[teletrace_core::config::ConfigSource::Embedded {
            name: "redaction.yaml".into(),
            text: CONFIG.into(),
        }],
        &[],
        &|_| None,
    )
    .unwrap();
    teletrace_core::config::resolve(&raw).unwrap_or_else(|e| panic!("{e}"));
}
