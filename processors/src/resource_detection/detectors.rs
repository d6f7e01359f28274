//! The `env` and `system` detectors. Each returns the attributes it found, in order;
//! reading the environment and files goes through [`Host`] so tests can supply their own.

use super::config::SystemConfig;
use crate::matching::value::string_value;
use teletrace_core::proto::tonic::common::v1::KeyValue;

/// Where detectors read from: environment variables and files.
pub trait Host: Send + Sync {
    /// The environment variable `name`, if set.
    fn env(&self, name: &str) -> Option<String>;
    /// The contents of the file at `path`, if readable.
    fn read(&self, path: &str) -> Option<String>;
}

/// The real machine.
pub struct RealHost;

impl Host for RealHost {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(string_value(value)),
        ..Default::default()
    }
}

/// The `env` detector: `OTEL_RESOURCE_ATTRIBUTES` (`key=value` pairs separated by commas,
/// values percent-decoded), then `OTEL_SERVICE_NAME`, which wins over a `service.name`
/// given in `OTEL_RESOURCE_ATTRIBUTES`.
pub fn env(host: &dyn Host) -> Result<Vec<KeyValue>, String> {
    let mut out: Vec<KeyValue> = Vec::new();
    if let Some(raw) = host.env("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!(
                    "OTEL_RESOURCE_ATTRIBUTES: invalid resource format in {pair:?}: expected key=value"
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("OTEL_RESOURCE_ATTRIBUTES: empty key in {pair:?}"));
            }
            let value = percent_decode(value.trim())
                .ok_or_else(|| format!("OTEL_RESOURCE_ATTRIBUTES: invalid escape in {pair:?}"))?;
            out.retain(|kv| kv.key != key);
            out.push(kv(key, value));
        }
    }
    if let Some(service) = host.env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()) {
        out.retain(|kv| kv.key != "service.name");
        out.push(kv("service.name", service));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `system` detector: `host.name` (from `hostname_sources`), `host.id`, `host.arch`,
/// `os.type`, `os.description`, `os.name`, `os.version`, each when enabled.
pub fn system(host: &dyn Host, config: &SystemConfig) -> Result<Vec<KeyValue>, String> {
    let mut out = Vec::new();
    if config.enabled("host.name") {
        let name = config
            .hostname_sources
            .iter()
            .find_map(|source| hostname(host, source))
            .ok_or_else(|| {
                format!(
                    "host.name: no hostname source worked (tried {:?})",
                    config.hostname_sources
                )
            })?;
        out.push(kv("host.name", name));
    }
    if config.enabled("host.id") {
        if let Some(id) = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| host.read(p))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
        {
            out.push(kv("host.id", id));
        }
    }
    if config.enabled("host.arch") {
        out.push(kv("host.arch", host_arch(std::env::consts::ARCH)));
    }
    if config.enabled("os.type") {
        out.push(kv("os.type", os_type(std::env::consts::OS)));
    }
    let release = host.read("/etc/os-release").unwrap_or_default();
    let field = |name: &str| os_release_field(&release, name);
    if config.enabled("os.description") {
        let kernel = ["ostype", "osrelease", "version"]
            .iter()
            .filter_map(|f| host.read(&format!("/proc/sys/kernel/{f}")))
            .map(|s| s.trim().to_string())
            .chain(std::iter::once(std::env::consts::ARCH.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        let description = match field("PRETTY_NAME") {
            Some(pretty) => format!("{pretty} ({kernel})"),
            None => kernel,
        };
        out.push(kv("os.description", description));
    }
    if config.enabled("os.name") {
        if let Some(name) = field("NAME") {
            out.push(kv("os.name", name));
        }
    }
    if config.enabled("os.version") {
        if let Some(version) = field("VERSION_ID") {
            out.push(kv("os.version", version));
        }
    }
    Ok(out)
}

/// The host name from one source: `os` (the kernel's host name), `dns` (the canonical
/// name `/etc/hosts` gives the host name). `cname` and `lookup` need DNS queries Teletrace
/// does not make: they never succeed, so the next source is tried.
fn hostname(host: &dyn Host, source: &str) -> Option<String> {
    let os = || {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| host.read(p))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| host.env("HOSTNAME").filter(|s| !s.is_empty()))
    };
    match source {
        "os" => os(),
        "dns" => {
            let name = os()?;
            let hosts = host.read("/etc/hosts")?;
            hosts.lines().find_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut fields = line.split_whitespace();
                let _address = fields.next()?;
                let names: Vec<&str> = fields.collect();
                names
                    .contains(&name.as_str())
                    .then(|| names.first().map(|s| s.to_string()))
                    .flatten()
            })
        }
        _ => None,
    }
}

fn os_release_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// `host.arch` in the semantic conventions' names, from Rust's architecture name.
pub fn host_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// `os.type` in the semantic conventions' names, from Rust's OS name.
pub fn os_type(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}
