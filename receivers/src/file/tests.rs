use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::io::Write;
use std::path::Path;
use teletrace_core::traces::json;

fn request(name: &str) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![9; 16],
                span_id: vec![8; 8],
                name: name.into(),
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }]
}

fn json_line(name: &str) -> Vec<u8> {
    let mut line = json::request_to_vec(&request(name));
    line.push(b'\n');
    line
}

fn proto_frame(name: &str) -> Vec<u8> {
    let body = ExportTraceServiceRequest {
        resource_spans: request(name),
    }
    .encode_to_vec();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn config(path: &Path, yaml: &str) -> FileReceiverConfig {
    let mut c: FileReceiverConfig = serde_yaml::from_str(yaml).unwrap();
    c.path = path.display().to_string();
    c
}

fn names(items: Vec<reader::Item>) -> (Vec<String>, Vec<ReadError>) {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(mut t) => names.push(
                t.resource_spans().unwrap()[0].scope_spans[0].spans[0]
                    .name
                    .clone(),
            ),
            Err(e) => errors.push(e),
        }
    }
    (names, errors)
}

fn read_all(tail: &mut Tail) -> (Vec<String>, Vec<ReadError>) {
    let mut items = Vec::new();
    for _ in 0..100 {
        items.extend(tail.poll());
        if tail.finished() {
            break;
        }
    }
    names(items)
}

#[test]
fn malformed_json_line_is_reported_with_file_and_line_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.json");
    append(&path, &json_line("a"));
    append(
        &path,
        b"{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"traceId\": \"zz\"}]}]}]}\n",
    );
    append(&path, b"\n");
    append(&path, &json_line("b"));
    append(&path, b"{\"resourceSpans\": [");
    let mut tail = Tail::new(&config(&path, "{}")).unwrap();
    let (names, errors) = read_all(&mut tail);
    assert_eq!(names, ["a", "b"]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let text = errors[0].to_string();
    assert!(
        text.starts_with(&format!("{}: line 2: ", path.display())),
        "{text}"
    );
    assert!(text.contains("traceId"), "{text}");
    assert_eq!(errors[1].at, "line 5");
    assert!(
        errors[1].message.contains("incomplete record"),
        "{}",
        errors[1]
    );
}

#[test]
fn corrupt_length_prefix_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.pb");
    let first = proto_frame("a");
    append(&path, &first);
    append(&path, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let mut tail = Tail::new(&config(&path, "format: proto")).unwrap();
    let (names, errors) = read_all(&mut tail);
    assert_eq!(names, ["a"]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].at, format!("offset {}", first.len()));
    assert!(errors[0].message.contains("length"), "{}", errors[0]);
}

#[test]
fn invalid_protobuf_message_is_skipped_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.pb");
    append(&path, &[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    append(&path, &proto_frame("b"));
    let mut tail = Tail::new(&config(&path, "format: proto")).unwrap();
    let (names, errors) = read_all(&mut tail);
    assert_eq!(names, ["b"]);
    assert_eq!(errors[0].at, "offset 0");
}

#[test]
fn rotated_files_are_read_oldest_first_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.json");
    append(
        &dir.path().join("spans-2024-01-02T00-00-00.000.json"),
        &json_line("2"),
    );
    append(
        &dir.path().join("spans-2024-01-01T00-00-00.000.json"),
        &json_line("1"),
    );
    append(&dir.path().join("spans-other.json"), &json_line("ignored"));
    append(&path, &json_line("3"));
    let mut tail = Tail::new(&config(&path, "{}")).unwrap();
    assert_eq!(read_all(&mut tail).0, ["1", "2", "3"]);
    let mut only_main = Tail::new(&config(&path, "include_rotated: false")).unwrap();
    assert_eq!(read_all(&mut only_main).0, ["3"]);
}

#[test]
fn following_reads_growth_partial_records_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.pb");
    append(&path, &proto_frame("old"));
    let mut tail = Tail::new(&config(
        &path,
        "{format: proto, follow: true, start_at: end}",
    ))
    .unwrap();
    assert!(tail.poll().is_empty());
    let frame = proto_frame("new");
    append(&path, &frame[..5]);
    assert!(tail.poll().is_empty(), "half a record waits");
    append(&path, &frame[5..]);
    assert_eq!(names(tail.poll()).0, ["new"]);
    // Rotation: the file is renamed, the rest of it is read, then the new file.
    append(&path, &proto_frame("last-before-rotation"));
    std::fs::rename(&path, dir.path().join("spans-2024-01-01T00-00-00.000.pb")).unwrap();
    append(&path, &proto_frame("after-rotation"));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(names(tail.poll()).0);
    }
    assert_eq!(got, ["last-before-rotation", "after-rotation"]);
    assert!(!tail.finished());
}

#[test]
fn missing_file_is_an_error_unless_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.json");
    let mut tail = Tail::new(&config(&path, "{}")).unwrap();
    let (_, errors) = read_all(&mut tail);
    assert_eq!(errors.len(), 1);
    assert!(tail.finished());
    let mut followed = Tail::new(&config(&path, "follow: true")).unwrap();
    assert!(followed.poll().is_empty());
    append(&path, &json_line("late"));
    assert_eq!(names(followed.poll()).0, ["late"]);
}

#[test]
fn bad_config_names_the_key() {
    use teletrace_core::ComponentConfig;
    let c = FileReceiverConfig::default();
    assert_eq!(c.validate().unwrap_err().0, "path");
    let c = FileReceiverConfig {
        path: "x".into(),
        compression: "gzip".into(),
        ..FileReceiverConfig::default()
    };
    assert_eq!(c.validate().unwrap_err().0, "compression");
    assert!(serde_yaml::from_str::<FileReceiverConfig>("start_at: middle").is_err());
    assert!(serde_yaml::from_str::<FileReceiverConfig>("include: [x]").is_err());
}
