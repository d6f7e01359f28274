//! The `otlp_http` exporter's sender: `POST` of the batch to the traces URL, in binary
//! protobuf (the encoded bytes as they are) or OTLP/JSON, through reqwest's pooled client
//! with a rustls config built by `teletrace_core::tls`.

use crate::otlp::compress::BodyCompressor;
use crate::otlp::config::{Compression, Encoding, OtlpHttpConfig};
use crate::otlp::status;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use teletrace_core::exporter_helper::Sender;
use teletrace_core::{ComponentError, ConsumeError, Lifecycle, Traces};

/// Sends one batch per `POST`.
pub struct HttpSender {
    id: String,
    client: reqwest::Client,
    url: reqwest::Url,
    encoding: Encoding,
    compressor: BodyCompressor,
    headers: HeaderMap,
}

impl HttpSender {
    /// Builds the sender and its connection pool.
    pub fn new(id: &str, config: &OtlpHttpConfig) -> Result<Self, ComponentError> {
        let uri = config
            .traces_url()
            .map_err(|(key, e)| ComponentError::new(format!("{key}: {e}")))?;
        let url = reqwest::Url::parse(&uri.to_string())
            .map_err(|e| ComponentError::new(format!("endpoint: {e}")))?;
        let tls = config
            .tls
            .client_config(&[b"http/1.1"])
            .map_err(|e| ComponentError::new(format!("tls::{e}")))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("teletrace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ComponentError::new(format!("building the HTTP client: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| ComponentError::new(format!("headers: invalid name {name:?}: {e}")))?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| {
                ComponentError::new(format!("headers: invalid value for {name:?}: {e}"))
            })?;
            headers.insert(name, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(match config.encoding {
                Encoding::Proto => "application/x-protobuf",
                Encoding::Json => "application/json",
            }),
        );
        match config.compression {
            Compression::Gzip => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Compression::Zstd => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
            }
            Compression::None => {}
        }
        Ok(HttpSender {
            id: id.to_string(),
            client,
            url,
            encoding: config.encoding,
            compressor: BodyCompressor::new(config.compression, config.compression_params.level),
            headers,
        })
    }

    fn body(&self, traces: Traces) -> Result<Bytes, ConsumeError> {
        let body = match self.encoding {
            Encoding::Proto => traces.to_encoded(),
            Encoding::Json => Bytes::from(teletrace_core::traces::json::request_to_vec(
                &traces.into_request()?.resource_spans,
            )),
        };
        self.compressor
            .compress(body)
            .map_err(|e| ConsumeError::permanent(format!("compressing the request: {e}")))
    }
}

#[async_trait]
impl Lifecycle for HttpSender {}

#[async_trait]
impl Sender for HttpSender {
    async fn send(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            // Nothing to send: no request, as the collector does.
            return Ok(());
        }
        let body = self.body(traces)?;
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ConsumeError::retryable(format!(
                    "OTLP/HTTP export to {} failed: {}",
                    self.url,
                    error_chain(&e)
                ))
            })?;
        let code = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = response.bytes().await.unwrap_or_default();
        if code.is_success() {
            let partial = if is_json {
                partial_success_from_json(&body)
            } else {
                ExportTraceServiceResponse::decode(body.as_ref())
                    .ok()
                    .and_then(|r| r.partial_success)
            };
            return status::from_partial_success(partial.as_ref(), &self.id);
        }
        Err(status::from_http(
            code.as_u16(),
            retry_after.as_deref(),
            &body,
        ))
    }
}

/// `partialSuccess` of an OTLP/JSON response (`rejectedSpans` may be a string or a number).
fn partial_success_from_json(body: &[u8]) -> Option<ExportTracePartialSuccess> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = value.get("partialSuccess")?;
    let rejected = match partial.get("rejectedSpans") {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    };
    Some(ExportTracePartialSuccess {
        rejected_spans: rejected,
        error_message: partial
            .get("errorMessage")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string(),
    })
}

/// An error with its causes, which is where reqwest says what actually failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_partial_success() {
        let p = partial_success_from_json(
            br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"old"}}"#,
        )
        .unwrap();
        assert_eq!((p.rejected_spans, p.error_message.as_str()), (2, "old"));
        let p = partial_success_from_json(br#"{"partialSuccess":{"rejectedSpans":3}}"#).unwrap();
        assert_eq!(p.rejected_spans, 3);
        assert!(partial_success_from_json(b"{}").is_none());
    }
}
