//! Tag values with counts, and statistics over numeric tags, among matching spans.

use super::filter::{span_attribute_exists, Filter, JSON_J, JSON_J_KEY};
use super::load::read_value;
use super::plan::Matching;
use super::sql::Sql;
use super::tag::{Column, Tag};
use crate::sqlite::batch::Source;
use crate::sqlite::errors::storage_error;
use crate::sqlite::value::{sql_value_json, SqlValue, STR};
use sqlx::{Row as _, SqliteConnection};
use std::collections::BTreeMap;
use teletrace_core::storage::{KeyValueFilter, Statistic, StorageError, TagValueCount, Timeframe};

/// Most values `tag_values` returns (the most frequent ones).
pub(crate) const MAX_TAG_VALUES: i64 = 10_000;

/// How a tag's values are reached from span `s`: joins, the value and type expressions,
/// and whether a span may carry several rows for it.
struct Reach {
    joins: Sql,
    value: String,
    type_expr: String,
    per_span_many: bool,
    numeric: bool,
}

fn reach(tag: &Tag, numeric_only: bool) -> Reach {
    let attribute = |joins: Sql, many: bool| Reach {
        joins,
        value: "a.value".into(),
        type_expr: "a.type".into(),
        per_span_many: many,
        numeric: true,
    };
    let numeric_guard = if numeric_only {
        " AND a.type IN ('Int', 'Double')"
    } else {
        ""
    };
    match tag {
        Tag::Span { column, kind } => Reach {
            joins: Sql::default(),
            value: format!("s.{column}"),
            type_expr: "NULL".into(),
            per_span_many: false,
            numeric: *kind == Column::Int,
        },
        Tag::Scope { column } => Reach {
            joins: Sql::new(" JOIN scopes AS sc ON sc.id = s.instrumentation_scope_id"),
            value: format!("sc.{column}"),
            type_expr: "NULL".into(),
            per_span_many: false,
            numeric: false,
        },
        Tag::EventName => Reach {
            joins: Sql::new(" JOIN events AS e ON e.span_id = s.span_id"),
            value: "e.name".into(),
            type_expr: "NULL".into(),
            per_span_many: true,
            numeric: false,
        },
        Tag::Attribute { source, key } => {
            let (head, many) = match source {
                Source::Span => return span_attribute_reach(key, numeric_only),
                Source::Resource => (
                    " JOIN resource_set_members AS m ON m.resource_set_id = s.resource_set_id \
                     JOIN resource_attributes AS a ON a.resource_id = m.resource_attribute_id AND a.key = ",
                    false,
                ),
                Source::Scope => (
                    " JOIN scope_attributes AS a ON a.scope_id = s.instrumentation_scope_id AND a.key = ",
                    false,
                ),
                Source::Event => (
                    " JOIN events AS e ON e.span_id = s.span_id \
                     JOIN event_attributes AS a ON a.event_id = e.id AND a.key = ",
                    true,
                ),
                Source::Link => (
                    " JOIN links AS l ON l.span_id = s.span_id \
                     JOIN link_attributes AS a ON a.link_id = l.id AND a.key = ",
                    true,
                ),
            };
            let mut joins = Sql::new(head);
            joins.text_param(key).push(numeric_guard);
            attribute(joins, many)
        }
    }
}

/// A span attribute, read from the span row's JSON.
fn span_attribute_reach(key: &str, numeric_only: bool) -> Reach {
    let mut joins = Sql::new(&format!(
        " JOIN json_each(s.attributes) AS j ON {JSON_J_KEY} = "
    ));
    joins
        .text_param(key)
        .push(" AND ")
        .append(&span_attribute_exists(key, None));
    if numeric_only {
        joins.push(&format!(" AND {} IN ('Int', 'Double')", JSON_J.type_name));
    }
    Reach {
        joins,
        value: JSON_J.value.into(),
        type_expr: JSON_J.type_name.into(),
        per_span_many: false,
        numeric: true,
    }
}

async fn matching(
    conn: &mut SqliteConnection,
    timeframe: Timeframe,
    filters: &[KeyValueFilter],
) -> Result<(Matching, Sql), StorageError> {
    let filters = filters
        .iter()
        .map(Filter::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let matching = Matching::new(timeframe, filters);
    let access = matching.choose(conn).await?;
    let from = matching.from(&access, None);
    Ok((matching, from))
}

/// Values of `tag` among matching spans, most frequent first.
pub(crate) async fn tag_values(
    conn: &mut SqliteConnection,
    tag: &str,
    timeframe: Timeframe,
    filters: &[KeyValueFilter],
) -> Result<Vec<TagValueCount>, StorageError> {
    let tag = Tag::parse(tag)?;
    if timeframe.start_ns > timeframe.end_ns {
        return Ok(Vec::new());
    }
    let sql = match &tag {
        Tag::Attribute {
            source: Source::Span,
            key,
        } if filters.is_empty() => span_attribute_values(key, timeframe),
        _ => {
            let (matching, from) = matching(conn, timeframe, filters).await?;
            let r = reach(&tag, false);
            let counted = if r.per_span_many {
                "count(DISTINCT s.rowid)"
            } else {
                "count(*)"
            };
            let mut sql = Sql::new(&format!(
                "SELECT {value} AS v, {ty} AS t, {counted} AS c",
                value = r.value,
                ty = r.type_expr
            ));
            sql.append(&from)
                .append(&r.joins)
                .append(&matching.where_clause());
            sql.push(" GROUP BY v, t ORDER BY c DESC, v LIMIT ")
                .int_param(MAX_TAG_VALUES);
            sql
        }
    };
    let rows = sql.fetch_all(conn).await.map_err(storage_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let value = read_value(row, 0)?;
        if value == SqlValue::Null {
            continue;
        }
        let type_name: Option<String> = row.try_get(1).map_err(storage_error)?;
        let count: i64 = row.try_get(2).map_err(storage_error)?;
        out.push(TagValueCount {
            value: sql_value_json(type_name.as_deref().unwrap_or(STR), value),
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    Ok(out)
}

/// Values of a span attribute over a timeframe, without filters: sealed segments that
/// lie wholly inside the timeframe are counted from their postings alone (each posting's
/// length is its span count); the other segments in range read their spans.
fn span_attribute_values(key: &str, timeframe: Timeframe) -> Sql {
    let start = i64::try_from(timeframe.start_ns).unwrap_or(i64::MAX);
    let end = i64::try_from(timeframe.end_ns).unwrap_or(i64::MAX);
    let inside = |sql: &mut Sql| {
        sql.push("(sealed = 1 AND min_start_time_unix_nano >= ")
            .int_param(start)
            .push(" AND max_start_time_unix_nano <= ")
            .int_param(end)
            .push(")");
    };
    let mut sql = Sql::new(
        "SELECT v, t, sum(c) AS c FROM (\
         SELECT a.value AS v, a.type AS t, json_array_length(a.span_rowids) AS c \
         FROM span_attribute_postings AS a WHERE a.bucket IN (SELECT bucket FROM segments WHERE ",
    );
    inside(&mut sql);
    sql.push(") AND a.key = ").text_param(key);
    sql.push(&format!(
        " UNION ALL SELECT {value}, {ty}, count(*) FROM spans AS s \
         JOIN json_each(s.attributes) AS j ON {JSON_J_KEY} = ",
        value = JSON_J.value,
        ty = JSON_J.type_name
    ))
    .text_param(key)
    .push(" WHERE s.bucket IN (SELECT bucket FROM segments WHERE max_start_time_unix_nano >= ")
    .int_param(start)
    .push(" AND min_start_time_unix_nano <= ")
    .int_param(end)
    .push(" AND NOT ");
    inside(&mut sql);
    sql.push(") AND s.start_time_unix_nano BETWEEN ")
        .int_param(start)
        .push(" AND ")
        .int_param(end)
        .push(" AND ")
        .append(&span_attribute_exists(key, None))
        .push(" GROUP BY 1, 2) GROUP BY v, t ORDER BY c DESC, v LIMIT ")
        .int_param(MAX_TAG_VALUES);
    sql
}

fn as_f64(value: SqlValue) -> Option<f64> {
    match value {
        SqlValue::Int(i) => Some(i as f64),
        SqlValue::Real(d) => Some(d),
        _ => None,
    }
}

/// Min, max, mean and nearest-rank percentiles of the numeric values of `tag`.
pub(crate) async fn tag_statistics(
    conn: &mut SqliteConnection,
    tag: &str,
    timeframe: Timeframe,
    filters: &[KeyValueFilter],
    statistics: &[Statistic],
) -> Result<BTreeMap<Statistic, f64>, StorageError> {
    let tag = Tag::parse(tag)?;
    let mut out = BTreeMap::new();
    let r = reach(&tag, true);
    if !r.numeric || statistics.is_empty() || timeframe.start_ns > timeframe.end_ns {
        return Ok(out);
    }
    let (matching, from) = matching(conn, timeframe, filters).await?;
    let mut values = Sql::new(&format!("SELECT {} AS v", r.value));
    values
        .append(&from)
        .append(&r.joins)
        .append(&matching.where_clause());

    let mut summary = Sql::new("SELECT count(v), min(v), max(v), avg(v) FROM (");
    summary.append(&values).push(")");
    let Some(row) = summary.fetch_optional(conn).await.map_err(storage_error)? else {
        return Ok(out);
    };
    let n: i64 = row.try_get(0).map_err(storage_error)?;
    if n == 0 {
        return Ok(out);
    }
    let min = as_f64(read_value(&row, 1)?);
    let max = as_f64(read_value(&row, 2)?);
    let avg = as_f64(read_value(&row, 3)?);

    let percentile = |s: Statistic| -> Option<f64> {
        match s {
            Statistic::P50 => Some(0.50),
            Statistic::P75 => Some(0.75),
            Statistic::P90 => Some(0.90),
            Statistic::P95 => Some(0.95),
            Statistic::P99 => Some(0.99),
            _ => None,
        }
    };
    // Nearest rank: the smallest value with at least p of the values at or below it.
    let rank = |p: f64| -> i64 { ((p * n as f64).ceil() as i64).clamp(1, n) };
    let wanted: Vec<(Statistic, i64)> = statistics
        .iter()
        .filter_map(|s| percentile(*s).map(|p| (*s, rank(p))))
        .collect();
    let mut by_rank: BTreeMap<i64, f64> = BTreeMap::new();
    if !wanted.is_empty() {
        let mut ranked =
            Sql::new("SELECT rn, v FROM (SELECT v, row_number() OVER (ORDER BY v) AS rn FROM (");
        ranked
            .append(&values)
            .push(") WHERE v IS NOT NULL) WHERE rn IN ");
        ranked.list(wanted.iter().map(|(_, r)| SqlValue::Int(*r)));
        for row in ranked.fetch_all(conn).await.map_err(storage_error)? {
            let rank: i64 = row.try_get(0).map_err(storage_error)?;
            if let Some(v) = as_f64(read_value(&row, 1)?) {
                by_rank.insert(rank, v);
            }
        }
    }
    for s in statistics {
        let value = match s {
            Statistic::Min => min,
            Statistic::Max => max,
            Statistic::Avg => avg,
            other => wanted
                .iter()
                .find(|(w, _)| w == other)
                .and_then(|(_, r)| by_rank.get(r).copied()),
        };
        if let Some(v) = value {
            out.insert(*s, v);
        }
    }
    Ok(out)
}
