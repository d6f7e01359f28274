//! Jaeger-style trace search: the spans matching service, operation, duration range and
//! tags are walked newest first (through the planner of [`super::plan`], so a selective
//! condition drives the search from its index), and distinct trace IDs are collected
//! until the limit is reached.

use super::filter::{span_attribute_exists, AttributeColumns, Filter, JSON_J, TABLE_A};
use super::plan::Matching;
use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use crate::sqlite::value::{kind_value, unhex, SqlValue, KINDS};
use futures::TryStreamExt as _;
use serde_json::Value as Json;
use sqlx::{Row as _, SqliteConnection};
use std::collections::HashSet;
use teletrace_core::storage::{KeyValueFilter, Operator, StorageError, TraceQuery};

/// Most traces one search returns.
pub(crate) const MAX_TRACES: usize = 1_000;

fn filter(key: &str, operator: Operator, value: Json) -> Result<Filter, StorageError> {
    Filter::parse(&KeyValueFilter {
        key: key.to_string(),
        operator,
        value,
    })
}

/// IDs of the traces with spans matching `query`, most recent match first.
pub(crate) async fn find_trace_ids(
    conn: &mut SqliteConnection,
    query: &TraceQuery,
) -> Result<Vec<[u8; 16]>, StorageError> {
    let limit = query.limit.clamp(1, MAX_TRACES);
    if query.timeframe.start_ns > query.timeframe.end_ns {
        return Ok(Vec::new());
    }
    let mut filters = Vec::new();
    if let Some(service) = &query.service {
        filters.push(filter(
            "resource.attributes.service.name",
            Operator::Equals,
            Json::String(service.clone()),
        )?);
    }
    if let Some(operation) = &query.operation {
        filters.push(filter(
            "span.name",
            Operator::Equals,
            Json::String(operation.clone()),
        )?);
    }
    if let Some(min) = query.min_duration_ns {
        filters.push(filter(
            "externalFields.durationNano",
            Operator::Gte,
            Json::from(min),
        )?);
    }
    if let Some(max) = query.max_duration_ns {
        filters.push(filter(
            "externalFields.durationNano",
            Operator::Lte,
            Json::from(max),
        )?);
    }
    let matching = Matching::new(query.timeframe, filters);
    let access = matching.choose(conn).await?;
    let mut sql = Sql::new("SELECT s.trace_id");
    sql.append(&matching.from(&access, Some("start_time_index")))
        .append(&matching.where_clause());
    for (key, value) in &query.tags {
        sql.push(" AND ").append(&tag_predicate(key, value));
    }
    sql.push(" ORDER BY s.start_time_unix_nano DESC");

    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut rows = sql.fetch(conn).map_err(storage_error)?;
    while let Some(row) = rows.try_next().await.map_err(storage_error)? {
        let hex: String = row.try_get(0).map_err(storage_error)?;
        if !seen.insert(hex.clone()) {
            continue;
        }
        if let Some(id) = unhex(&hex).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
            ids.push(id);
            if ids.len() >= limit {
                break;
            }
        }
    }
    Ok(ids)
}

/// `value` compared with attribute rows `a` (`value`, `type`) as Jaeger compares tags:
/// as text, so `"500"` matches the string `500` and the integer 500, `"true"` the
/// boolean.
fn value_match(value: &str, columns: AttributeColumns<'_>) -> Sql {
    let (v, ty) = (columns.value, columns.type_name);
    let mut sql = Sql::new(&format!("(({ty} IN ('Str', 'Slice', 'Map') AND {v} = "));
    sql.text_param(value).push(")");
    let trimmed = value.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        sql.push(&format!(" OR ({ty} = 'Int' AND {v} = "))
            .int_param(i)
            .push(")");
    }
    if let Ok(d) = trimmed.parse::<f64>() {
        sql.push(&format!(" OR ({ty} = 'Double' AND {v} = "))
            .param(SqlValue::Real(d))
            .push(")");
    }
    match trimmed {
        "true" => {
            sql.push(&format!(" OR ({ty} = 'Bool' AND {v} = 1)"));
        }
        "false" => {
            sql.push(&format!(" OR ({ty} = 'Bool' AND {v} = 0)"));
        }
        _ => {}
    }
    sql.push(")");
    sql
}

/// A tag matches an attribute of the span, its resource or one of its events, or one
/// of the tags the OTLP-to-Jaeger translation derives from span fields.
fn tag_predicate(key: &str, value: &str) -> Sql {
    let mut sql = Sql::new("(");
    sql.append(&span_attribute_exists(
        key,
        Some(&value_match(value, JSON_J)),
    ))
    .push(
        " OR s.resource_set_id IN (SELECT m.resource_set_id FROM resource_set_members AS m \
             WHERE m.resource_attribute_id IN (SELECT a.resource_id FROM resource_attributes AS a \
             WHERE a.key = ",
    )
    .text_param(key)
    .push(" AND ")
    .append(&value_match(value, TABLE_A))
    .push(
        ")) OR EXISTS (SELECT 1 FROM events AS e JOIN event_attributes AS a ON a.event_id = e.id \
             WHERE e.span_id = s.span_id AND a.key = ",
    )
    .text_param(key)
    .push(" AND ")
    .append(&value_match(value, TABLE_A))
    .push(")");
    if let Some(derived) = derived_tag(key, value) {
        sql.push(" OR ").append(&derived);
    }
    sql.push(")");
    sql
}

/// The condition for a tag the translation derives from span fields, if `key` is one.
fn derived_tag(key: &str, value: &str) -> Option<Sql> {
    let column = |expr: &str, v: SqlValue| {
        let mut sql = Sql::new(&format!("{expr} = "));
        sql.param(v);
        sql
    };
    let text = |v: &str| SqlValue::Text(v.to_string());
    match key {
        "error" => match value.trim() {
            "true" => Some(Sql::new("s.span_status_code = 'Error'")),
            "false" => Some(Sql::new("s.span_status_code != 'Error'")),
            _ => None,
        },
        "span.kind" => {
            let kind = kind_value(value.trim()).filter(|k| *k > 0)?;
            let name = KINDS.get(usize::try_from(kind).ok()?)?;
            Some(column("s.kind", text(name)))
        }
        "otel.status_code" => match value.trim().to_ascii_uppercase().as_str() {
            "OK" => Some(Sql::new("s.span_status_code = 'Ok'")),
            "ERROR" => Some(Sql::new("s.span_status_code = 'Error'")),
            _ => None,
        },
        "otel.status_description" => Some(column("s.span_status_message", text(value))),
        "w3c.tracestate" => Some(column("s.trace_state", text(value))),
        "otel.scope.name" | "otel.scope.version" => {
            let field = if key == "otel.scope.name" {
                "name"
            } else {
                "version"
            };
            let mut sql = Sql::new(&format!(
                "s.instrumentation_scope_id IN (SELECT sc.id FROM scopes AS sc WHERE sc.{field} = "
            ));
            sql.text_param(value).push(")");
            Some(sql)
        }
        _ => None,
    }
}
