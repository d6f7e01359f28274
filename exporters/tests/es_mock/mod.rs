//! An in-test Elasticsearch: a real HTTP server on 127.0.0.1 that speaks the part of the
//! REST API the exporter uses, strictly.
//!
//! - `PUT /_index_template/{name}` stores a template; `GET` returns it as Elasticsearch
//!   does (`{"index_templates": [{"name", "index_template"}]}`).
//! - `POST /_bulk` requires `Content-Type: application/x-ndjson`, parses every action and
//!   document line (an unknown action or meta key, a missing `_index`/`_id`, a duplicate
//!   JSON key, a missing final newline are request errors, 400), refuses `index` into a
//!   data stream and a data stream document without `@timestamp`, stores documents by
//!   index and `_id` (`index` overwrites, `create` answers 409 when the ID exists), and
//!   answers per item. Faults can be injected per `_id`: answer a status N times (or
//!   always) before storing.
//! - `POST /{index}/_refresh`, `POST /{index}/_search` with an `ids` query, `DELETE`.
//! - Every request must carry the expected `Authorization` header (401 otherwise) and the
//!   expected extra headers (400 otherwise).
//! - The whole node can be made to answer 503 to everything (`set_down`).

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post, put};
use axum::Router;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One bulk request as received.
#[derive(Debug, Clone)]
pub struct BulkRecord {
    /// `_id`s in the request, in order.
    pub ids: Vec<String>,
    /// The query string.
    pub query: String,
}

#[derive(Default)]
struct Inner {
    docs: BTreeMap<String, BTreeMap<String, Value>>,
    /// Writes per (index, id), to see overwrites.
    versions: HashMap<(String, String), u64>,
    templates: BTreeMap<String, Value>,
    bulks: Vec<BulkRecord>,
    /// `_id` -> (status, times left; `usize::MAX` = always).
    faults: HashMap<String, (u16, usize)>,
    requests: usize,
    down: bool,
    expected_auth: Option<String>,
    expected_headers: Vec<(String, String)>,
    /// Protocol violations seen (tests assert there are none).
    violations: Vec<String>,
}

/// A running mock node.
#[derive(Clone)]
pub struct MockEs {
    inner: Arc<Mutex<Inner>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl MockEs {
    /// Starts a node on an ephemeral port.
    pub async fn start() -> MockEs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener).await
    }

    /// Starts a node on `listener`.
    pub async fn start_on(listener: tokio::net::TcpListener) -> MockEs {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route(
                "/_index_template/{name}",
                put(put_template)
                    .get(get_template)
                    .delete(delete_template)
                    .post(put_template),
            )
            .route("/_bulk", post(bulk))
            .route("/{index}/_refresh", post(refresh).get(refresh))
            .route("/{index}/_search", post(search))
            .route("/_data_stream/{name}", any(delete_index))
            .route("/{index}", any(delete_index))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockEs { inner, addr }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Answer 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.with(|i| i.down = down);
    }

    /// Require this exact `Authorization` value.
    pub fn expect_auth(&self, value: &str) {
        self.with(|i| i.expected_auth = Some(value.to_string()));
    }

    /// Require this header on every request.
    pub fn expect_header(&self, name: &str, value: &str) {
        self.with(|i| {
            i.expected_headers
                .push((name.to_ascii_lowercase(), value.to_string()))
        });
    }

    /// Answer `status` for document `id` the next `times` times (`usize::MAX`: always).
    pub fn fail_id(&self, id: &str, status: u16, times: usize) {
        self.with(|i| i.faults.insert(id.to_string(), (status, times)));
    }

    /// Every bulk request so far.
    pub fn bulks(&self) -> Vec<BulkRecord> {
        self.with(|i| i.bulks.clone())
    }

    /// Requests of any kind so far.
    pub fn requests(&self) -> usize {
        self.with(|i| i.requests)
    }

    /// How many times a document was written.
    pub fn writes(&self, index: &str, id: &str) -> u64 {
        self.with(|i| {
            i.versions
                .get(&(index.to_string(), id.to_string()))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Protocol violations seen.
    pub fn violations(&self) -> Vec<String> {
        self.with(|i| i.violations.clone())
    }

    /// Stored templates by name.
    pub fn templates(&self) -> BTreeMap<String, Value> {
        self.with(|i| i.templates.clone())
    }
}

fn es_error(status: StatusCode, kind: &str, reason: String) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"type": kind, "reason": reason}, "status": status.as_u16()}).to_string(),
    )
        .into_response()
}

fn ok_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Common checks: down, auth, headers. `Some(response)` ends the request.
fn gate(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    inner.requests += 1;
    if inner.down {
        return Some(es_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_shards_exception",
            "node is down".into(),
        ));
    }
    if let Some(expected) = &inner.expected_auth {
        let got = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != expected {
            return Some(es_error(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                format!("unable to authenticate with provided credentials ({got:?})"),
            ));
        }
    }
    for (name, value) in &inner.expected_headers {
        let got = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        if got != Some(value.as_str()) {
            let message = format!("header {name} is {got:?}, expected {value:?}");
            inner.violations.push(message.clone());
            return Some(es_error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                message,
            ));
        }
    }
    None
}

async fn put_template(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        inner
            .violations
            .push(format!("template content-type {content_type:?}"));
        return es_error(
            StatusCode::NOT_ACCEPTABLE,
            "media_type",
            content_type.to_string(),
        );
    }
    let template: Value = match strict_parse(&body) {
        Ok(v) => v,
        Err(e) => return es_error(StatusCode::BAD_REQUEST, "x_content_parse_exception", e),
    };
    let patterns_ok = template["index_patterns"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    let mappings_ok = template["template"]["mappings"]["properties"].is_object();
    if !patterns_ok || !mappings_ok {
        return es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "index_patterns and template.mappings.properties are required".into(),
        );
    }
    inner.templates.insert(name, template);
    ok_json(StatusCode::OK, json!({"acknowledged": true}))
}

async fn get_template(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    match inner.templates.get(&name) {
        Some(t) => ok_json(
            StatusCode::OK,
            json!({"index_templates": [{"name": name, "index_template": t}]}),
        ),
        None => es_error(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            format!("index template matching [{name}] not found"),
        ),
    }
}

async fn delete_template(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    inner.templates.remove(&name);
    ok_json(StatusCode::OK, json!({"acknowledged": true}))
}

async fn delete_index(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(index): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    if method != Method::DELETE {
        return es_error(StatusCode::METHOD_NOT_ALLOWED, "method", method.to_string());
    }
    inner.docs.remove(&index);
    ok_json(StatusCode::OK, json!({"acknowledged": true}))
}

async fn refresh(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    ok_json(StatusCode::OK, json!({"_shards": {"failed": 0}}))
}

/// `{"query": {"ids": {"values": [...]}}}` or `match_all`, `size`.
async fn search(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    let request: Value = match strict_parse(&body) {
        Ok(v) => v,
        Err(e) => return es_error(StatusCode::BAD_REQUEST, "parsing_exception", e),
    };
    let Some(docs) = inner.docs.get(&index) else {
        return es_error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            format!("no such index [{index}]"),
        );
    };
    let wanted: Option<HashSet<String>> = request["query"]["ids"]["values"].as_array().map(|ids| {
        ids.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    let hits: Vec<Value> = docs
        .iter()
        .filter(|(id, _)| wanted.as_ref().is_none_or(|w| w.contains(*id)))
        .map(|(id, doc)| json!({"_index": index, "_id": id, "_source": doc}))
        .collect();
    ok_json(
        StatusCode::OK,
        json!({"hits": {"total": {"value": hits.len(), "relation": "eq"}, "hits": hits}}),
    )
}

/// The index is a data stream when a template with `data_stream` names it.
fn is_data_stream(inner: &Inner, index: &str) -> bool {
    inner.templates.values().any(|t| {
        t.get("data_stream").is_some()
            && t["index_patterns"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(index)))
    })
}

async fn bulk(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Some(r) = gate(&mut inner, &headers) {
        return r;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-ndjson" {
        inner
            .violations
            .push(format!("bulk content-type {content_type:?}"));
        return es_error(
            StatusCode::NOT_ACCEPTABLE,
            "media_type_header_exception",
            format!("Content-Type {content_type:?} is not application/x-ndjson"),
        );
    }
    let pairs = match parse_ndjson(&body) {
        Ok(p) => p,
        Err(e) => {
            inner.violations.push(e.clone());
            return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", e);
        }
    };
    let mut record = BulkRecord {
        ids: Vec::new(),
        query: uri.query().unwrap_or("").to_string(),
    };
    let mut items = Vec::new();
    let mut errors = false;
    for (op, index, id, doc) in pairs {
        record.ids.push(id.clone());
        let mut item = json!({"_index": index, "_id": id});
        let fault = match inner.faults.get_mut(&id) {
            Some((status, left)) if *left > 0 => {
                if *left != usize::MAX {
                    *left -= 1;
                }
                Some(*status)
            }
            _ => None,
        };
        let data_stream = is_data_stream(&inner, &index);
        let exists = inner.docs.get(&index).is_some_and(|d| d.contains_key(&id));
        let (status, error) = if let Some(status) = fault {
            let kind = match status {
                429 => "es_rejected_execution_exception",
                400 => "document_parsing_exception",
                _ => "unavailable_shards_exception",
            };
            (
                status,
                Some((kind, format!("injected failure {status} for [{id}]"))),
            )
        } else if data_stream && op != "create" {
            (400, Some(("illegal_argument_exception", format!("only write ops with an op_type of create are allowed in data streams [{index}]"))))
        } else if data_stream && doc.get("@timestamp").is_none() {
            (
                400,
                Some((
                    "document_parsing_exception",
                    "data stream timestamp field [@timestamp] is missing".to_string(),
                )),
            )
        } else if op == "create" && exists {
            (
                409,
                Some((
                    "version_conflict_engine_exception",
                    format!("[{id}]: version conflict, document already exists"),
                )),
            )
        } else {
            inner
                .docs
                .entry(index.clone())
                .or_default()
                .insert(id.clone(), doc);
            *inner
                .versions
                .entry((index.clone(), id.clone()))
                .or_default() += 1;
            (if exists { 200 } else { 201 }, None)
        };
        item["status"] = json!(status);
        if let Some((kind, reason)) = error {
            errors = true;
            item["error"] = json!({"type": kind, "reason": reason});
        } else {
            item["result"] = json!(if status == 201 { "created" } else { "updated" });
        }
        items.push(json!({ op: item }));
    }
    inner.bulks.push(record);
    ok_json(
        StatusCode::OK,
        json!({"took": 1, "errors": errors, "items": items}),
    )
}

/// Parses a bulk body into (action, index, id, document), strictly.
fn parse_ndjson(body: &[u8]) -> Result<Vec<(String, String, String, Value)>, String> {
    if body.is_empty() {
        return Err("request body is required".into());
    }
    if !body.ends_with(b"\n") {
        return Err("The bulk request must be terminated by a newline [\\n]".into());
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
    if !lines.len().is_multiple_of(2) {
        return Err(format!(
            "{} lines: an action without a document",
            lines.len()
        ));
    }
    let mut out = Vec::new();
    for (n, pair) in lines.chunks(2).enumerate() {
        let action = strict_parse(pair[0].as_bytes()).map_err(|e| format!("action {n}: {e}"))?;
        let action = action
            .as_object()
            .ok_or(format!("action {n} is not an object"))?;
        if action.len() != 1 {
            return Err(format!("action {n} has {} keys", action.len()));
        }
        let (op, meta) = action.iter().next().ok_or("empty action")?;
        if op != "index" && op != "create" {
            return Err(format!("action {n}: unexpected op {op:?}"));
        }
        let meta = meta
            .as_object()
            .ok_or(format!("action {n}: meta is not an object"))?;
        for k in meta.keys() {
            if k != "_index" && k != "_id" {
                return Err(format!("action {n}: unexpected meta key {k:?}"));
            }
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .ok_or(format!("action {n}: no _index"))?;
        let id = meta
            .get("_id")
            .and_then(Value::as_str)
            .ok_or(format!("action {n}: no _id"))?;
        if id.is_empty() || id.len() > 512 {
            return Err(format!("action {n}: bad _id {id:?}"));
        }
        let doc = strict_parse(pair[1].as_bytes()).map_err(|e| format!("document {n}: {e}"))?;
        if !doc.is_object() {
            return Err(format!("document {n} is not an object"));
        }
        out.push((op.clone(), index.to_string(), id.to_string(), doc));
    }
    Ok(out)
}

/// Parses JSON refusing duplicate keys, as Elasticsearch does.
pub fn strict_parse(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value.0)
}

struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(StrictValue(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(de::Error::custom(format!("Duplicate field '{key}'")));
            }
        }
        Ok(StrictValue(Value::Object(out)))
    }
}
