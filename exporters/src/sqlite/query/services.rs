//! Services and operations: `service.name` lives in the resource attributes, which
//! spans reach through their resource set, so a service is a handful of resource sets
//! and its spans are found with the `spans (resource_set_id)` index.

use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use crate::sqlite::value::{kind_name, kind_value, SqlValue};
use sqlx::{Row as _, SqliteConnection};
use std::collections::HashMap;
use teletrace_core::storage::{Operation, StorageError};

/// The service name the OpenTelemetry-to-Jaeger translation gives a resource without
/// `service.name`.
pub(crate) const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// Every `service.name` (string-valued) some stored resource carries, sorted.
pub(crate) async fn services(conn: &mut SqliteConnection) -> Result<Vec<String>, StorageError> {
    let rows = sqlx::query(
        "SELECT DISTINCT a.value FROM resource_attributes AS a \
         WHERE a.key = 'service.name' AND a.type = 'Str' AND EXISTS \
         (SELECT 1 FROM resource_set_members AS m WHERE m.resource_attribute_id = a.resource_id) \
         ORDER BY a.value",
    )
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(storage_error))
        .collect()
}

/// The resource sets whose `service.name` is `service` (as `SELECT resource_set_id`).
pub(crate) fn sets_of(service: &str) -> Sql {
    let mut sql = Sql::new(
        "SELECT m.resource_set_id FROM resource_attributes AS a \
         JOIN resource_set_members AS m ON m.resource_attribute_id = a.resource_id \
         WHERE a.key = 'service.name' AND a.type = 'Str' AND a.value = ",
    );
    sql.text_param(service);
    sql
}

/// `service.name` of every resource set that has one (sets without one are absent: see
/// [`service_of`]).
pub(crate) async fn service_by_set(
    conn: &mut SqliteConnection,
) -> Result<HashMap<String, String>, StorageError> {
    let rows = sqlx::query(
        "SELECT m.resource_set_id, a.value FROM resource_attributes AS a \
         JOIN resource_set_members AS m ON m.resource_attribute_id = a.resource_id \
         WHERE a.key = 'service.name' AND a.type = 'Str'",
    )
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in &rows {
        let set: String = row.try_get(0).map_err(storage_error)?;
        let service: String = row.try_get(1).map_err(storage_error)?;
        out.insert(set, service);
    }
    Ok(out)
}

/// The service of resource set `set` per `services` ([`NO_SERVICE_NAME`] when it has
/// none).
pub(crate) fn service_of<'a>(services: &'a HashMap<String, String>, set: Option<&str>) -> &'a str {
    set.and_then(|s| services.get(s))
        .map_or(NO_SERVICE_NAME, String::as_str)
}

/// Distinct (name, kind) of the spans of `service`, optionally of one kind.
pub(crate) async fn operations(
    conn: &mut SqliteConnection,
    service: &str,
    span_kind: Option<i32>,
) -> Result<Vec<Operation>, StorageError> {
    let mut sql = Sql::new(
        "SELECT DISTINCT s.name, s.kind FROM spans AS s INDEXED BY spans_resource_set_index \
         WHERE s.resource_set_id IN (",
    );
    sql.append(&sets_of(service)).push(")");
    if let Some(kind) = span_kind {
        sql.push(" AND s.kind = ")
            .param(SqlValue::Text(kind_name(kind).to_string()));
    }
    let rows = sql.fetch_all(conn).await.map_err(storage_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: Option<String> = row.try_get(0).map_err(storage_error)?;
        let kind: Option<String> = row.try_get(1).map_err(storage_error)?;
        out.push(Operation {
            name: name.unwrap_or_default(),
            span_kind: kind.as_deref().and_then(kind_value).unwrap_or(0),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}
