//! TLS settings with the collector's `configtls` keys: the client side (exporters) and
//! the server side (receivers). Building rustls configs from them lives here too.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};
use serde::Deserialize;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

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

/// A TLS setting that cannot be turned into a working config, with the key it is about
/// (relative to the `tls` block, e.g. `ca_file`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    /// The key of the `tls` block at fault.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl TlsError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        TlsError {
            key,
            message: message.into(),
        }
    }
}

/// The crypto provider every Teletrace TLS config uses: rustls' `ring` backend.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions allowed by `min_version` (`"1.2"` when unset).
fn protocol_versions(
    min_version: Option<&str>,
) -> Result<&'static [&'static SupportedProtocolVersion], TlsError> {
    static TLS12_AND_13: &[&SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min_version.map(str::trim) {
        None | Some("") | Some("1.2") => Ok(TLS12_AND_13),
        Some("1.3") => Ok(TLS13),
        Some(v @ ("1.0" | "1.1")) => Err(TlsError::new(
            "min_version",
            format!("TLS {v} is not supported (rustls speaks 1.2 and 1.3); use \"1.2\" or \"1.3\""),
        )),
        Some(v) => Err(TlsError::new(
            "min_version",
            format!("unknown TLS version {v:?}; expected \"1.2\" or \"1.3\""),
        )),
    }
}

/// Reads every certificate of a PEM file.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |e: &dyn std::fmt::Display| {
        TlsError::new(
            key,
            format!("cannot read certificates from {}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(&"no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError::new(
            key,
            format!("cannot read a private key from {}: {e}", path.display()),
        )
    })
}

/// A root store with the certificates of a PEM file.
fn roots_from_file(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(key, path)? {
        roots.add(cert).map_err(|e| {
            TlsError::new(
                key,
                format!("invalid CA certificate in {}: {e}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

/// The operating system's trusted roots (unreadable ones are skipped and logged).
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "could not load some system CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (_added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(
            ignored,
            "system CA certificates rustls cannot parse were skipped"
        );
    }
    roots
}

/// Both `cert_file` and `key_file`, or neither.
fn cert_and_key(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    match (cert_file, key_file) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some((
            read_certs("cert_file", cert)?,
            read_key("key_file", key)?,
        ))),
        (Some(_), None) => Err(TlsError::new(
            "key_file",
            "must be set when cert_file is set",
        )),
        (None, Some(_)) => Err(TlsError::new(
            "cert_file",
            "must be set when key_file is set",
        )),
    }
}

impl TlsClientSettings {
    /// Builds the rustls client config: the roots of `ca_file` (the system's otherwise),
    /// the client certificate for mTLS, `min_version`, and `alpn` (e.g. `h2` for gRPC).
    /// `insecure` is the caller's business (it means no TLS at all); this builds the
    /// config for when TLS is used.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
        let provider = crypto_provider();
        let versions = protocol_versions(self.min_version.as_deref())?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::new("min_version", e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        } else {
            let roots = match &self.ca_file {
                Some(path) => roots_from_file("ca_file", path)?,
                None => system_roots(),
            };
            match self
                .server_name_override
                .as_deref()
                .filter(|n| !n.is_empty())
            {
                None => builder.with_root_certificates(roots),
                Some(name) => {
                    let inner =
                        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                            .build()
                            .map_err(|e| TlsError::new("ca_file", e.to_string()))?;
                    let name = ServerName::try_from(name.to_string()).map_err(|e| {
                        TlsError::new(
                            "server_name_override",
                            format!("invalid server name {name:?}: {e}"),
                        )
                    })?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(OverrideServerName {
                            inner,
                            name,
                        }))
                }
            }
        };
        let mut config = match cert_and_key(self.cert_file.as_deref(), self.key_file.as_deref())? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::new("key_file", e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// The name the server's certificate is checked against: `server_name_override`
    /// when set, `host` otherwise.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let (key, name) = match self.server_name_override.as_deref() {
            Some(name) if !name.is_empty() => ("server_name_override", name),
            _ => (
                "endpoint",
                host.trim_start_matches('[').trim_end_matches(']'),
            ),
        };
        ServerName::try_from(name.to_string())
            .map_err(|e| TlsError::new(key, format!("invalid server name {name:?}: {e}")))
    }
}

impl TlsServerSettings {
    /// Builds the rustls server config: the certificate and key (both required),
    /// `client_ca_file` for mTLS (a client must then present a certificate signed by that
    /// CA, or the handshake fails), `min_version`, and `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
        let provider = crypto_provider();
        let versions = protocol_versions(self.min_version.as_deref())?;
        let Some((certs, key)) = cert_and_key(self.cert_file.as_deref(), self.key_file.as_deref())?
        else {
            return Err(TlsError::new(
                "cert_file",
                "a server needs cert_file and key_file",
            ));
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::new("min_version", e.to_string()))?;
        let builder = match &self.client_ca_file {
            Some(path) => {
                let roots = roots_from_file("client_ca_file", path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::new("client_ca_file", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::new("key_file", e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// `insecure_skip_verify`: accepts any server certificate, whoever it names and whoever
/// signed it (handshake signatures are still checked). For tests and debugging only: it
/// gives up all protection against a man in the middle.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `server_name_override`: the usual WebPKI checks, against the configured name instead of
/// the one the connection was opened for (clients that cannot choose the name they verify,
/// such as reqwest, get the override this way).
#[derive(Debug)]
struct OverrideServerName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for OverrideServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
