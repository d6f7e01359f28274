//! CORS for OTLP/HTTP, as the collector's `confighttp` does it: off unless
//! `cors.allowed_origins` lists something; then preflight `OPTIONS` requests are answered
//! and responses to allowed origins carry the CORS headers (with credentials allowed).

use crate::otlp::config::CorsConfig;
use http::header::{self, HeaderMap, HeaderValue};

/// Request headers always allowed (the CORS-safelisted ones and what OTLP clients send).
const ALWAYS_ALLOWED_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "origin",
    "x-requested-with",
];

/// One `allowed_origins` entry.
#[derive(Debug, Clone)]
enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// An exact origin (compared case-insensitively).
    Exact(String),
    /// One `*` inside an origin: what is before and after it.
    Wildcard { prefix: String, suffix: String },
}

impl OriginPattern {
    fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return OriginPattern::Any;
        }
        match pattern.split_once('*') {
            Some((prefix, suffix)) => OriginPattern::Wildcard {
                prefix: prefix.to_string(),
                suffix: suffix.to_string(),
            },
            None => OriginPattern::Exact(pattern),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => o == origin,
            OriginPattern::Wildcard { prefix, suffix } => {
                origin.len() >= prefix.len() + suffix.len()
                    && origin.starts_with(prefix.as_str())
                    && origin.ends_with(suffix.as_str())
            }
        }
    }
}

/// The CORS policy of an HTTP server.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Vec<OriginPattern>,
    headers: Vec<String>,
    any_header: bool,
    max_age: u64,
}

impl Cors {
    /// The policy for `config`, or `None` when no origin is allowed (CORS off).
    pub(crate) fn new(config: Option<&CorsConfig>) -> Option<Cors> {
        let config = config?;
        if config.allowed_origins.is_empty() {
            return None;
        }
        let mut headers: Vec<String> = ALWAYS_ALLOWED_HEADERS
            .iter()
            .map(|h| h.to_string())
            .collect();
        headers.extend(
            config
                .allowed_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase()),
        );
        Some(Cors {
            origins: config
                .allowed_origins
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect(),
            any_header: headers.iter().any(|h| h == "*"),
            headers,
            max_age: config.max_age,
        })
    }

    /// True when the policy allows `origin`.
    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|p| p.matches(&origin))
    }

    /// The request's `Origin` when the policy allows it.
    fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        headers.get(header::ORIGIN).filter(|o| self.allows(o))
    }

    /// True for a CORS preflight request (an `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`).
    pub(crate) fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
        method == http::Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The headers answering a preflight request. When the origin, method or headers are
    /// not allowed, only `Vary` is set, and the browser refuses the actual request.
    pub(crate) fn preflight_headers(&self, request: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        out.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        let Some(origin) = self.allowed_origin(request) else {
            return out;
        };
        let method_ok = request
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("POST"));
        if !method_ok {
            return out;
        }
        let requested = request
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let headers_ok = self.any_header
            || requested
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| self.headers.contains(&h));
        if !headers_ok {
            return out;
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        if !requested.trim().is_empty() {
            if let Ok(v) = HeaderValue::from_str(requested.trim()) {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if self.max_age > 0 {
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.max_age),
            );
        }
        out
    }

    /// Adds the CORS headers of an actual (non-preflight) response to a request from
    /// `origin`.
    pub(crate) fn add_response_headers(
        &self,
        origin: Option<&HeaderValue>,
        response: &mut HeaderMap,
    ) {
        response.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], headers: &[&str]) -> Cors {
        Cors::new(Some(&CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            max_age: 600,
        }))
        .expect("enabled")
    }

    fn request(origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, origin.parse().unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            method.parse().unwrap(),
        );
        if !headers.is_empty() {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                headers.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn off_without_origins() {
        assert!(Cors::new(None).is_none());
        assert!(Cors::new(Some(&CorsConfig::default())).is_none());
    }

    #[test]
    fn wildcard_origins_match() {
        let c = cors(&["https://*.example.com", "http://localhost:3000"], &[]);
        let ok = |o: &str| {
            c.preflight_headers(&request(o, "POST", "content-type"))
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        };
        assert!(ok("https://app.example.com"));
        assert!(ok("https://A.Example.com"));
        assert!(ok("http://localhost:3000"));
        assert!(!ok("https://example.com.evil.org"));
        assert!(!ok("http://app.example.com"));
        assert!(!ok("http://localhost:3001"));
        let any = cors(&["*"], &[]);
        assert!(any
            .preflight_headers(&request("https://x.y", "POST", ""))
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn preflight_checks_method_and_headers() {
        let c = cors(&["*"], &["X-Custom"]);
        let h = c.preflight_headers(&request("https://a.b", "POST", "Content-Type, X-Custom"));
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.b");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "Content-Type, X-Custom"
        );
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        let h = c.preflight_headers(&request("https://a.b", "POST", "X-Other"));
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        let h = c.preflight_headers(&request("https://a.b", "DELETE", ""));
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
