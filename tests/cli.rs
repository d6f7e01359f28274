//! The `teletrace` binary: subcommands, config errors (message, path, exit code, nothing
//! bound), and graceful shutdown on SIGTERM.

mod common;

use prost::Message;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use teletrace_core::proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn teletrace() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_teletrace"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn write_config(name: &str, yaml: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("teletrace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    path
}

const VALID: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
"#;

#[test]
fn components_lists_every_kind_with_stability() {
    let out = teletrace().arg("components").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "receivers:",
        "processors:",
        "exporters:",
        "extensions:",
        "otlp",
        "batch",
        "debug",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(text.lines().any(|l| l.contains("batch")
        && (l.contains("beta")
            || l.contains("stable")
            || l.contains("alpha")
            || l.contains("development"))));
}

#[test]
fn validate_accepts_a_good_config_and_print_config_expands() {
    let path = write_config("valid.yaml", VALID);
    let out = teletrace()
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = teletrace()
        .args(["print-config", "--config"])
        .arg(&path)
        .args(["--set", "exporters::debug::verbosity=${env:VERBOSITY}"])
        .env("VERBOSITY", "detailed")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["exporters"]["debug"]["verbosity"],
        serde_yaml::Value::from("detailed")
    );
}

#[test]
fn several_configs_merge_in_order() {
    let base = write_config("base.yaml", VALID);
    let overlay = write_config(
        "overlay.yaml",
        "exporters:\n  debug:\n    verbosity: normal\n",
    );
    let out = teletrace()
        .arg("print-config")
        .arg("--config")
        .arg(&base)
        .arg("--config")
        .arg(&overlay)
        .output()
        .unwrap();
    let printed: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["exporters"]["debug"]["verbosity"],
        serde_yaml::Value::from("normal")
    );
    assert_eq!(printed["processors"]["batch"], serde_yaml::Value::Null);
}

/// Each kind of config error: the message, its path, a non-zero exit, and nothing bound
/// (the receiver's fixed port is still free afterwards, and no "listening" line).
#[test]
fn config_errors_name_their_path_and_exit_before_binding() {
    let cases: &[(&str, &str, &str)] = &[
        ("unknown type", "exporters:\n  debug:\n  nosuch:\n", "exporters::nosuch: unknown exporter type \"nosuch\"; known exporter types:"),
        ("unknown key", "exporters:\n  debug:\n    verbosityy: basic\n", "exporters::debug::verbosityy: unknown field `verbosityy`"),
        ("invalid value", "exporters:\n  debug:\n    verbosity: loud\n", "exporters::debug::verbosity: verbosity level \"loud\" is not supported"),
        ("invalid duration", "processors:\n  batch:\n    timeout: soon\n", "processors::batch::timeout:"),
        ("not configured", "service:\n  pipelines:\n    traces:\n      exporters: [debug, debug/missing]\n", "service::pipelines::traces::exporters: exporter \"debug/missing\" is not configured"),
        ("no receivers", "service:\n  pipelines:\n    traces:\n      receivers: []\n", "service::pipelines::traces::receivers: a pipeline needs at least one receiver"),
        ("no exporters", "service:\n  pipelines:\n    traces:\n      exporters: []\n", "service::pipelines::traces::exporters: a pipeline needs at least one exporter"),
        ("processor twice", "service:\n  pipelines:\n    traces:\n      processors: [batch, batch]\n", "service::pipelines::traces::processors: processor \"batch\" is listed more than once"),
        ("bad signal", "service:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n", "service::pipelines::metrics: signal \"metrics\" is not supported"),
        ("top level", "receiverz: {}\n", "receiverz: unknown top-level key"),
    ];
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = VALID.replace(
        "127.0.0.1:0\n      http",
        &format!("127.0.0.1:{port}\n      http"),
    );
    let base_path = write_config("base-errors.yaml", &base);
    for (what, overlay, expected) in cases {
        let overlay_path = write_config(&format!("{}.yaml", what.replace(' ', "-")), overlay);
        let out = teletrace()
            .arg("--config")
            .arg(&base_path)
            .arg("--config")
            .arg(&overlay_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            !stderr.contains("listening"),
            "{what}: something was bound:\n{stderr}"
        );
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port still free");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let path = write_config("many.yaml", "receivers:\n  nosuch:\nexporters:\n  debug:\n    bad: 1\nservice:\n  pipelines:\n    traces:\n      receivers: [nosuch]\n      exporters: [debug]\n");
    let out = teletrace()
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("receivers::nosuch") && stderr.contains("exporters::debug::bad"),
        "{stderr}"
    );
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(config: &std::path::Path) -> Running {
        let mut child = teletrace()
            .arg("--config")
            .arg(config)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing all of `needles`; returns it.
    fn wait_for(&mut self, needles: &[&str]) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!("no line with {needles:?}; saw:\n{}", self.seen.join("\n"))
                });
            self.seen.push(line.clone());
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }

    fn address(&mut self, protocol: &str) -> String {
        let line = self.wait_for(&[
            "listening",
            "receivers::otlp",
            &format!("protocol={protocol}"),
        ]);
        let plain = common::strip_ansi(&line);
        let at = plain.find("address=").expect("address field") + "address=".len();
        plain[at..].split_whitespace().next().unwrap().to_string()
    }
}

fn request(spans: usize, tag: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![7; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("{tag}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Spans accepted just before SIGTERM are exported: they sit in a batch with a long
/// timeout when the signal arrives, and the debug exporter prints every one on the way out.
#[test]
fn sigterm_drains_accepted_spans() {
    let config = VALID
        .replace(
            "  batch:\n",
            "  batch:\n    timeout: 60s\n    send_batch_size: 100000\n",
        )
        .replace("verbosity: basic", "verbosity: normal");
    let path = write_config("sigterm.yaml", &config);
    let mut running = Running::spawn(&path);
    let http = running.address("http");
    let client = reqwest::blocking::Client::new();
    for batch in 0..5 {
        let response = client
            .post(format!("http://{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request(20, &format!("sigterm{batch}")))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut printed = std::collections::BTreeSet::new();
    for line in running.seen.iter().cloned().chain(running.lines.try_iter()) {
        let line = common::strip_ansi(&line);
        for batch in 0..5 {
            for i in 0..20 {
                let name = format!("sigterm{batch}-{i}");
                if line
                    .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                    .any(|w| w == name)
                {
                    printed.insert(name);
                }
            }
        }
    }
    assert_eq!(
        printed.len(),
        100,
        "spans printed before exit: {}",
        printed.len()
    );
}
