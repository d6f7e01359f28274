//! Config of the `otlp` and `otlp_http` exporters: the OpenTelemetry Collector's
//! `otlpexporter` and `otlphttpexporter` keys, with the same defaults.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;
use teletrace_core::config::duration;
use teletrace_core::exporter_helper::{ExporterHelperSettings, QueueSettings, RetrySettings};
use teletrace_core::tls::TlsClientSettings;
use teletrace_core::ComponentConfig;

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (the collector's default).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// No compression (`none`, or an empty string).
    None,
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" | "" => Ok(Compression::None),
            "snappy" | "zlib" | "deflate" | "lz4" | "x-snappy-framed" => {
                Err(serde::de::Error::custom(format!(
                    "compression {text:?} is not supported by Teletrace; use gzip, zstd or none"
                )))
            }
            _ => Err(serde::de::Error::custom(format!(
                "unknown compression {text:?}; expected gzip, zstd or none"
            ))),
        }
    }
}

/// `compression_params`: confighttp's advanced compression options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionParams {
    /// Compression level: -1 (or 0, unset) for the algorithm's default (gzip 6, zstd 3),
    /// 1..=9 for gzip, any zstd level.
    pub level: i32,
}

impl Default for CompressionParams {
    fn default() -> Self {
        CompressionParams {
            level: crate::otlp::compress::DEFAULT_LEVEL,
        }
    }
}

impl CompressionParams {
    /// Checks the level against the algorithm, as confighttp does.
    fn validate(&self, compression: Compression) -> Result<(), (String, String)> {
        let level = self.level;
        let ok = match compression {
            Compression::Gzip => level == -1 || (0..=9).contains(&level),
            Compression::Zstd | Compression::None => true,
        };
        if ok {
            return Ok(());
        }
        let detail = if level == -2 {
            " (HuffmanOnly, -2, is not supported by Teletrace)"
        } else {
            ""
        };
        Err((
            "compression_params::level".into(),
            format!("{level} is not a gzip level; use -1 (default) or 1..=9{detail}"),
        ))
    }
}

/// `otlp_http`'s payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf` (default).
    #[default]
    Proto,
    /// OTLP/JSON, `application/json`.
    Json,
}

/// `exporters::otlp` (alias `otlp_grpc`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpGrpcConfig {
    /// `host:port`, or `http://host:port` (plain text) / `https://host:port` (TLS).
    pub endpoint: String,
    /// Client TLS.
    pub tls: TlsClientSettings,
    /// `gzip` (default), `zstd` or `none`.
    pub compression: Compression,
    /// Metadata sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout (default 5s).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The sending queue.
    pub sending_queue: QueueSettings,
    /// Retry with backoff.
    pub retry_on_failure: RetrySettings,
}

impl Default for OtlpGrpcConfig {
    fn default() -> Self {
        OtlpGrpcConfig {
            endpoint: String::new(),
            tls: TlsClientSettings::default(),
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

impl OtlpGrpcConfig {
    /// The exporter helper's settings.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings {
            timeout: self.timeout,
            queue: self.sending_queue.clone(),
            retry: self.retry_on_failure.clone(),
        }
    }

    /// Where to connect and whether to use TLS: `(host, port, tls)`.
    pub fn target(&self) -> Result<GrpcTarget, String> {
        let endpoint = self.endpoint.trim();
        let (rest, tls) = if let Some(rest) = endpoint.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = endpoint.strip_prefix("https://") {
            (rest, true)
        } else if endpoint.contains("://") {
            return Err(format!(
                "unsupported scheme in {endpoint:?}; use host:port, http:// or https://"
            ));
        } else {
            (endpoint, !self.tls.insecure)
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!(
                "must be host:port without a path (gRPC has fixed paths), got {endpoint:?}"
            ));
        }
        let uri: http::Uri = format!("http://{authority}")
            .parse()
            .map_err(|e| format!("invalid endpoint {endpoint:?}: {e}"))?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host in {endpoint:?}"))?
            .to_string();
        let port = uri
            .port_u16()
            .ok_or_else(|| format!("no port in {endpoint:?} (e.g. collector:4317)"))?;
        Ok(GrpcTarget { host, port, tls })
    }
}

/// Where the gRPC exporter connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTarget {
    /// Host name or IP (IPv6 in brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS on.
    pub tls: bool,
}

impl GrpcTarget {
    /// The `http(s)://host:port` URI tonic's channel is made for.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// `exporters::otlp_http` (alias `otlphttp`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpConfig {
    /// Base URL (`http://` or `https://`); traces go to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// Full URL for traces, instead of `<endpoint>/v1/traces`.
    pub traces_endpoint: String,
    /// Accepted for compatibility; Teletrace exports traces only.
    pub metrics_endpoint: String,
    /// Accepted for compatibility; Teletrace exports traces only.
    pub logs_endpoint: String,
    /// `proto` (default) or `json`.
    pub encoding: Encoding,
    /// Client TLS (used for `https://` URLs).
    pub tls: TlsClientSettings,
    /// `gzip` (default), `zstd` or `none`.
    pub compression: Compression,
    /// Compression level (`compression_params::level`).
    pub compression_params: CompressionParams,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout (default 30s, as confighttp's).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The sending queue.
    pub sending_queue: QueueSettings,
    /// Retry with backoff.
    pub retry_on_failure: RetrySettings,
}

impl Default for OtlpHttpConfig {
    fn default() -> Self {
        OtlpHttpConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            encoding: Encoding::Proto,
            tls: TlsClientSettings::default(),
            compression: Compression::Gzip,
            compression_params: CompressionParams::default(),
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

impl OtlpHttpConfig {
    /// The exporter helper's settings.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings {
            timeout: self.timeout,
            queue: self.sending_queue.clone(),
            retry: self.retry_on_failure.clone(),
        }
    }

    /// The URL traces are posted to, and the key it comes from.
    pub fn traces_url(&self) -> Result<http::Uri, (&'static str, String)> {
        let (key, url) = if !self.traces_endpoint.trim().is_empty() {
            ("traces_endpoint", self.traces_endpoint.trim().to_string())
        } else {
            let base = self.endpoint.trim().trim_end_matches('/');
            ("endpoint", format!("{base}/v1/traces"))
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err((
                key,
                format!("must start with http:// or https://, got {url:?}"),
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| (key, format!("invalid URL {url:?}: {e}")))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err((key, format!("no host in {url:?}")));
        }
        Ok(uri)
    }
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (name, value) in headers {
        if http::HeaderName::try_from(name.as_str()).is_err() {
            return Err(("headers".into(), format!("invalid header name {name:?}")));
        }
        if http::HeaderValue::try_from(value.as_str()).is_err() {
            return Err((
                "headers".into(),
                format!("invalid value for header {name:?}"),
            ));
        }
    }
    Ok(())
}

fn check_timeout(timeout: Duration) -> Result<(), (String, String)> {
    if timeout.is_zero() {
        return Err(("timeout".into(), "must be greater than 0".into()));
    }
    Ok(())
}

impl ComponentConfig for OtlpGrpcConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.endpoint.trim().is_empty() {
            return Err((
                "endpoint".into(),
                "must be set (host:port of the OTLP/gRPC server)".into(),
            ));
        }
        self.target().map_err(|m| ("endpoint".into(), m))?;
        check_headers(&self.headers)?;
        check_timeout(self.timeout)
    }
}

impl ComponentConfig for OtlpHttpConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.endpoint.trim().is_empty() && self.traces_endpoint.trim().is_empty() {
            return Err((
                "endpoint".into(),
                "must be set (base URL of the OTLP/HTTP server), or traces_endpoint".into(),
            ));
        }
        self.traces_url().map_err(|(k, m)| (k.into(), m))?;
        self.compression_params.validate(self.compression)?;
        check_headers(&self.headers)?;
        check_timeout(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn grpc(yaml: &str) -> Result<OtlpGrpcConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<OtlpGrpcConfig>(&value).map_err(|e| e.to_string())
    }

    fn http(yaml: &str) -> Result<OtlpHttpConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<OtlpHttpConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn endpoint_is_required() {
        assert!(grpc("").unwrap_err().starts_with("endpoint: must be set"));
        assert!(http("").unwrap_err().starts_with("endpoint: must be set"));
    }

    #[test]
    fn grpc_defaults_match_the_collector() {
        let c = grpc("endpoint: collector:4317").unwrap();
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.sending_queue, QueueSettings::default());
        assert_eq!(
            c.target().unwrap(),
            GrpcTarget {
                host: "collector".into(),
                port: 4317,
                tls: true
            }
        );
    }

    #[test]
    fn grpc_scheme_and_insecure_decide_tls() {
        let t = |yaml: &str| grpc(yaml).unwrap().target().unwrap();
        assert!(!t("endpoint: http://a:1").tls);
        assert!(t("endpoint: https://a:1").tls);
        assert!(!t("endpoint: a:1\ntls: {insecure: true}").tls);
        assert_eq!(t("endpoint: '[::1]:4317'").host, "[::1]");
        let e = grpc("endpoint: a").unwrap_err();
        assert!(e.starts_with("endpoint: no port"), "{e}");
        let e = grpc("endpoint: unix:///tmp/s").unwrap_err();
        assert!(e.starts_with("endpoint: unsupported scheme"), "{e}");
        let e = grpc("endpoint: a:1/v1").unwrap_err();
        assert!(e.starts_with("endpoint: must be host:port"), "{e}");
    }

    #[test]
    fn http_urls() {
        let c = http("endpoint: https://collector:4318/").unwrap();
        assert_eq!(c.traces_url().unwrap(), "https://collector:4318/v1/traces");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.encoding, Encoding::Proto);
        let c = http("endpoint: http://a:1\ntraces_endpoint: http://b:2/custom").unwrap();
        assert_eq!(c.traces_url().unwrap(), "http://b:2/custom");
        let c = http("traces_endpoint: http://b:2/t\nencoding: json").unwrap();
        assert_eq!(c.encoding, Encoding::Json);
        let e = http("endpoint: collector:4318").unwrap_err();
        assert!(e.starts_with("endpoint: must start with http"), "{e}");
        let e = http("traces_endpoint: ftp://x/y").unwrap_err();
        assert!(e.starts_with("traces_endpoint: "), "{e}");
        let e = http("endpoint: http://a:1\nencoding: xml").unwrap_err();
        assert!(e.starts_with("encoding: "), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = grpc("endpoint: a:1\ncompression: snappy").unwrap_err();
        assert!(e.starts_with("compression: "), "{e}");
        let e = grpc("endpoint: a:1\nheaders: {'bad name': x}").unwrap_err();
        assert!(e.starts_with("headers: "), "{e}");
        let e = grpc("endpoint: a:1\ntls: {ca: x}").unwrap_err();
        assert!(e.starts_with("tls::ca: unknown field"), "{e}");
        let e = grpc("endpoint: a:1\ntimeout: 0s").unwrap_err();
        assert!(e.starts_with("timeout: "), "{e}");
        let e = http("endpoint: http://a:1\nsending_queue: {num_consumers: x}").unwrap_err();
        assert!(e.starts_with("sending_queue::num_consumers: "), "{e}");
        assert_eq!(
            grpc("endpoint: a:1\ncompression: none")
                .unwrap()
                .compression,
            Compression::None
        );
    }

    #[test]
    fn http_compression_params_as_confighttp() {
        let c = http("endpoint: http://a:1").unwrap();
        assert_eq!(c.compression_params.level, -1);
        let c = http("endpoint: http://a:1\ncompression_params: {level: 1}").unwrap();
        assert_eq!(c.compression_params.level, 1);
        let c = http("endpoint: http://a:1\ncompression: zstd\ncompression_params: {level: 11}")
            .unwrap();
        assert_eq!(c.compression_params.level, 11);
        let e = http("endpoint: http://a:1\ncompression_params: {level: 10}").unwrap_err();
        assert!(
            e.starts_with("compression_params::level: 10 is not a gzip level"),
            "{e}"
        );
        let e = http("endpoint: http://a:1\ncompression_params: {level: -2}").unwrap_err();
        assert!(e.contains("HuffmanOnly"), "{e}");
        let e = http("endpoint: http://a:1\ncompression_params: {lvl: 1}").unwrap_err();
        assert!(
            e.starts_with("compression_params::lvl: unknown field"),
            "{e}"
        );
        // configgrpc has no compression_params.
        let e = grpc("endpoint: a:1\ncompression_params: {level: 1}").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}
