//! TLS settings with the collector's `configtls` keys: the client side (exporters) and
//! the server side (receivers). Building rustls configs from them lives here too.

use serde::Deserialize;
use std::path::PathBuf;

/// Client TLS (`tls` of an exporter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientSettings {
    /// Plain text instead of TLS (gRPC `http://` endpoints imply it).
    pub insecure: bool,
    /// CA bundle (PEM) that signs the server's certificate; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Name to check the server certificate against instead of the endpoint's host.
    pub server_name_override: Option<String>,
    /// Lowest TLS version: "1.2" (default) or "1.3".
    pub min_version: Option<String>,
}

/// Server TLS (`tls` of a receiver protocol).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerSettings {
    /// Server certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Server key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to; set, it makes mTLS required.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest TLS version: "1.2" (default) or "1.3".
    pub min_version: Option<String>,
}
