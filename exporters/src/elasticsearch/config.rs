//! The `elasticsearch` exporter's config: the collector's keys and defaults, and the
//! checks serde cannot express.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use teletrace_core::config::duration;
use teletrace_core::exporter_helper::{ExporterHelperSettings, QueueSettings, RetrySettings};
use teletrace_core::tls::TlsClientSettings;
use teletrace_core::ComponentConfig;

/// The environment variable read for endpoints when neither `endpoint` nor `endpoints`
/// is set (comma-separated), as the collector does.
pub const ENDPOINTS_ENV: &str = "ELASTICSEARCH_URL";

/// Index of the `teletrace` mapping mode.
pub const DEFAULT_TELETRACE_INDEX: &str = "teletrace-traces";

/// Data stream of the `otel` mapping mode (the collector's default in otel mode).
pub const DEFAULT_OTEL_INDEX: &str = "traces-generic.otel-default";

/// Config of the `elasticsearch` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// One Elasticsearch URL (`https://es:9200`).
    pub endpoint: Option<String>,
    /// Several URLs, used in turn (round robin); a failing node is skipped for
    /// `node_cooldown`.
    pub endpoints: Vec<String>,
    /// HTTP Basic user.
    pub user: Option<String>,
    /// HTTP Basic password.
    pub password: Option<String>,
    /// Elasticsearch API key, in its encoded form (`Authorization: ApiKey <key>`).
    pub api_key: Option<String>,
    /// A bearer token (`Authorization: Bearer <token>`), e.g. an Elasticsearch service
    /// account token. Not a collector key.
    pub bearer_token: Option<String>,
    /// The collector's authenticator extension reference; not supported (an error).
    pub auth: Option<AuthSettings>,
    /// TLS for `https://` endpoints.
    pub tls: TlsClientSettings,
    /// Extra HTTP headers on every request.
    pub headers: BTreeMap<String, String>,
    /// Index or data stream to write to; `teletrace-traces` in `teletrace` mode,
    /// `traces-generic.otel-default` in `otel` mode.
    pub traces_index: Option<String>,
    /// Document shape.
    pub mapping: MappingSettings,
    /// The index template installed at start.
    pub index_template: IndexTemplateSettings,
    /// Bulk request size.
    pub flush: FlushSettings,
    /// Retry of the documents Elasticsearch answered 429 or 5xx for, inside one send.
    pub retry: BulkRetrySettings,
    /// Bulk requests in flight at once (default: the number of CPUs).
    pub num_workers: Option<usize>,
    /// How long a node that failed (connection error, 502/503/504) is skipped.
    #[serde(with = "duration")]
    pub node_cooldown: Duration,
    /// Timeout of one HTTP request, and of one send (default 90s, as the collector).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The exporter helper's sending queue.
    pub sending_queue: QueueSettings,
    /// The exporter helper's retry of whole batches.
    pub retry_on_failure: RetrySettings,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            endpoint: None,
            endpoints: Vec::new(),
            user: None,
            password: None,
            api_key: None,
            bearer_token: None,
            auth: None,
            tls: TlsClientSettings::default(),
            headers: BTreeMap::new(),
            traces_index: None,
            mapping: MappingSettings::default(),
            index_template: IndexTemplateSettings::default(),
            flush: FlushSettings::default(),
            retry: BulkRetrySettings::default(),
            num_workers: None,
            node_cooldown: Duration::from_secs(60),
            timeout: Duration::from_secs(90),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

/// `auth`: the collector's reference to an authenticator extension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Extension ID.
    pub authenticator: String,
}

/// `mapping`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSettings {
    /// `teletrace` (default) or `otel`.
    pub mode: MappingMode,
}

/// The document shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingMode {
    /// The query API's span JSON (`resource`, `scope`, `span`, `externalFields`).
    #[default]
    Teletrace,
    /// The collector's otel mapping mode.
    Otel,
}

/// `index_template`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexTemplateSettings {
    /// Install (or update) the template at start (default true).
    pub enabled: bool,
    /// Template name (default `teletrace-<traces_index>`).
    pub name: Option<String>,
}

impl Default for IndexTemplateSettings {
    fn default() -> Self {
        IndexTemplateSettings {
            enabled: true,
            name: None,
        }
    }
}

/// `flush`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushSettings {
    /// The shared bulk body is sent once it holds this many bytes (default 5000000).
    pub bytes: usize,
    /// ... or once this long has passed since its first document (default 30s).
    #[serde(with = "duration")]
    pub interval: Duration,
}

impl Default for FlushSettings {
    fn default() -> Self {
        FlushSettings {
            bytes: 5_000_000,
            interval: Duration::from_secs(30),
        }
    }
}

/// `retry`: the collector's bulk-level retry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkRetrySettings {
    /// Retry failed documents and requests inside one send (default true).
    pub enabled: bool,
    /// Bulk requests per body, the first one included (default 3).
    pub max_requests: u32,
    /// First wait (default 100ms), doubling per request.
    #[serde(with = "duration")]
    pub initial_interval: Duration,
    /// Longest wait (default 1m).
    #[serde(with = "duration")]
    pub max_interval: Duration,
}

impl Default for BulkRetrySettings {
    fn default() -> Self {
        BulkRetrySettings {
            enabled: true,
            max_requests: 3,
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(60),
        }
    }
}

impl ElasticsearchConfig {
    /// The endpoints to use: `endpoint`, `endpoints`, or `ELASTICSEARCH_URL`.
    pub fn resolved_endpoints(&self) -> Vec<String> {
        if let Some(e) = &self.endpoint {
            return vec![e.clone()];
        }
        if !self.endpoints.is_empty() {
            return self.endpoints.clone();
        }
        std::env::var(ENDPOINTS_ENV)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The index or data stream written to.
    pub fn index(&self) -> &str {
        match (&self.traces_index, self.mapping.mode) {
            (Some(index), _) => index,
            (None, MappingMode::Teletrace) => DEFAULT_TELETRACE_INDEX,
            (None, MappingMode::Otel) => DEFAULT_OTEL_INDEX,
        }
    }

    /// The index template's name.
    pub fn template_name(&self) -> String {
        self.index_template
            .name
            .clone()
            .unwrap_or_else(|| format!("teletrace-{}", self.index()))
    }

    /// Bulk requests in flight at once.
    pub fn workers(&self) -> usize {
        self.num_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// The exporter helper's settings from `timeout`, `sending_queue`, `retry_on_failure`.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings {
            timeout: self.timeout,
            queue: self.sending_queue.clone(),
            retry: self.retry_on_failure.clone(),
        }
    }
}

fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL {url:?}: the scheme must be http or https"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {url:?}: no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "invalid URL {url:?}: a query or fragment is not allowed"
        ));
    }
    Ok(())
}

/// Elasticsearch's index name rules (lowercase, no `\ / * ? " < > | , #` or space, not
/// starting with `-`, `_`, `+`, not `.` or `..`, at most 255 bytes).
fn check_index(index: &str) -> Result<(), String> {
    if index.is_empty() {
        return Err("must not be empty".into());
    }
    if index.len() > 255 {
        return Err("must be at most 255 bytes".into());
    }
    if index != index.to_lowercase() {
        return Err(format!("{index:?} must be lowercase"));
    }
    if index.starts_with(['-', '_', '+']) || index == "." || index == ".." {
        return Err(format!("{index:?} may not start with '-', '_' or '+'"));
    }
    if let Some(c) = index.chars().find(|&c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' ' | ':'
        )
    }) {
        return Err(format!("{index:?} may not contain {c:?}"));
    }
    Ok(())
}

impl ComponentConfig for ElasticsearchConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |path: &str, msg: String| Err((path.to_string(), msg));
        if self.endpoint.is_some() && !self.endpoints.is_empty() {
            return err(
                "endpoint",
                "set either endpoint or endpoints, not both".into(),
            );
        }
        if let Some(e) = &self.endpoint {
            check_endpoint(e).map_err(|m| ("endpoint".to_string(), m))?;
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            check_endpoint(e).map_err(|m| (format!("endpoints[{i}]"), m))?;
        }
        let endpoints = self.resolved_endpoints();
        if endpoints.is_empty() {
            return err(
                "endpoint",
                format!("required: set endpoint or endpoints (or the {ENDPOINTS_ENV} environment variable)"),
            );
        }
        if self.endpoint.is_none() && self.endpoints.is_empty() {
            for e in &endpoints {
                check_endpoint(e)
                    .map_err(|m| ("endpoints".to_string(), format!("{ENDPOINTS_ENV}: {m}")))?;
            }
        }
        if let Some(auth) = &self.auth {
            return err(
                "auth::authenticator",
                format!(
                    "authenticator extensions ({:?}) are not supported; use user/password, api_key or bearer_token",
                    auth.authenticator
                ),
            );
        }
        if self.password.is_some() && self.user.is_none() {
            return err("user", "required when password is set".into());
        }
        let methods = [
            self.user.is_some(),
            self.api_key.is_some(),
            self.bearer_token.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return err(
                "api_key",
                "set only one of user/password, api_key and bearer_token".into(),
            );
        }
        for (name, value) in [
            ("api_key", &self.api_key),
            ("bearer_token", &self.bearer_token),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return err(name, "must not be empty".into());
            }
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return err("headers", format!("{name:?} is not a valid header name"));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return err(
                    &format!("headers::{name}"),
                    "is not a valid header value".into(),
                );
            }
        }
        if let Some(v) = &self.tls.min_version {
            if !matches!(v.as_str(), "1.2" | "1.3") {
                return err(
                    "tls::min_version",
                    format!("{v:?}: expected \"1.2\" or \"1.3\""),
                );
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return err(
                "tls::key_file",
                "cert_file and key_file must be set together".into(),
            );
        }
        check_index(self.index()).map_err(|m| ("traces_index".to_string(), m))?;
        if self.mapping.mode == MappingMode::Otel
            && super::document::DataStream::parse(self.index()).is_none()
        {
            return err(
                "traces_index",
                format!(
                    "{:?}: otel mode writes to a data stream named traces-<dataset>-<namespace>",
                    self.index()
                ),
            );
        }
        if self
            .index_template
            .name
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return err("index_template::name", "must not be empty".into());
        }
        if self.flush.bytes == 0 {
            return err("flush::bytes", "must be greater than 0".into());
        }
        if self.flush.interval.is_zero() {
            return err("flush::interval", "must be greater than 0".into());
        }
        if self.flush.interval >= self.timeout {
            return err(
                "flush::interval",
                format!(
                    "{:?} must be shorter than timeout ({:?}): a send waits up to flush::interval for its bulk request, within timeout",
                    self.flush.interval, self.timeout
                ),
            );
        }
        if self.retry.max_requests == 0 {
            return err("retry::max_requests", "must be at least 1".into());
        }
        if self.num_workers == Some(0) {
            return err("num_workers", "must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return err("timeout", "must be greater than 0".into());
        }
        if self.sending_queue.num_consumers == 0 {
            return err("sending_queue::num_consumers", "must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<ElasticsearchConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<ElasticsearchConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = parse("endpoint: http://localhost:9200").unwrap();
        assert_eq!(c.index(), "teletrace-traces");
        assert_eq!(c.template_name(), "teletrace-teletrace-traces");
        assert_eq!(c.mapping.mode, MappingMode::Teletrace);
        assert_eq!(c.flush.bytes, 5_000_000);
        assert_eq!(c.flush.interval, Duration::from_secs(30));
        assert_eq!(c.retry, BulkRetrySettings::default());
        assert_eq!(c.retry.max_requests, 3);
        assert_eq!(c.retry.initial_interval, Duration::from_millis(100));
        assert_eq!(c.retry.max_interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(90));
        assert_eq!(c.node_cooldown, Duration::from_secs(60));
        assert!(c.index_template.enabled);
        assert!(c.workers() >= 1);
        assert_eq!(c.helper_settings().timeout, Duration::from_secs(90));
        let otel = parse("endpoint: http://es:9200\nmapping: {mode: otel}").unwrap();
        assert_eq!(otel.index(), "traces-generic.otel-default");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("endpoint: http://a:1\nendpoints: [http://b:1]", "endpoint"),
            ("endpoints: [http://a:1, 'ftp://b']", "endpoints[1]"),
            ("endpoint: 'not a url'", "endpoint"),
            (
                "endpoint: http://a:1\nmapping: {mode: ecs}",
                "mapping::mode",
            ),
            ("endpoint: http://a:1\npassword: x", "user"),
            ("endpoint: http://a:1\nuser: u\napi_key: k", "api_key"),
            (
                "endpoint: http://a:1\nauth: {authenticator: basicauth}",
                "auth::authenticator",
            ),
            ("endpoint: http://a:1\ntraces_index: Upper", "traces_index"),
            (
                "endpoint: http://a:1\nmapping: {mode: otel}\ntraces_index: plain",
                "traces_index",
            ),
            ("endpoint: http://a:1\nflush: {bytes: 0}", "flush::bytes"),
            (
                "endpoint: http://a:1\nretry: {max_requests: 0}",
                "retry::max_requests",
            ),
            (
                "endpoint: http://a:1\ntls: {min_version: '1.1'}",
                "tls::min_version",
            ),
            (
                "endpoint: http://a:1\ntls: {cert_file: /x}",
                "tls::key_file",
            ),
            (
                "endpoint: http://a:1\nheaders: {'bad header': x}",
                "headers",
            ),
            ("endpoint: http://a:1\ntimeout: 0s", "timeout"),
            ("endpoint: http://a:1\nnum_workers: 0", "num_workers"),
            ("endpoint: http://a:1\ncolour: blue", "colour"),
        ];
        for (yaml, key) in cases {
            let e = parse(yaml).expect_err(yaml);
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }
}
