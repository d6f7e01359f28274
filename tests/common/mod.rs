//! Shared harness for the end-to-end tests: start a service in-process from YAML on
//! ephemeral ports, and a `capture` exporter that records what reaches it.
#![allow(dead_code)]

pub mod capture;
pub mod otlp;

use std::net::SocketAddr;
use std::time::Duration;
use teletrace_core::config::{self, ConfigSource};
use teletrace_core::telemetry::Metrics;
use teletrace_core::Service;

/// Makes sure every component crate is linked into the test binary.
pub fn link_all() {
    teletrace_receivers::link();
    teletrace_processors::link();
    teletrace_exporters::link();
    teletrace_extensions::link();
}

/// A service started from YAML.
pub struct Running {
    /// The service.
    pub service: Service,
}

impl Running {
    /// Address of `component` (`receivers::otlp`) for `label` (`grpc`, `http`).
    pub fn addr(&self, component: &str, label: &str) -> SocketAddr {
        self.service
            .address_of(component, label)
            .unwrap_or_else(|| {
                panic!(
                    "{component} has no {label} listener: {:?}",
                    self.service.listening()
                )
            })
    }

    /// `http://host:port` of the OTLP gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr("receivers::otlp", "grpc"))
    }

    /// `http://host:port` of the OTLP HTTP receiver.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.addr("receivers::otlp", "http"))
    }

    /// Shuts the service down (drains).
    pub async fn stop(mut self) {
        self.service.shutdown(Duration::from_secs(10)).await;
    }
}

/// Resolves, builds and starts a service from YAML text.
pub async fn start(yaml: &str) -> Running {
    start_with(yaml, &[]).await
}

/// Resolves, builds and starts a service from YAML text with `--set` overrides.
pub async fn start_with(yaml: &str, sets: &[String]) -> Running {
    link_all();
    let raw = config::load_merged(
        &[ConfigSource::Embedded {
            name: "test".into(),
            text: yaml.into(),
        }],
        sets,
        &|name| std::env::var(name).ok(),
    )
    .expect("config loads");
    let resolved = config::resolve(&raw).unwrap_or_else(|e| panic!("{e}"));
    let mut service = Service::build(&resolved, Metrics::new()).unwrap_or_else(|e| panic!("{e}"));
    service.start().await.expect("service starts");
    Running { service }
}

/// The OTLP receiver block on ephemeral ports, for test configs.
pub const OTLP_EPHEMERAL: &str = r#"
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
"#;

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// The all-in-one preset (the embedded default config) on ephemeral ports, with its
/// SQLite file and system ID in `dir`, a 20 ms batch timeout and no metrics endpoint.
pub async fn start_preset(dir: &std::path::Path) -> Running {
    let sets = [
        "receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0".to_string(),
        "receivers::otlp::protocols::http::endpoint=127.0.0.1:0".to_string(),
        format!(
            "exporters::sqlite::path={}",
            dir.join("embedded_spans.db").display()
        ),
        "extensions::query::endpoint=127.0.0.1:0".to_string(),
        format!(
            "extensions::query::system_id_path={}",
            dir.join("system-id").display()
        ),
        "processors::batch::timeout=20ms".to_string(),
        "service::telemetry::metrics::level=none".to_string(),
    ];
    start_with(teletrace::cli::ALL_IN_ONE, &sets).await
}

/// A fresh, empty directory for one test: `teletrace-<suite>-<name>-<pid>` in the temp dir.
pub fn fresh_dir(suite: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("teletrace-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `s` without ANSI escape sequences (the binary's log, when it colours it).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
