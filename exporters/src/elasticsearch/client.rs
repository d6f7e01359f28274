//! The HTTP side: a reqwest client built from the config (TLS, auth, headers), and the
//! endpoints used round robin, a failing node skipped for a cool-down.

use super::config::ElasticsearchConfig;
use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use teletrace_core::tls::TlsClientSettings;

/// An answer from some node: its status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub body: Bytes,
    /// The node that answered.
    pub node: String,
}

/// No node answered (each failed to connect or answered 502/503/504).
#[derive(Debug, Clone, thiserror::Error)]
#[error("no Elasticsearch node answered: {0}")]
pub struct Unavailable(pub String);

struct Node {
    /// Base URL without a trailing slash.
    base: String,
    /// Skipped until then after a failure.
    dead_until: Mutex<Option<Instant>>,
}

/// The Elasticsearch client: endpoints, HTTP client, headers.
pub struct EsClient {
    http: reqwest::Client,
    nodes: Vec<Node>,
    next: AtomicUsize,
    cooldown: Duration,
}

/// Builds the client from the config; reads the TLS files now, so a bad file is a
/// config error at build time.
pub fn build(config: &ElasticsearchConfig) -> Result<EsClient, (String, String)> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ("headers".to_string(), format!("{name:?}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| (format!("headers::{name}"), e.to_string()))?;
        headers.insert(name, value);
    }
    if let Some(auth) = authorization(config)? {
        headers.insert(AUTHORIZATION, auth);
    }
    let builder = reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("teletrace/", env!("CARGO_PKG_VERSION")))
        .timeout(config.timeout)
        .pool_max_idle_per_host(config.workers().max(1));
    let http = tls(builder, &config.tls)?.build().map_err(|e| {
        (
            "tls".to_string(),
            format!("cannot build the HTTP client: {e}"),
        )
    })?;
    let nodes = config
        .resolved_endpoints()
        .into_iter()
        .map(|e| Node {
            base: e.trim_end_matches('/').to_string(),
            dead_until: Mutex::new(None),
        })
        .collect();
    Ok(EsClient {
        http,
        nodes,
        next: AtomicUsize::new(0),
        cooldown: config.node_cooldown,
    })
}

/// The `Authorization` header value for the configured credentials.
fn authorization(config: &ElasticsearchConfig) -> Result<Option<HeaderValue>, (String, String)> {
    let text = if let Some(user) = &config.user {
        let pair = format!("{user}:{}", config.password.as_deref().unwrap_or(""));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    } else if let Some(key) = &config.api_key {
        format!("ApiKey {}", key.trim())
    } else if let Some(token) = &config.bearer_token {
        format!("Bearer {}", token.trim())
    } else {
        return Ok(None);
    };
    let key = if config.user.is_some() {
        "user"
    } else if config.api_key.is_some() {
        "api_key"
    } else {
        "bearer_token"
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        (
            key.to_string(),
            "contains characters not allowed in a header".into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Applies `tls` to the client through `teletrace_core::tls` (as the OTLP exporters
/// do): the roots of `ca_file` (the system's otherwise), the client certificate for mTLS,
/// `insecure_skip_verify`, `server_name_override` (the certificate is checked against
/// it) and `min_version`. The TLS files are read here, at build time.
fn tls(
    builder: reqwest::ClientBuilder,
    tls: &TlsClientSettings,
) -> Result<reqwest::ClientBuilder, (String, String)> {
    let config = tls
        .client_config(&[b"http/1.1"])
        .map_err(|e| (format!("tls::{}", e.key), e.message))?;
    Ok(builder.use_preconfigured_tls(config))
}

impl EsClient {
    /// Node indexes in the order to try them: round robin from the next one, nodes in
    /// cool-down last (soonest back first), so a request is tried on every node.
    fn order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut alive = Vec::with_capacity(n);
        let mut dead = Vec::new();
        for i in (0..n).map(|k| (start + k) % n) {
            let until = *self.nodes[i]
                .dead_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > now => dead.push((t, i)),
                _ => alive.push(i),
            }
        }
        dead.sort();
        alive.extend(dead.into_iter().map(|(_, i)| i));
        alive
    }

    fn set_dead(&self, i: usize, dead: bool) {
        let mut until = self.nodes[i]
            .dead_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *until = dead.then(|| Instant::now() + self.cooldown);
    }

    /// Sends one request to the first node that answers. A connection error, a timeout
    /// or 502/503/504 puts the node in cool-down and moves on to the next; any other
    /// answer (including 429 and errors about the request) is returned.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Answer, Unavailable> {
        let mut failures = Vec::new();
        for i in self.order() {
            let node = &self.nodes[i];
            let url = format!("{}{path_and_query}", node.base);
            let sent = self
                .http
                .request(method.clone(), &url)
                .header(CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(body)
                            if !matches!(
                                status,
                                StatusCode::BAD_GATEWAY
                                    | StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::GATEWAY_TIMEOUT
                            ) =>
                        {
                            self.set_dead(i, false);
                            return Ok(Answer {
                                status,
                                body,
                                node: node.base.clone(),
                            });
                        }
                        Ok(body) => format!(
                            "{}: {status} {}",
                            node.base,
                            String::from_utf8_lossy(&body[..body.len().min(200)])
                        ),
                        Err(e) => format!("{}: reading the answer: {e}", node.base),
                    }
                }
                Err(e) => format!("{}: {}", node.base, error_chain(&e)),
            };
            tracing::warn!(node = %node.base, error = %failure, cooldown = ?self.cooldown, "elasticsearch node failed; skipping it for the cool-down");
            self.set_dead(i, true);
            failures.push(failure);
        }
        Err(Unavailable(failures.join("; ")))
    }
}

/// An error with its sources (reqwest's own message is terse: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
