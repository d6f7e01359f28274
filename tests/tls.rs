//! TLS on both sides: Teletrace's OTLP exporters talking to Teletrace's OTLP receiver over
//! TLS and mutual TLS, with a CA and certificates generated for the test; a client
//! without a certificate is refused when the receiver requires one, and the receiver
//! keeps serving after refusing it.

mod common;

use common::capture;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use teletrace_core::tls::TlsClientSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// PEM files of a test PKI in a temp dir.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A second CA that signed nothing here.
    other_ca: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = vec![usage];
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CA, a server certificate for `server_names`, and a client certificate.
fn pki(server_names: &[&str]) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let authority = ca("teletrace test CA");
    let (server_cert, server_key) = leaf(
        server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        &authority,
    );
    let (client_cert, client_key) =
        leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth, &authority);
    let other = ca("another CA");
    Pki {
        ca: write("ca.pem", &authority.0.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        other_ca: write("other-ca.pem", &other.0.pem()),
        _dir: dir,
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A backend whose OTLP receiver serves gRPC and HTTP over TLS, into capture `name`.
async fn tls_backend(name: &str, pki: &Pki, mutual: bool) -> common::Running {
    let client_ca = if mutual {
        format!("\n          client_ca_file: {}", p(&pki.ca))
    } else {
        String::new()
    };
    let tls = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}{client_ca}\n",
        p(&pki.server_cert),
        p(&pki.server_key)
    );
    common::start(&format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n{tls}      http:\n        endpoint: 127.0.0.1:0\n{tls}exporters:\n  capture:\n    name: {name}\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [capture]\n"
    ))
    .await
}

/// A forwarder (plain OTLP receiver) into an `otlp` and an `otlp_http` exporter, both
/// with the `tls` block `tls` (YAML lines, indented for the exporter).
async fn forwarder(back: &common::Running, tls: &str) -> common::Running {
    let grpc = back.addr("receivers::otlp", "grpc");
    let http = back.addr("receivers::otlp", "http");
    common::start(&format!(
        "receivers:{}\nexporters:\n  otlp:\n    endpoint: {grpc}\n    tls:\n{tls}\n  otlp_http:\n    endpoint: https://{http}\n    tls:\n{tls}\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp, otlp_http]\n",
        common::OTLP_EPHEMERAL
    ))
    .await
}

fn request(prefix: &str, n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![7; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: format!("{prefix}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(url: &str, request: &ExportTraceServiceRequest) {
    let status = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .expect("the forwarder answers")
        .status();
    assert!(status.is_success(), "{status}");
}

/// Spans sent through the forwarder reach the backend once per exporter (gRPC and HTTP).
async fn both_exporters_deliver(name: &str, front: &common::Running, n: usize) {
    post(&front.http_endpoint(), &request(name, n)).await;
    assert!(
        common::eventually(Duration::from_secs(10), || capture::count(name) == 2 * n).await,
        "{name}: got {} of {} spans",
        capture::count(name),
        2 * n
    );
}

#[tokio::test]
async fn exporters_reach_a_tls_receiver() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let back = tls_backend("tls-plain", &pki, false).await;
    let front = forwarder(&back, &format!("      ca_file: {}", p(&pki.ca))).await;
    both_exporters_deliver("tls-plain", &front, 5).await;
    front.stop().await;
    back.stop().await;
}

#[tokio::test]
async fn server_name_override_and_insecure_skip_verify() {
    // The certificate names neither the IP nor "localhost".
    let pki = pki(&["otlp.test"]);
    let back = tls_backend("tls-names", &pki, false).await;
    let front = forwarder(
        &back,
        &format!(
            "      ca_file: {}\n      server_name_override: otlp.test\n      min_version: \"1.3\"",
            p(&pki.ca)
        ),
    )
    .await;
    both_exporters_deliver("tls-names", &front, 3).await;
    front.stop().await;
    let front = forwarder(&back, "      insecure_skip_verify: true").await;
    post(&front.http_endpoint(), &request("tls-names-skip", 2)).await;
    assert!(
        common::eventually(Duration::from_secs(10), || capture::count("tls-names")
            == 6 + 4)
        .await,
        "got {}",
        capture::count("tls-names")
    );
    front.stop().await;
    back.stop().await;
}

/// A rustls client config trusting the test CA, with or without the client certificate.
fn client_tls(pki: &Pki, with_cert: bool, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let settings = TlsClientSettings {
        ca_file: Some(pki.ca.clone()),
        cert_file: with_cert.then(|| pki.client_cert.clone()),
        key_file: with_cert.then(|| pki.client_key.clone()),
        ..Default::default()
    };
    settings.client_config(alpn).unwrap()
}

async fn https_post(pki: &Pki, with_cert: bool, addr: std::net::SocketAddr) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls(pki, with_cert, &[b"http/1.1"]))
        .build()
        .unwrap();
    client
        .post(format!("https://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request("direct", 1).encode_to_vec())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// Opens a TLS connection without a client certificate and tries to use it; the server
/// must refuse (TLS 1.3 reports the refusal after the client's side of the handshake).
async fn grpc_without_cert_is_refused(pki: &Pki, addr: std::net::SocketAddr) {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(pki, false, &[b"h2"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = match connector.connect(name, tcp).await {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            let mut buf = [0u8; 64];
            matches!(
                tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await,
                Ok(Err(_)) | Ok(Ok(0))
            )
        }
    };
    assert!(refused, "a gRPC client without a certificate got through");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let back = tls_backend("tls-mutual", &pki, true).await;
    let http = back.addr("receivers::otlp", "http");
    let grpc = back.addr("receivers::otlp", "grpc");

    // Without a certificate: refused on both protocols.
    let refused = https_post(&pki, false, http).await;
    assert!(
        refused.is_err(),
        "an HTTP client without a certificate got {refused:?}"
    );
    grpc_without_cert_is_refused(&pki, grpc).await;
    // A plain-text client on the TLS port is refused too, without harm.
    let mut plain = tokio::net::TcpStream::connect(http).await.unwrap();
    let _ = plain
        .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;

    // The receiver still serves clients with a certificate.
    assert_eq!(https_post(&pki, true, http).await, Ok(200));
    let front = forwarder(
        &back,
        &format!(
            "      ca_file: {}\n      cert_file: {}\n      key_file: {}",
            p(&pki.ca),
            p(&pki.client_cert),
            p(&pki.client_key)
        ),
    )
    .await;
    post(&front.http_endpoint(), &request("tls-mutual", 4)).await;
    assert!(
        common::eventually(Duration::from_secs(10), || capture::count("tls-mutual")
            == 1 + 8)
        .await,
        "got {}",
        capture::count("tls-mutual")
    );
    front.stop().await;
    back.stop().await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_not_trusted() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let back = tls_backend("tls-untrusted", &pki, false).await;
    let settings = TlsClientSettings {
        ca_file: Some(pki.other_ca.clone()),
        ..Default::default()
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(settings.client_config(&[b"http/1.1"]).unwrap())
        .build()
        .unwrap();
    let result = client
        .post(format!(
            "https://{}/v1/traces",
            back.addr("receivers::otlp", "http")
        ))
        .body(Vec::new())
        .send()
        .await;
    let error = format!(
        "{:?}",
        result.expect_err("an untrusted server was accepted")
    );
    assert!(
        error.contains("UnknownIssuer") || error.contains("certificate"),
        "{error}"
    );
    back.stop().await;
}
