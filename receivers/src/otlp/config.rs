//! The `otlp` receiver's config: the OpenTelemetry Collector's `otlpreceiver` keys, with
//! the same defaults, so a collector config works unchanged.
//!
//! A protocol is enabled by naming it, even with an empty value (`grpc:`); a config that
//! names neither protocol is refused. Keys the collector has and Teletrace does not act on
//! yet are accepted and documented as such in the README; `auth` is refused with a clear
//! message until it is implemented.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use teletrace_core::config::{duration, present_or_default};
use teletrace_core::ComponentConfig;

/// Default gRPC endpoint, as in the collector.
pub const DEFAULT_GRPC_ENDPOINT: &str = "localhost:4317";
/// Default HTTP endpoint, as in the collector.
pub const DEFAULT_HTTP_ENDPOINT: &str = "localhost:4318";
/// Default gRPC message size limit, in MiB.
pub const DEFAULT_MAX_RECV_MSG_SIZE_MIB: u64 = 4;
/// Default HTTP request body limit, in bytes (20 MiB, as OTLP/HTTP recommends).
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 20 * 1024 * 1024;
/// Default URL path for traces.
pub const DEFAULT_TRACES_URL_PATH: &str = "/v1/traces";

/// `receivers::otlp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The protocols to serve; at least one must be named.
    #[serde(default)]
    pub protocols: Protocols,
}

/// `protocols`: each one is enabled by being present (even with an empty value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC.
    #[serde(default, deserialize_with = "present_or_default")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP (protobuf and JSON).
    #[serde(default, deserialize_with = "present_or_default")]
    pub http: Option<HttpConfig>,
}

/// `protocols::grpc`: the collector's `configgrpc.ServerConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address to listen on, `host:port`.
    pub endpoint: String,
    /// Network; only `tcp` is supported.
    pub transport: String,
    /// Largest request message accepted, in MiB (after decompression). 0 means the
    /// default, 4.
    pub max_recv_msg_size_mib: u64,
    /// Streams one HTTP/2 connection may have open at once; 0 means no limit.
    pub max_concurrent_streams: u32,
    /// Accepted for compatibility; has no effect.
    pub read_buffer_size: u64,
    /// Accepted for compatibility; has no effect.
    pub write_buffer_size: u64,
    /// HTTP/2 keepalive and connection age.
    pub keepalive: Option<KeepaliveConfig>,
    /// Accepted for compatibility; request metadata is not passed down the pipeline.
    pub include_metadata: bool,
    /// TLS (server side; `client_ca_file` makes it mutual).
    pub tls: Option<TlsServerConfig>,
    /// Authentication extension; not supported yet (setting it is a config error).
    pub auth: Option<serde_yaml::Value>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: DEFAULT_GRPC_ENDPOINT.into(),
            transport: "tcp".into(),
            max_recv_msg_size_mib: DEFAULT_MAX_RECV_MSG_SIZE_MIB,
            max_concurrent_streams: 0,
            read_buffer_size: 512 * 1024,
            write_buffer_size: 0,
            keepalive: None,
            include_metadata: false,
            tls: None,
            auth: None,
        }
    }
}

impl GrpcConfig {
    /// The message size limit in bytes.
    pub fn max_recv_msg_size(&self) -> usize {
        let mib = if self.max_recv_msg_size_mib == 0 {
            DEFAULT_MAX_RECV_MSG_SIZE_MIB
        } else {
            self.max_recv_msg_size_mib
        };
        usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

/// `protocols::grpc::keepalive`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    /// Server-side keepalive and connection age.
    pub server_parameters: Option<KeepaliveServerParameters>,
    /// Client ping policy; accepted for compatibility, not enforced.
    pub enforcement_policy: Option<KeepaliveEnforcementPolicy>,
}

/// `protocols::grpc::keepalive::server_parameters`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerParameters {
    /// Accepted for compatibility; idle connections are not closed by the server.
    #[serde(with = "duration::option")]
    pub max_connection_idle: Option<Duration>,
    /// Connections are gracefully closed after this age.
    #[serde(with = "duration::option")]
    pub max_connection_age: Option<Duration>,
    /// After `max_connection_age`, how long requests in flight may take before the
    /// connection is closed forcibly.
    #[serde(with = "duration::option")]
    pub max_connection_age_grace: Option<Duration>,
    /// Interval of HTTP/2 keepalive pings sent by the server.
    #[serde(with = "duration::option")]
    pub time: Option<Duration>,
    /// How long to wait for a ping's answer before closing the connection.
    #[serde(with = "duration::option")]
    pub timeout: Option<Duration>,
}

/// `protocols::grpc::keepalive::enforcement_policy` (accepted, not enforced).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveEnforcementPolicy {
    /// Minimum interval between client pings.
    #[serde(with = "duration::option")]
    pub min_time: Option<Duration>,
    /// Whether clients may ping without active streams.
    pub permit_without_stream: bool,
}

/// The collector's `configtls.ServerConfig`. `cert_file`, `key_file`, `client_ca_file` and
/// `min_version` are implemented; `ca_file` and `include_system_ca_certs_pool` are accepted
/// without effect (a server does not use them); the other keys are refused as unsupported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// CA certificate file, for verifying peers.
    pub ca_file: Option<String>,
    /// CA certificate, PEM inline.
    pub ca_pem: Option<String>,
    /// Also trust the system's CA pool.
    pub include_system_ca_certs_pool: Option<bool>,
    /// Server certificate file.
    pub cert_file: Option<String>,
    /// Server certificate, PEM inline.
    pub cert_pem: Option<String>,
    /// Server key file.
    pub key_file: Option<String>,
    /// Server key, PEM inline.
    pub key_pem: Option<String>,
    /// Lowest TLS version accepted (`"1.2"`, `"1.3"`).
    pub min_version: Option<String>,
    /// Highest TLS version accepted.
    pub max_version: Option<String>,
    /// Allowed cipher suites.
    pub cipher_suites: Option<Vec<String>>,
    /// Allowed curves.
    pub curve_preferences: Option<Vec<String>>,
    /// How often to reload certificates.
    #[serde(with = "duration::option")]
    pub reload_interval: Option<Duration>,
    /// CA for verifying client certificates (mutual TLS).
    pub client_ca_file: Option<String>,
    /// Reload `client_ca_file` when it changes.
    pub client_ca_file_reload: Option<bool>,
}

/// `protocols::http`: the collector's `confighttp.ServerConfig` plus the URL paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on, `host:port`.
    pub endpoint: String,
    /// Path that takes trace exports.
    pub traces_url_path: String,
    /// Accepted for compatibility; Teletrace takes traces only.
    pub metrics_url_path: String,
    /// Accepted for compatibility; Teletrace takes traces only.
    pub logs_url_path: String,
    /// Largest request body accepted, in bytes, before and after decompression. 0 means
    /// the default, 20 MiB.
    pub max_request_body_size: u64,
    /// Accepted for compatibility; request metadata is not passed down the pipeline.
    pub include_metadata: bool,
    /// Cross-origin requests from browsers.
    pub cors: Option<CorsConfig>,
    /// TLS (server side; `client_ca_file` makes it mutual).
    pub tls: Option<TlsServerConfig>,
    /// Authentication extension; not supported yet (setting it is a config error).
    pub auth: Option<serde_yaml::Value>,
    /// Headers added to every response.
    pub response_headers: BTreeMap<String, String>,
    /// Request `Content-Encoding`s accepted; empty means every supported one
    /// (`identity`, `gzip`, `zstd`, `zlib`, `deflate`).
    pub compression_algorithms: Vec<String>,
    /// Limit on reading a request's headers (HTTP/1).
    #[serde(with = "duration::option")]
    pub read_header_timeout: Option<Duration>,
    /// Accepted for compatibility; has no effect.
    #[serde(with = "duration::option")]
    pub read_timeout: Option<Duration>,
    /// Accepted for compatibility; has no effect.
    #[serde(with = "duration::option")]
    pub write_timeout: Option<Duration>,
    /// Accepted for compatibility; has no effect.
    #[serde(with = "duration::option")]
    pub idle_timeout: Option<Duration>,
    /// HTTP/1 keep-alive.
    pub keepalives_enabled: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: DEFAULT_HTTP_ENDPOINT.into(),
            traces_url_path: DEFAULT_TRACES_URL_PATH.into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            include_metadata: false,
            cors: None,
            tls: None,
            auth: None,
            response_headers: BTreeMap::new(),
            compression_algorithms: Vec::new(),
            read_header_timeout: None,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            keepalives_enabled: true,
        }
    }
}

impl HttpConfig {
    /// The body size limit in bytes.
    pub fn max_body_size(&self) -> usize {
        let n = if self.max_request_body_size == 0 {
            DEFAULT_MAX_REQUEST_BODY_SIZE
        } else {
            self.max_request_body_size
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The traces path with a leading slash (the collector adds one when missing).
    pub fn traces_path(&self) -> String {
        if self.traces_url_path.starts_with('/') {
            self.traces_url_path.clone()
        } else {
            format!("/{}", self.traces_url_path)
        }
    }
}

/// `protocols::http::cors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send requests: exact origins, `*`, or one `*` wildcard inside
    /// an origin (`https://*.example.com`). Empty turns CORS off.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed besides the defaults (`*` allows any).
    pub allowed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer; 0 sends no `Access-Control-Max-Age`.
    pub max_age: u64,
}

/// Content encodings the HTTP side can decode (the collector's names).
pub const SUPPORTED_ENCODINGS: &[&str] = &["", "identity", "gzip", "zstd", "zlib", "deflate"];

/// Encodings the collector knows but Teletrace does not decode; accepted in
/// `compression_algorithms` (requests using them get 400).
pub const UNSUPPORTED_ENCODINGS: &[&str] = &["snappy", "x-snappy-framed", "lz4"];

/// Checks `host:port` (host may be empty for all interfaces; IPv6 in brackets).
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let bad = || format!("must be host:port (e.g. localhost:4317), got {endpoint:?}");
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    port.parse::<u16>()
        .map_err(|_| format!("port must be 0..=65535, got {port:?} in {endpoint:?}"))?;
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address in {endpoint:?}"))?;
    } else if host.contains(':') || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(())
}

/// The address to bind for an endpoint: an empty host means every interface.
pub fn bind_address(endpoint: &str) -> String {
    match endpoint.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => endpoint.to_string(),
    }
}

type Invalid = (String, String);

impl TlsServerConfig {
    /// Checks the keys: a certificate and key are required, unsupported keys are refused.
    fn validate(&self, path: &str) -> Result<(), Invalid> {
        let unsupported = [
            ("ca_pem", self.ca_pem.is_some()),
            ("cert_pem", self.cert_pem.is_some()),
            ("key_pem", self.key_pem.is_some()),
            ("max_version", self.max_version.is_some()),
            ("cipher_suites", self.cipher_suites.is_some()),
            ("curve_preferences", self.curve_preferences.is_some()),
            ("reload_interval", self.reload_interval.is_some()),
            (
                "client_ca_file_reload",
                self.client_ca_file_reload == Some(true),
            ),
        ];
        if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(invalid(
                &format!("{path}.{key}"),
                "not supported by Teletrace (use cert_file, key_file, client_ca_file, min_version)",
            ));
        }
        for (key, value) in [("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                return Err(invalid(
                    &format!("{path}.{key}"),
                    "must be set: a TLS server needs cert_file and key_file",
                ));
            }
        }
        if let Some(v) = self.min_version.as_deref() {
            if !matches!(v.trim(), "" | "1.2" | "1.3") {
                return Err(invalid(
                    &format!("{path}.min_version"),
                    format!("{v:?} is not supported; use \"1.2\" (default) or \"1.3\""),
                ));
            }
        }
        Ok(())
    }

    /// The settings the rustls server config is built from.
    pub fn settings(&self) -> teletrace_core::tls::TlsServerSettings {
        let path = |v: &Option<String>| {
            v.as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(std::path::PathBuf::from)
        };
        teletrace_core::tls::TlsServerSettings {
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            client_ca_file: path(&self.client_ca_file),
            min_version: self.min_version.clone(),
        }
    }
}

/// The rustls configs of the two protocols, for those with a `tls` block.
#[derive(Clone, Default)]
pub(crate) struct ServerTls {
    pub grpc: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub http: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl OtlpConfig {
    /// Builds the TLS server configs (reads the certificate files); errors name the key.
    pub(crate) fn server_tls(&self) -> Result<ServerTls, teletrace_core::ComponentError> {
        let build = |tls: Option<&TlsServerConfig>, protocol: &str, alpn: &[&[u8]]| {
            tls.map(|tls| {
                tls.settings()
                    .server_config(alpn)
                    .map(std::sync::Arc::new)
                    .map_err(|e| {
                        teletrace_core::ComponentError::new(format!(
                            "protocols::{protocol}::tls::{e}"
                        ))
                    })
            })
            .transpose()
        };
        let grpc = self.protocols.grpc.as_ref().and_then(|g| g.tls.as_ref());
        let http = self.protocols.http.as_ref().and_then(|h| h.tls.as_ref());
        Ok(ServerTls {
            grpc: build(grpc, "grpc", &[b"h2"])?,
            http: build(http, "http", &[b"h2", b"http/1.1"])?,
        })
    }
}

fn invalid(path: &str, message: impl Into<String>) -> Invalid {
    (path.to_string(), message.into())
}

impl ComponentConfig for OtlpConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let Protocols { grpc, http } = &self.protocols;
        if grpc.is_none() && http.is_none() {
            return Err(invalid(
                "protocols",
                "must enable at least one protocol (grpc or http)",
            ));
        }
        if let Some(grpc) = grpc {
            grpc.validate()?;
        }
        if let Some(http) = http {
            http.validate()?;
        }
        Ok(())
    }
}

impl GrpcConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check_endpoint(&self.endpoint).map_err(|m| invalid("protocols.grpc.endpoint", m))?;
        if self.transport != "tcp" {
            return Err(invalid(
                "protocols.grpc.transport",
                format!("only \"tcp\" is supported, got {:?}", self.transport),
            ));
        }
        if let Some(tls) = &self.tls {
            tls.validate("protocols.grpc.tls")?;
        }
        if self.auth.is_some() {
            return Err(invalid("protocols.grpc.auth", "auth is not supported yet"));
        }
        Ok(())
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check_endpoint(&self.endpoint).map_err(|m| invalid("protocols.http.endpoint", m))?;
        if self.traces_url_path.trim().is_empty() {
            return Err(invalid(
                "protocols.http.traces_url_path",
                "must not be empty",
            ));
        }
        if http::uri::PathAndQuery::try_from(self.traces_path()).is_err() {
            return Err(invalid(
                "protocols.http.traces_url_path",
                format!("not a valid URL path: {:?}", self.traces_url_path),
            ));
        }
        if let Some(tls) = &self.tls {
            tls.validate("protocols.http.tls")?;
        }
        if self.auth.is_some() {
            return Err(invalid("protocols.http.auth", "auth is not supported yet"));
        }
        for (name, value) in &self.response_headers {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                return Err(invalid(
                    "protocols.http.response_headers",
                    format!("invalid header name {name:?}"),
                ));
            }
            if http::HeaderValue::try_from(value.as_str()).is_err() {
                return Err(invalid(
                    "protocols.http.response_headers",
                    format!("invalid value for header {name:?}"),
                ));
            }
        }
        for algorithm in &self.compression_algorithms {
            let known = SUPPORTED_ENCODINGS.contains(&algorithm.as_str())
                || UNSUPPORTED_ENCODINGS.contains(&algorithm.as_str());
            if !known {
                return Err(invalid(
                    "protocols.http.compression_algorithms",
                    format!(
                        "unknown compression {algorithm:?} (supported: gzip, zstd, zlib, deflate)"
                    ),
                ));
            }
        }
        if let Some(cors) = &self.cors {
            for origin in &cors.allowed_origins {
                if origin.matches('*').count() > 1 {
                    return Err(invalid(
                        "protocols.http.cors.allowed_origins",
                        format!("at most one '*' per origin, got {origin:?}"),
                    ));
                }
            }
            for header in &cors.allowed_headers {
                if header != "*" && http::HeaderName::try_from(header.as_str()).is_err() {
                    return Err(invalid(
                        "protocols.http.cors.allowed_headers",
                        format!("invalid header name {header:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<OtlpConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
        parse_typed_config::<OtlpConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_protocols_enable_with_defaults() {
        let c = parse("protocols:\n  grpc:\n  http:\n").unwrap();
        let grpc = c.protocols.grpc.unwrap();
        let http = c.protocols.http.unwrap();
        assert_eq!(grpc.endpoint, "localhost:4317");
        assert_eq!(grpc.max_recv_msg_size(), 4 * 1024 * 1024);
        assert_eq!(http.endpoint, "localhost:4318");
        assert_eq!(http.traces_path(), "/v1/traces");
        assert_eq!(http.max_body_size(), 20 * 1024 * 1024);
        assert!(http.cors.is_none());
    }

    #[test]
    fn only_named_protocols_are_enabled() {
        let c = parse("protocols:\n  http: {}\n").unwrap();
        assert!(c.protocols.grpc.is_none());
        assert!(c.protocols.http.is_some());
    }

    #[test]
    fn no_protocol_is_an_error() {
        let e = parse("protocols: {}").unwrap_err();
        assert_eq!(
            e,
            "protocols: must enable at least one protocol (grpc or http)"
        );
        let e = parse("{}").unwrap_err();
        assert!(e.starts_with("protocols: must enable"), "{e}");
        assert!(OtlpConfig::default().validate().is_err());
    }

    #[test]
    fn collector_config_parses() {
        let c = parse(
            r#"
protocols:
  grpc:
    endpoint: 0.0.0.0:4317
    max_recv_msg_size_mib: 16
    max_concurrent_streams: 100
    read_buffer_size: 524288
    write_buffer_size: 0
    include_metadata: true
    keepalive:
      server_parameters:
        max_connection_idle: 11s
        max_connection_age: 12s
        max_connection_age_grace: 13s
        time: 30s
        timeout: 5s
      enforcement_policy:
        min_time: 10s
        permit_without_stream: true
  http:
    endpoint: "[::1]:4318"
    traces_url_path: /custom/traces
    max_request_body_size: 1048576
    include_metadata: true
    cors:
      allowed_origins: ["https://*.example.com", "http://localhost:3000"]
      allowed_headers: ["X-Custom"]
      max_age: 7200
    response_headers:
      X-Served-By: teletrace
    compression_algorithms: ["", "gzip", "zstd"]
"#,
        )
        .unwrap();
        let grpc = c.protocols.grpc.unwrap();
        assert_eq!(grpc.max_recv_msg_size(), 16 * 1024 * 1024);
        let sp = grpc.keepalive.unwrap().server_parameters.unwrap();
        assert_eq!(sp.time, Some(Duration::from_secs(30)));
        assert_eq!(sp.max_connection_age_grace, Some(Duration::from_secs(13)));
        let http = c.protocols.http.unwrap();
        assert_eq!(http.cors.unwrap().max_age, 7200);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let e = parse("protocols:\n  grpc:\n    endpont: x:1\n").unwrap_err();
        assert!(e.starts_with("protocols::grpc"), "{e}");
        assert!(e.contains("endpont"), "{e}");
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in [
            "localhost",
            "localhost:",
            "localhost:http",
            "host:70000",
            "[::1:4317",
        ] {
            let e = parse(&format!("protocols:\n  grpc:\n    endpoint: \"{bad}\"\n")).unwrap_err();
            assert!(e.starts_with("protocols::grpc::endpoint: "), "{bad}: {e}");
        }
        for good in [
            "localhost:4317",
            ":4317",
            "0.0.0.0:0",
            "[::]:4317",
            "example.com:1",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn tls_keys_are_checked() {
        let c =
            parse("protocols:\n  http:\n    tls:\n      cert_file: a.pem\n      key_file: a.key\n")
                .unwrap();
        let tls = c.protocols.http.unwrap().tls.unwrap().settings();
        assert_eq!(tls.cert_file.unwrap().to_str(), Some("a.pem"));
        let e = parse("protocols:\n  grpc:\n    tls:\n      cert_file: a.pem\n").unwrap_err();
        assert!(
            e.starts_with("protocols::grpc::tls::key_file: must be set"),
            "{e}"
        );
        let e = parse("protocols:\n  grpc:\n    tls: {cert_file: a, key_file: b, cert_pem: x}\n")
            .unwrap_err();
        assert!(
            e.starts_with("protocols::grpc::tls::cert_pem: not supported"),
            "{e}"
        );
        let e = parse(
            "protocols:\n  http:\n    tls: {cert_file: a, key_file: b, min_version: '1.1'}\n",
        )
        .unwrap_err();
        assert!(e.starts_with("protocols::http::tls::min_version: "), "{e}");
    }

    #[test]
    fn zero_limits_mean_defaults() {
        let c = parse("protocols:\n  grpc:\n    max_recv_msg_size_mib: 0\n  http:\n    max_request_body_size: 0\n")
            .unwrap();
        assert_eq!(c.protocols.grpc.unwrap().max_recv_msg_size(), 4 << 20);
        assert_eq!(c.protocols.http.unwrap().max_body_size(), 20 << 20);
    }
}
