//! OTLP/HTTP against the receiver: protobuf, JSON, compression, bad input, error mapping
//! and CORS.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::{ConsumeError, Lifecycle};
use teletrace_receivers::otlp::status::RpcStatus;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

async fn post(
    running: &Running,
    content_type: &str,
    encoding: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(running.http_url("/v1/traces"))
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.expect("request sent")
}

/// Reads an error response: its `google.rpc.Status`, in the request's encoding.
async fn status_of(response: reqwest::Response, encoding: &str) -> RpcStatus {
    assert_eq!(response.headers()["content-type"], encoding);
    let body = response.bytes().await.unwrap();
    if encoding == PROTOBUF {
        RpcStatus::decode(body).expect("protobuf google.rpc.Status")
    } else {
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON status");
        RpcStatus {
            code: v["code"].as_i64().expect("code") as i32,
            message: v["message"].as_str().expect("message").to_string(),
            details: vec![],
        }
    }
}

#[tokio::test]
async fn protobuf_export() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    let body = request(vec![span(1, 1), span(1, 2)]).encode_to_vec();
    let response = post(&running, PROTOBUF, None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer, ExportTraceServiceResponse::default());
    assert_eq!(recorder.spans(), vec![span(1, 1), span(1, 2)]);
    assert!(recorder.batches()[0].is_encoded());
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "http"),
        2
    );
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn compressed_protobuf_export() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    let body = request(vec![span(1, 1)]).encode_to_vec();
    let response = post(&running, PROTOBUF, Some("gzip"), gzip(&body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = post(
        &running,
        PROTOBUF,
        Some("zstd"),
        zstd::encode_all(&body[..], 3).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(recorder.span_count(), 2);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn json_export_of_the_spec_example() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    let response = post(
        &running,
        "application/json; charset=utf-8",
        None,
        SPEC_EXAMPLE,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], JSON);
    assert_eq!(response.text().await.unwrap(), "{}");

    let batches = recorder.batches();
    assert_eq!(batches.len(), 1);
    let rs = batches[0].clone().into_resource_spans().unwrap();
    let resource = rs[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(
        resource.attributes[0].value.as_ref().unwrap().value,
        Some(Value::StringValue("my.service".into()))
    );
    let scope = rs[0].scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("my.library", "1.0.0")
    );
    let span = &rs[0].scope_spans[0].spans[0];
    assert_eq!(
        span.trace_id,
        [
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c
        ]
    );
    assert_eq!(
        span.span_id,
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
    );
    assert_eq!(
        span.parent_span_id,
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73]
    );
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.attributes[0].key, "my.span.attr");
    assert_eq!(
        span.attributes[0].value.as_ref().unwrap().value,
        Some(Value::StringValue("some value".into()))
    );
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "http"),
        1
    );
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn json_int64_as_string_and_as_number() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"strings",
         "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
         "attributes":[{"key":"n","value":{"intValue":"-7"}}]},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","name":"numbers",
         "startTimeUnixNano":1544712660000000000,"endTimeUnixNano":1544712661000000000,
         "attributes":[{"key":"n","value":{"intValue":7}}]}
    ]}]}]}"#;
    let response = post(&running, JSON, Some("gzip"), gzip(body.as_bytes())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let spans = recorder.spans();
    assert_eq!(spans.len(), 2);
    for s in &spans {
        assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
    }
    assert_eq!(
        spans[0].attributes[0].value.as_ref().unwrap().value,
        Some(Value::IntValue(-7))
    );
    assert_eq!(
        spans[1].attributes[0].value.as_ref().unwrap().value,
        Some(Value::IntValue(7))
    );
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_answered_and_the_server_keeps_serving() {
    let recorder = Arc::new(Recorder::default());
    let running = start(
        &yaml("", "    max_request_body_size: 4096\n"),
        recorder.clone(),
    )
    .await;

    // Truncated protobuf.
    let mut truncated = request(vec![span(1, 1)]).encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let r = post(&running, PROTOBUF, None, truncated).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, PROTOBUF).await;
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid OTLP request"),
        "{}",
        status.message
    );

    // Trace ID of the wrong length, protobuf.
    let mut short = span(1, 1);
    short.trace_id = vec![1; 5];
    let r = post(
        &running,
        PROTOBUF,
        None,
        request(vec![short]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, PROTOBUF).await;
    assert!(
        status.message.contains("trace_id must be 16 bytes, got 5"),
        "{}",
        status.message
    );

    // Invalid JSON.
    let r = post(&running, JSON, None, "{\"resourceSpans\": [").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, JSON).await;
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid OTLP/JSON"),
        "{}",
        status.message
    );

    // Trace ID of the wrong length, JSON.
    let wrong_len = SPEC_EXAMPLE.replace("5B8EFFF798038103D269B633813FC60C", "5B8EFFF798038103");
    let r = post(&running, JSON, None, wrong_len).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, JSON).await;
    assert!(
        status
            .message
            .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId")
            && status.message.contains("16 bytes"),
        "{}",
        status.message
    );

    // Non-hex span ID, JSON.
    let non_hex = SPEC_EXAMPLE.replace("EEE19B7EC3C1B174", "EEE19B7EC3C1B17Z");
    let r = post(&running, JSON, None, non_hex).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, JSON).await;
    assert!(
        status.message.contains("spans[0].spanId") && status.message.contains("hex"),
        "{}",
        status.message
    );

    // Unknown content type.
    let r = post(&running, "text/plain", None, "hello").await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = reqwest::Client::new()
        .post(running.http_url("/v1/traces"))
        .body("no content type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Oversized body.
    let mut big = span(1, 1);
    big.name = "x".repeat(5000);
    let r = post(
        &running,
        PROTOBUF,
        None,
        request(vec![big.clone()]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let status = status_of(r, PROTOBUF).await;
    assert!(status.message.contains("too large"), "{}", status.message);

    // Small once compressed, oversized once decompressed.
    let compressed = gzip(&request(vec![big]).encode_to_vec());
    assert!(compressed.len() < 4096);
    let r = post(&running, PROTOBUF, Some("gzip"), compressed).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // gzip header, corrupt body.
    let mut corrupt = gzip(&request(vec![span(1, 1)]).encode_to_vec());
    let n = corrupt.len();
    for b in &mut corrupt[10..n - 8] {
        *b ^= 0x55;
    }
    let r = post(&running, PROTOBUF, Some("gzip"), corrupt).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = status_of(r, PROTOBUF).await;
    assert!(status.message.contains("gzip"), "{}", status.message);

    // Unsupported content encoding.
    let r = post(&running, PROTOBUF, Some("br"), vec![1, 2, 3]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Wrong method.
    let r = reqwest::get(running.http_url("/v1/traces")).await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");

    // Unknown path.
    let r = reqwest::Client::new()
        .post(running.http_url("/v1/metricz"))
        .header("content-type", PROTOBUF)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Nothing reached the pipeline or was counted; the server still serves.
    assert_eq!(recorder.span_count(), 0);
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "http"),
        0
    );
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "http"), 0);
    let r = post(
        &running,
        PROTOBUF,
        None,
        request(vec![span(2, 2)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(&running, JSON, None, SPEC_EXAMPLE).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(recorder.span_count(), 2);
    running.receiver.shutdown().await.unwrap();
}

async fn both_encodings_with(error: ConsumeError) -> Vec<reqwest::Response> {
    let running = start(&yaml("", ""), Arc::new(Failing(error))).await;
    let protobuf = post(
        &running,
        PROTOBUF,
        None,
        request(vec![span(1, 1), span(1, 2)]).encode_to_vec(),
    )
    .await;
    let json = post(&running, JSON, None, SPEC_EXAMPLE).await;
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "http")
            + running.counter("otelcol_receiver_refused_spans", "http"),
        3
    );
    running.receiver.shutdown().await.unwrap();
    vec![protobuf, json]
}

#[tokio::test]
async fn retryable_is_503() {
    let responses = both_encodings_with(ConsumeError::retryable("queue is full")).await;
    for (r, encoding) in responses.into_iter().zip([PROTOBUF, JSON]) {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get("retry-after").is_none());
        let status = status_of(r, encoding).await;
        assert_eq!(status.code, 14);
        assert_eq!(status.message, "queue is full");
    }
}

#[tokio::test]
async fn throttled_is_429_with_retry_after() {
    let responses = both_encodings_with(ConsumeError::throttled(
        "slow down",
        Duration::from_secs(30),
    ))
    .await;
    for (r, encoding) in responses.into_iter().zip([PROTOBUF, JSON]) {
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "30");
        let status = status_of(r, encoding).await;
        assert_eq!(status.message, "slow down");
    }
}

#[tokio::test]
async fn permanent_is_400() {
    let responses = both_encodings_with(ConsumeError::permanent("spans too old")).await;
    for (r, encoding) in responses.into_iter().zip([PROTOBUF, JSON]) {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let status = status_of(r, encoding).await;
        assert_eq!(status.code, 3);
        assert_eq!(status.message, "spans too old");
    }
}

#[tokio::test]
async fn partial_rejection_is_200_with_partial_success() {
    let mut responses = both_encodings_with(ConsumeError::PartiallyRejected {
        rejected_spans: 1,
        message: "1 span too old".into(),
    })
    .await;
    let json = responses.pop().unwrap();
    let protobuf = responses.pop().unwrap();
    assert_eq!(protobuf.status(), StatusCode::OK);
    let answer = ExportTraceServiceResponse::decode(protobuf.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(
        (partial.rejected_spans, partial.error_message.as_str()),
        (1, "1 span too old")
    );
    assert_eq!(json.status(), StatusCode::OK);
    let v: serde_json::Value = json.json().await.unwrap();
    assert_eq!(
        v,
        serde_json::json!({"partialSuccess": {"rejectedSpans": "1", "errorMessage": "1 span too old"}})
    );
}

#[tokio::test]
async fn cors_when_configured() {
    let running = start(
        &yaml(
            "",
            "    cors:\n      allowed_origins: [\"https://*.example.com\"]\n      max_age: 7200\n",
        ),
        Arc::new(Recorder::default()),
    )
    .await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, running.http_url("/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(h["access-control-allow-headers"], "content-type");
    assert_eq!(h["access-control-max-age"], "7200");

    let refused = client
        .request(reqwest::Method::OPTIONS, running.http_url("/v1/traces"))
        .header("origin", "https://evil.org")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let actual = client
        .post(running.http_url("/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("content-type", JSON)
        .body(SPEC_EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), StatusCode::OK);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_cors_headers_without_allowed_origins() {
    let running = start(&yaml("", ""), Arc::new(Recorder::default())).await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, running.http_url("/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
    let actual = client
        .post(running.http_url("/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("content-type", JSON)
        .body(SPEC_EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), StatusCode::OK);
    assert!(actual
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn custom_path_and_response_headers() {
    let running = start(
        &yaml(
            "",
            "    traces_url_path: custom/traces\n    response_headers:\n      X-Served-By: teletrace\n",
        ),
        Arc::new(Recorder::default()),
    )
    .await;
    let r = reqwest::Client::new()
        .post(running.http_url("/custom/traces"))
        .header("content-type", JSON)
        .body(SPEC_EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-served-by"], "teletrace");
    let r = post(&running, JSON, None, SPEC_EXAMPLE).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    running.receiver.shutdown().await.unwrap();
}
