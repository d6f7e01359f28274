//! The `elasticsearch` exporter over TLS, through `teletrace_core::tls`: a TLS front
//! (rustls, certificates made in the test) before the in-test Elasticsearch node, with
//! `ca_file`, `server_name_override`, mutual TLS and `insecure_skip_verify`.

mod es_mock;

use es_mock::MockEs;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use teletrace_core::registry::BuildContext;
use teletrace_core::telemetry::Metrics;
use teletrace_core::tls::TlsServerSettings;
use teletrace_core::{ComponentId, Exporter, FactoryRef, Host, Traces};

/// A CA, a server certificate for `localhost` only, a client certificate, and a CA that
/// signed nothing here.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
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
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.extended_key_usages = vec![usage];
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let authority = ca("teletrace test CA");
    let (server_cert, server_key) =
        leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth, &authority);
    let (client_cert, client_key) = leaf("client", ExtendedKeyUsagePurpose::ClientAuth, &authority);
    Pki {
        ca: write("ca.pem", &authority.0.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        other_ca: write("other-ca.pem", &ca("another CA").0.pem()),
        _dir: dir,
    }
}

/// A TLS front on 127.0.0.1 for `backend`: terminates TLS (requiring a client
/// certificate signed by the CA when `mutual`) and relays the bytes.
async fn tls_front(pki: &Pki, backend: SocketAddr, mutual: bool) -> SocketAddr {
    let settings = TlsServerSettings {
        cert_file: Some(pki.server_cert.clone()),
        key_file: Some(pki.server_key.clone()),
        client_ca_file: mutual.then(|| pki.ca.clone()),
        min_version: None,
    };
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(settings.server_config(&[b"http/1.1"]).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // handshake refused: the client sees the failure
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

fn batch(seed: u8) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..3u8)
                .map(|i| Span {
                    trace_id: vec![seed; 16],
                    span_id: vec![i + 1; 8],
                    name: format!("tls-{i}"),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_000_000_100,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }]
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Builds and starts the exporter with `tls` (a YAML flow map) against `endpoint`,
/// sending in the caller's task without retries.
async fn exporter(endpoint: &str, tls: &str) -> Result<Arc<dyn Exporter>, String> {
    let yaml = format!(
        "endpoint: {endpoint}\ntls: {tls}\ntraces_index: tls-test\n\
         sending_queue: {{enabled: false}}\nretry_on_failure: {{enabled: false}}\n\
         flush: {{interval: 20ms}}\n"
    );
    let FactoryRef::Exporter(factory) =
        FactoryRef::Exporter(&teletrace_exporters::elasticsearch::ElasticsearchFactory)
    else {
        unreachable!()
    };
    let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let config = factory.parse_config(&value).map_err(|e| e.to_string())?;
    let ctx = BuildContext {
        id: ComponentId::parse("elasticsearch/tls").unwrap(),
        pipeline: None,
        metrics: Metrics::new(),
        host: Host::default(),
    };
    let exporter = factory.create(&ctx, config).map_err(|e| e.to_string())?;
    exporter
        .start(&Host::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(exporter)
}

/// Consumes one batch; `Ok` when it reached the node.
async fn deliver(exporter: &Arc<dyn Exporter>, seed: u8) -> Result<(), String> {
    exporter
        .consume(Traces::new(batch(seed)))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn ca_file_and_server_name_override() {
    let pki = pki();
    let node = MockEs::start().await;
    let front = tls_front(&pki, node.addr, false).await;
    // The certificate names localhost only.
    let by_name = exporter(
        &format!("https://localhost:{}", front.port()),
        &format!("{{ca_file: {}}}", p(&pki.ca)),
    )
    .await
    .unwrap();
    deliver(&by_name, 1).await.unwrap();
    // By IP, the name does not match unless server_name_override says what to expect.
    let by_ip = exporter(
        &format!("https://{front}"),
        &format!("{{ca_file: {}}}", p(&pki.ca)),
    )
    .await
    .unwrap();
    // (The TLS failure itself is logged; the send is a retryable error.)
    assert!(deliver(&by_ip, 2).await.is_err());
    let overridden = exporter(
        &format!("https://{front}"),
        &format!(
            "{{ca_file: {}, server_name_override: localhost}}",
            p(&pki.ca)
        ),
    )
    .await
    .unwrap();
    deliver(&overridden, 3).await.unwrap();
    let wrong = exporter(
        &format!("https://{front}"),
        &format!(
            "{{ca_file: {}, server_name_override: elsewhere.example}}",
            p(&pki.ca)
        ),
    )
    .await
    .unwrap();
    assert!(deliver(&wrong, 4).await.is_err());
    // Another CA is not trusted.
    let untrusted = exporter(
        &format!("https://localhost:{}", front.port()),
        &format!("{{ca_file: {}}}", p(&pki.other_ca)),
    )
    .await
    .unwrap();
    assert!(deliver(&untrusted, 5).await.is_err());
    let bulks = node.bulks();
    assert_eq!(bulks.len(), 2, "only the verified connections got through");
    assert!(node.violations().is_empty(), "{:?}", node.violations());
}

#[tokio::test]
async fn mutual_tls_sends_the_client_certificate() {
    let pki = pki();
    let node = MockEs::start().await;
    let front = tls_front(&pki, node.addr, true).await;
    let endpoint = format!("https://localhost:{}", front.port());
    let with_cert = exporter(
        &endpoint,
        &format!(
            "{{ca_file: {}, cert_file: {}, key_file: {}}}",
            p(&pki.ca),
            p(&pki.client_cert),
            p(&pki.client_key)
        ),
    )
    .await
    .unwrap();
    deliver(&with_cert, 1).await.unwrap();
    let without = exporter(&endpoint, &format!("{{ca_file: {}}}", p(&pki.ca)))
        .await
        .unwrap();
    assert!(deliver(&without, 2).await.is_err());
    assert_eq!(node.bulks().len(), 1);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca() {
    let pki = pki();
    let node = MockEs::start().await;
    let front = tls_front(&pki, node.addr, false).await;
    let endpoint = format!("https://{front}");
    let strict = exporter(&endpoint, "{}").await.unwrap();
    assert!(
        deliver(&strict, 1).await.is_err(),
        "system roots do not know the test CA"
    );
    let lax = exporter(&endpoint, "{insecure_skip_verify: true}")
        .await
        .unwrap();
    deliver(&lax, 2).await.unwrap();
    assert_eq!(node.bulks().len(), 1);
}
