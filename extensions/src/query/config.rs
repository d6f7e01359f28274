//! The `query` extension's config: where to listen, which exporter to read, CORS, and
//! where the system ID lives.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use teletrace_core::{ComponentConfig, ComponentId};

/// The default listen address (the Teletrace API and web UI port).
pub const DEFAULT_ENDPOINT: &str = "localhost:8080";

/// The default file holding the system ID, relative to the working directory.
pub const DEFAULT_SYSTEM_ID_PATH: &str = "teletrace-system-id";

/// `extensions::query`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// `host:port` to listen on (`:8080` listens on every interface). Default
    /// `localhost:8080`.
    pub endpoint: String,
    /// The ID of the exporter whose stored spans are served (`sqlite`, `sqlite/main`,
    /// `elasticsearch`). Required.
    pub storage: Option<String>,
    /// Cross-origin requests, as the collector's `confighttp` configures them. Off when
    /// absent or when `allowed_origins` is empty.
    pub cors: Option<CorsConfig>,
    /// File holding the stable system ID served by `/v1/system-info`; created with a new
    /// UUID v4 on first start. Relative paths are taken from the working directory.
    pub system_id_path: PathBuf,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            storage: None,
            cors: None,
            system_id_path: PathBuf::from(DEFAULT_SYSTEM_ID_PATH),
        }
    }
}

/// `cors`, with the keys and meaning of the collector's `confighttp` CORS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to make cross-origin requests, e.g. `https://*.example.com`. A `*`
    /// matches any run of characters; `*` alone allows every origin.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond the always-allowed `Accept`, `Accept-Language`,
    /// `Content-Type`, `Content-Language`, `Origin` and `X-Requested-With`. `*` allows any.
    pub allowed_headers: Vec<String>,
    /// How long, in seconds, a browser may cache a preflight answer. 0 or absent sends no
    /// `Access-Control-Max-Age`.
    pub max_age: Option<u64>,
}

impl CorsConfig {
    /// True when CORS is on (at least one allowed origin).
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// True when `origin` matches one of `allowed_origins` (case-insensitive, `*` as a
    /// wildcard).
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.allowed_origins
            .iter()
            .any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &origin))
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl QueryConfig {
    /// The address to bind: `endpoint`, with `:port` meaning every interface.
    pub fn bind_address(&self) -> String {
        let endpoint = self.endpoint.trim();
        if endpoint.starts_with(':') {
            format!("0.0.0.0{endpoint}")
        } else {
            endpoint.to_string()
        }
    }

    /// The storage exporter's ID, once validated.
    pub fn storage_id(&self) -> Result<ComponentId, String> {
        match self.storage.as_deref().map(str::trim) {
            None | Some("") => Err(
                "required: the ID of the exporter whose spans are served, e.g. `storage: sqlite`"
                    .to_string(),
            ),
            Some(id) => ComponentId::parse(id),
        }
    }
}

impl ComponentConfig for QueryConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        self.storage_id().map_err(|e| ("storage".to_string(), e))?;
        let endpoint = self.endpoint.trim();
        let valid_port = endpoint
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !valid_port {
            return Err((
                "endpoint".to_string(),
                format!("expected host:port (e.g. localhost:8080), got {endpoint:?}"),
            ));
        }
        if let Some(cors) = &self.cors {
            for (i, origin) in cors.allowed_origins.iter().enumerate() {
                if origin.trim().is_empty() {
                    return Err((
                        format!("cors.allowed_origins.{i}"),
                        "must not be empty".to_string(),
                    ));
                }
            }
            for (i, header) in cors.allowed_headers.iter().enumerate() {
                let valid =
                    header == "*" || http::HeaderName::from_bytes(header.as_bytes()).is_ok();
                if !valid {
                    return Err((
                        format!("cors.allowed_headers.{i}"),
                        format!("{header:?} is not a valid header name"),
                    ));
                }
            }
        }
        if self.system_id_path.as_os_str().is_empty() {
            return Err((
                "system_id_path".to_string(),
                "must not be empty".to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<QueryConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<QueryConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_storage() {
        let err = parse("{}").unwrap_err();
        assert!(err.starts_with("storage: required"), "{err}");
        let config = parse("storage: sqlite").unwrap();
        assert_eq!(config.endpoint, "localhost:8080");
        assert_eq!(config.system_id_path, PathBuf::from("teletrace-system-id"));
        assert_eq!(config.cors, None);
        assert_eq!(config.storage_id().unwrap().to_string(), "sqlite");
    }

    #[test]
    fn every_key_parses() {
        let config = parse(
            "endpoint: 0.0.0.0:9000\nstorage: sqlite/main\nsystem_id_path: /tmp/x\n\
             cors: {allowed_origins: ['https://*.example.com'], allowed_headers: [X-Custom], max_age: 600}",
        )
        .unwrap();
        let cors = config.cors.unwrap();
        assert_eq!(cors.allowed_origins, vec!["https://*.example.com"]);
        assert_eq!(cors.allowed_headers, vec!["X-Custom"]);
        assert_eq!(cors.max_age, Some(600));
        assert_eq!(config.storage.as_deref(), Some("sqlite/main"));
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(parse("storage: sqlite\nendpoint: nowhere")
            .unwrap_err()
            .starts_with("endpoint:"));
        assert!(parse("storage: sqlite\nbogus: 1")
            .unwrap_err()
            .contains("unknown field `bogus`"));
        assert!(parse("storage: 'a b/'")
            .unwrap_err()
            .starts_with("storage:"));
        assert!(parse("storage: sqlite\ncors: {allowed_origins: ['']}")
            .unwrap_err()
            .starts_with("cors::allowed_origins::0:"));
        assert!(
            parse("storage: sqlite\ncors: {allowed_headers: ['bad header']}")
                .unwrap_err()
                .starts_with("cors::allowed_headers::0:")
        );
        assert!(parse("storage: sqlite\ncors: {max_age: -1}")
            .unwrap_err()
            .starts_with("cors::max_age:"));
    }

    #[test]
    fn port_only_endpoint_binds_every_interface() {
        let config = QueryConfig {
            endpoint: ":8080".into(),
            ..Default::default()
        };
        assert_eq!(config.bind_address(), "0.0.0.0:8080");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "http://a"));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://ui.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "http://ui.example.com"
        ));
        assert!(wildcard_match(
            "http://localhost:*",
            "http://localhost:3000"
        ));
        assert!(wildcard_match("http://*:*", "http://a:1"));
        assert!(!wildcard_match("a*a", "a"));
        let cors = CorsConfig {
            allowed_origins: vec!["https://UI.example.com".into()],
            ..Default::default()
        };
        assert!(cors.allows_origin("https://ui.EXAMPLE.com"));
        assert!(!cors.allows_origin("https://other.example.com"));
    }
}
