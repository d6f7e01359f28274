use super::*;
use crate::test_util::{one_span_traces, Sink};
use std::collections::HashMap;
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::registry::parse_typed_config;

#[derive(Default)]
struct FakeHost {
    env: HashMap<String, String>,
    files: HashMap<String, String>,
}

impl Host for FakeHost {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }
}

fn host(env: &[(&str, &str)], files: &[(&str, &str)]) -> Arc<FakeHost> {
    Arc::new(FakeHost {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        files: files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn parse(yaml: &str) -> Result<ResourceDetectionConfig, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    parse_typed_config::<ResourceDetectionConfig>(&value).map_err(|e| e.to_string())
}

fn strings(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const LINUX: [(&str, &str); 6] = [
    ("/proc/sys/kernel/hostname", "web-1\n"),
    ("/proc/sys/kernel/ostype", "Linux\n"),
    ("/proc/sys/kernel/osrelease", "6.1.0\n"),
    ("/proc/sys/kernel/version", "#1 SMP\n"),
    ("/etc/hosts", "127.0.0.1 localhost\n10.0.0.5 web-1.example.com web-1 # me\n"),
    ("/etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
];

#[test]
fn defaults_match_the_collector() {
    let c = parse("").unwrap();
    assert_eq!(c, ResourceDetectionConfig::default());
    assert!(c.override_);
    assert_eq!(c.timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.system.hostname_sources, ["dns", "os"]);
    assert!(c.system.enabled("host.name") && c.system.enabled("os.type"));
    assert!(!c.system.enabled("host.arch") && !c.system.enabled("os.description"));
}

#[test]
fn env_reads_resource_attributes_and_service_name() {
    let h = host(
        &[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs, deployment.environment=prod,team=a%2Cb",
            ),
            ("OTEL_SERVICE_NAME", "checkout"),
        ],
        &[],
    );
    let found = detectors::env(h.as_ref()).unwrap();
    assert_eq!(
        strings(&found),
        pairs(&[
            ("deployment.environment", "prod"),
            ("team", "a,b"),
            ("service.name", "checkout")
        ])
    );
    let bad = host(&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")], &[]);
    assert!(detectors::env(bad.as_ref())
        .unwrap_err()
        .contains("invalid resource format"));
}

#[test]
fn system_reports_enabled_attributes() {
    let c = parse(
        "detectors: [system]\nsystem:\n  resource_attributes:\n    host.arch: {enabled: true}\n    os.description: {enabled: true}\n    os.version: {enabled: true}\n",
    )
    .unwrap();
    let h = host(&[], &LINUX);
    let found = strings(&detectors::system(h.as_ref(), &c.system).unwrap());
    let arch = detectors::host_arch(std::env::consts::ARCH);
    assert_eq!(
        found,
        pairs(&[
            ("host.name", "web-1.example.com"),
            ("host.arch", arch),
            ("os.type", detectors::os_type(std::env::consts::OS)),
            (
                "os.description",
                &format!(
                    "Debian GNU/Linux 12 (bookworm) (Linux 6.1.0 #1 SMP {})",
                    std::env::consts::ARCH
                )
            ),
            ("os.version", "12"),
        ])
    );
    let os_only = parse("system: {hostname_sources: [os]}").unwrap();
    let found = strings(&detectors::system(h.as_ref(), &os_only.system).unwrap());
    assert_eq!(found[0], ("host.name".to_string(), "web-1".to_string()));
}

#[test]
fn the_first_detector_to_set_an_attribute_wins() {
    let h = host(
        &[("OTEL_RESOURCE_ATTRIBUTES", "host.name=from-env")],
        &LINUX,
    );
    let env_first = parse("detectors: [env, system]").unwrap();
    let system_first = parse("detectors: [system, env]").unwrap();
    let found = strings(&detect(&env_first, h.as_ref()));
    assert_eq!(found[0], ("host.name".to_string(), "from-env".to_string()));
    let found = strings(&detect(&system_first, h.as_ref()));
    assert_eq!(
        found[0],
        ("host.name".to_string(), "web-1.example.com".to_string())
    );
    let only = parse("detectors: [env, system]\nattributes: [os.type]").unwrap();
    assert_eq!(strings(&detect(&only, h.as_ref())).len(), 1);
}

#[tokio::test]
async fn override_decides_who_wins_on_the_resource() {
    let h = host(
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=detected,region=eu",
        )],
        &[],
    );
    for (yaml, expected_service) in [
        ("detectors: [env]", "detected"),
        ("detectors: [env]\noverride: false", "svc"),
    ] {
        let sink = Arc::new(Sink::default());
        let p = ResourceDetectionProcessor::new(parse(yaml).unwrap(), h.clone(), sink.clone());
        p.start(&teletrace_core::Host::default()).await.unwrap();
        p.consume(one_span_traces("svc", "op", vec![]))
            .await
            .unwrap();
        let resource = &sink.resources()[0];
        assert_eq!(
            strings(&resource.attributes),
            pairs(&[("service.name", expected_service), ("region", "eu")]),
            "{yaml}"
        );
    }
}

#[test]
fn config_errors_name_the_key() {
    let e = parse("detectors: [env, ec2]").unwrap_err();
    assert!(
        e.starts_with("detectors[1]: unsupported detector \"ec2\""),
        "{e}"
    );
    let e = parse("timeout: 0s").unwrap_err();
    assert!(e.starts_with("timeout: "), "{e}");
    let e = parse("system: {hostname_sources: [magic]}").unwrap_err();
    assert!(e.starts_with("system::hostname_sources: "), "{e}");
    let e = parse("system: {resource_attributes: {host.colour: {enabled: true}}}").unwrap_err();
    assert!(e.starts_with("system::resource_attributes: "), "{e}");
    let e = parse("ec2: {tags: [a]}").unwrap_err();
    assert!(e.contains("ec2"), "{e}");
    assert!(parse("system: {resource_attributes: {host.ip: {enabled: true}}}").is_ok());
}
