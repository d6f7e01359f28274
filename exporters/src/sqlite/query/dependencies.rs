//! Service dependencies: every span with a parent, starting in the timeframe, is matched
//! to its parent (same span ID and trace, the parent starting at any time), the pairs
//! whose resource sets differ are counted per (parent set, child set), and the few set
//! pairs are folded into service pairs, dropping calls within one service.
//!
//! The match is a hash join done here rather than a join in SQLite: SQLite joins by
//! looking every parent up by span ID, random B-tree seeks per child (in every
//! segment's part of `span_id_index`; a single seek was already about 2 us, so seconds
//! over a million spans), while reading the spans in start-time order is cheap. So the spans are read in chunks of [`CHUNK`], each chunk as one row of
//! `group_concat` lists (span ID, trace ID, parent ID, resource set, error flag: a
//! handful of strings instead of a row per span), and a child is looked up in a map of
//! its own chunk, the previous one and (if still missing) the next one. A timeframe
//! covering most of the stored time range is read in storage order by a table scan
//! (walking an index costs a B-tree seek per row, several times a scan's cost per row);
//! a smaller one in start-time order from the start-time index. Either way a parent is
//! nearly always stored or started close to its child, so found in the window; the
//! rest are looked up by span ID at the end (in each segment's span ID index). Memory
//! stays bounded by three chunks.

use super::metrics::covers_most_spans;
use super::services::{service_by_set, service_of};
use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use crate::sqlite::value::SqlValue;
use sqlx::{Row as _, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use teletrace_core::storage::{DependencyLink, StorageError, Timeframe};

/// Spans read per query.
const CHUNK: usize = 50_000;

/// Parent span IDs looked up per query at the end.
const LOOKUP_BATCH: usize = 500;

/// Separates the values of a `group_concat` list (IDs and resource set IDs never hold
/// it).
const SEP: char = '\u{1f}';

fn clamp(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

fn malformed(what: &str) -> StorageError {
    StorageError::Backend(format!("dependencies: malformed chunk ({what})"))
}

/// Resource set IDs numbered in order of appearance (a span without one has "").
#[derive(Default)]
struct Sets {
    ids: Vec<String>,
    numbers: HashMap<String, u32>,
}

impl Sets {
    fn number(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.numbers.get(id) {
            return n;
        }
        let n = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.push(id.to_string());
        self.numbers.insert(id.to_string(), n);
        n
    }

    fn id(&self, number: u32) -> Option<&str> {
        self.ids
            .get(number as usize)
            .map(String::as_str)
            .filter(|id| !id.is_empty())
    }
}

/// A span as a parent: its trace and resource set.
#[derive(Clone, Copy)]
struct Parent {
    trace: u128,
    set: u32,
}

/// A child not matched in its own or the previous chunk: kept with its IDs as stored.
struct Unmatched {
    parent_id: String,
    trace_id: String,
    set: u32,
    error: bool,
}

/// Calls and errors per (parent set, child set), the sets differing.
#[derive(Default)]
struct Edges(HashMap<(u32, u32), (u64, u64)>);

impl Edges {
    fn add(&mut self, parent_set: u32, child_set: u32, error: bool) {
        if parent_set != child_set {
            let edge = self.0.entry((parent_set, child_set)).or_default();
            edge.0 += 1;
            edge.1 += u64::from(error);
        }
    }
}

/// The order spans are read in, and where the next chunk starts.
enum After {
    /// Storage order, after this rowid: a plain table scan, the cheapest way through
    /// most of the table (a trace's spans are stored close together, mostly in one
    /// batch, though an SDK's export delay can put a parent a few seconds away).
    Rowid(i64),
    /// Start-time order, after this (start time, span ID): the start-time index, for a
    /// timeframe holding a small part of the spans.
    Start(i64, String),
}

/// One chunk of spans, each column a `group_concat` list with one value per span.
struct Chunk {
    len: usize,
    last_rowid: i64,
    starts: String,
    span_ids: String,
    trace_ids: String,
    parent_ids: String,
    sets: String,
    errors: String,
}

impl Chunk {
    /// The first `limit` spans of `timeframe` after `after`, in its order.
    async fn read(
        conn: &mut SqliteConnection,
        timeframe: Timeframe,
        after: &After,
        limit: usize,
    ) -> Result<Chunk, StorageError> {
        let mut sql = Sql::new(
            "SELECT count(*), group_concat(start_time_unix_nano, char(31)), \
             group_concat(span_id, char(31)), group_concat(trace_id, char(31)), \
             group_concat(ifnull(parent_span_id, ''), char(31)), \
             group_concat(ifnull(resource_set_id, ''), char(31)), \
             group_concat(span_status_code = 'Error', ''), max(r) \
             FROM (SELECT rowid AS r, start_time_unix_nano, span_id, trace_id, \
             parent_span_id, resource_set_id, span_status_code FROM spans",
        );
        if let After::Rowid(_) = after {
            sql.push(" NOT INDEXED");
        }
        sql.push(" WHERE start_time_unix_nano BETWEEN ");
        sql.int_param(clamp(timeframe.start_ns))
            .push(" AND ")
            .int_param(clamp(timeframe.end_ns));
        match after {
            After::Rowid(rowid) => {
                sql.push(" AND rowid > ")
                    .int_param(*rowid)
                    .push(" ORDER BY rowid");
            }
            After::Start(start, span_id) => {
                sql.push(" AND (start_time_unix_nano, span_id) > (")
                    .int_param(*start)
                    .push(", ")
                    .text_param(span_id)
                    .push(") ORDER BY start_time_unix_nano, span_id");
            }
        }
        sql.push(" LIMIT ")
            .int_param(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(")");
        let row = sql.fetch_optional(conn).await.map_err(storage_error)?;
        let Some(row) = row else {
            return Err(malformed("no row"));
        };
        let text = |i: usize| -> Result<String, StorageError> {
            Ok(row
                .try_get::<Option<String>, _>(i)
                .map_err(storage_error)?
                .unwrap_or_default())
        };
        let len: i64 = row.try_get(0).map_err(storage_error)?;
        let last_rowid: Option<i64> = row.try_get(7).map_err(storage_error)?;
        Ok(Chunk {
            len: usize::try_from(len).unwrap_or(0),
            last_rowid: last_rowid.unwrap_or(0),
            starts: text(1)?,
            span_ids: text(2)?,
            trace_ids: text(3)?,
            parent_ids: text(4)?,
            sets: text(5)?,
            errors: text(6)?,
        })
    }

    /// The chunk's spans: (start, span ID, trace ID, parent ID, set ID, error).
    fn spans(&self) -> impl Iterator<Item = (&str, &str, &str, &str, &str, bool)> {
        self.starts
            .split(SEP)
            .zip(self.span_ids.split(SEP))
            .zip(self.trace_ids.split(SEP))
            .zip(self.parent_ids.split(SEP))
            .zip(self.sets.split(SEP))
            .zip(self.errors.bytes())
            .map(|(((((start, span), trace), parent), set), error)| {
                (start, span, trace, parent, set, error == b'1')
            })
    }
}

/// Whether `id` is `len` lowercase hex digits, as the exporter writes IDs (so that two
/// IDs with the same number are the same text, as the SQL join compared them).
fn is_hex(id: &str, len: usize) -> bool {
    id.len() == len && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A span ID as a map key; `None` for text the exporter would not have written (such a
/// child is matched by looking its parent up).
fn span_key(id: &str) -> Option<u64> {
    is_hex(id, 16)
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
}

/// A trace ID as a number, like [`span_key`].
fn trace_key(id: &str) -> Option<u128> {
    is_hex(id, 32)
        .then(|| u128::from_str_radix(id, 16).ok())
        .flatten()
}

/// Call edges among child spans starting in `timeframe`, sorted by (parent, child).
pub(crate) async fn dependencies(
    conn: &mut SqliteConnection,
    timeframe: Timeframe,
) -> Result<Vec<DependencyLink>, StorageError> {
    dependencies_in_chunks(conn, timeframe, CHUNK).await
}

/// [`dependencies`], reading `chunk` spans per query.
async fn dependencies_in_chunks(
    conn: &mut SqliteConnection,
    timeframe: Timeframe,
    chunk_len: usize,
) -> Result<Vec<DependencyLink>, StorageError> {
    if timeframe.start_ns > timeframe.end_ns {
        return Ok(Vec::new());
    }
    let mut sets = Sets::default();
    let mut edges = Edges::default();
    let mut previous: HashMap<u64, Parent> = HashMap::new();
    // Children of the previous chunk not found yet: tried once more against this chunk.
    let mut pending: Vec<Unmatched> = Vec::new();
    let mut unmatched: Vec<Unmatched> = Vec::new();
    let mut after =
        if covers_most_spans(conn, clamp(timeframe.start_ns), clamp(timeframe.end_ns)).await? {
            After::Rowid(i64::MIN)
        } else {
            After::Start(i64::MIN, String::new())
        };
    loop {
        let chunk = Chunk::read(conn, timeframe, &after, chunk_len).await?;
        if chunk.len == 0 {
            break;
        }
        let mut current: HashMap<u64, Parent> = HashMap::with_capacity(chunk.len);
        let mut last: Option<(i64, &str)> = None;
        let mut seen = 0;
        for (start, span_id, trace_id, _, set, _) in chunk.spans() {
            seen += 1;
            let start: i64 = start.parse().map_err(|_| malformed("start time"))?;
            if last.is_none_or(|(s, id)| (start, span_id) > (s, id)) {
                last = Some((start, span_id));
            }
            if let (Some(span), Some(trace)) = (span_key(span_id), trace_key(trace_id)) {
                let set = sets.number(set);
                current.insert(span, Parent { trace, set });
            }
        }
        if seen != chunk.len || chunk.errors.len() != chunk.len {
            return Err(malformed("list lengths differ"));
        }
        for child in pending.drain(..) {
            let parent = span_key(&child.parent_id).and_then(|p| current.get(&p));
            match (parent, trace_key(&child.trace_id)) {
                (Some(parent), Some(trace)) => {
                    if parent.trace == trace {
                        edges.add(parent.set, child.set, child.error);
                    }
                }
                _ => unmatched.push(child),
            }
        }
        for (_, _, trace_id, parent_id, set, error) in chunk.spans() {
            if parent_id.is_empty() {
                continue;
            }
            let set = sets.number(set);
            let found = span_key(parent_id)
                .and_then(|p| current.get(&p).or_else(|| previous.get(&p)))
                .zip(trace_key(trace_id));
            match found {
                Some((parent, trace)) => {
                    if parent.trace == trace {
                        edges.add(parent.set, set, error);
                    }
                }
                None => pending.push(Unmatched {
                    parent_id: parent_id.to_string(),
                    trace_id: trace_id.to_string(),
                    set,
                    error,
                }),
            }
        }
        after = match (&after, last) {
            (After::Rowid(_), _) => After::Rowid(chunk.last_rowid),
            (After::Start(..), Some((start, id))) => After::Start(start, id.to_string()),
            (After::Start(..), None) => break,
        };
        previous = current;
        if chunk.len < chunk_len {
            break;
        }
    }
    unmatched.append(&mut pending);
    match_by_lookup(conn, &unmatched, &mut sets, &mut edges).await?;
    if edges.0.is_empty() {
        return Ok(Vec::new());
    }

    let services = service_by_set(conn).await?;
    let mut links: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (&(parent, child), &(calls, errors)) in &edges.0 {
        let parent = service_of(&services, sets.id(parent));
        let child = service_of(&services, sets.id(child));
        if parent == child {
            continue;
        }
        let link = links.entry((parent, child)).or_default();
        link.0 += calls;
        link.1 += errors;
    }
    Ok(links
        .into_iter()
        .map(
            |((parent, child), (call_count, error_count))| DependencyLink {
                parent: parent.to_string(),
                child: child.to_string(),
                call_count,
                error_count,
            },
        )
        .collect())
}

/// Matches the children whose parent was in neither chunk by looking the parents up
/// by span ID.
async fn match_by_lookup(
    conn: &mut SqliteConnection,
    children: &[Unmatched],
    sets: &mut Sets,
    edges: &mut Edges,
) -> Result<(), StorageError> {
    let mut ids: Vec<&str> = children.iter().map(|c| c.parent_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // Parent span ID -> (trace ID, set).
    let mut parents: HashMap<String, (String, u32)> = HashMap::with_capacity(ids.len());
    for batch in ids.chunks(LOOKUP_BATCH) {
        // Span IDs are indexed per segment (migrations/0004): one seek per segment.
        let mut sql = Sql::new(
            "SELECT span_id, trace_id, resource_set_id FROM spans \
             WHERE bucket IN (SELECT bucket FROM segments) AND span_id IN ",
        );
        sql.list(batch.iter().map(|id| SqlValue::Text((*id).to_string())));
        for row in sql.fetch_all(conn).await.map_err(storage_error)? {
            let span: String = row.try_get(0).map_err(storage_error)?;
            let trace: String = row.try_get(1).map_err(storage_error)?;
            let set: Option<String> = row.try_get(2).map_err(storage_error)?;
            let set = sets.number(set.as_deref().unwrap_or(""));
            parents.insert(span, (trace, set));
        }
    }
    for child in children {
        if let Some((trace, set)) = parents.get(&child.parent_id) {
            if *trace == child.trace_id {
                edges.add(*set, child.set, child.error);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::test_support::{add_services, database, Lcg};

    /// What the join in SQLite answered before the hash join (the reference).
    async fn by_sql_join(conn: &mut SqliteConnection, timeframe: Timeframe) -> Vec<DependencyLink> {
        let rows = sqlx::query(
            "SELECT p.resource_set_id, s.resource_set_id, count(*), \
             sum(s.span_status_code = 'Error') \
             FROM spans AS s CROSS JOIN spans AS p ON p.span_id = s.parent_span_id \
             WHERE s.start_time_unix_nano BETWEEN ? AND ? \
             AND s.parent_span_id != '' AND p.trace_id = s.trace_id \
             AND p.resource_set_id IS NOT s.resource_set_id GROUP BY 1, 2",
        )
        .bind(clamp(timeframe.start_ns))
        .bind(clamp(timeframe.end_ns))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let services = service_by_set(conn).await.unwrap();
        let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for row in &rows {
            let parent: Option<String> = row.get(0);
            let child: Option<String> = row.get(1);
            let parent = service_of(&services, parent.as_deref()).to_string();
            let child = service_of(&services, child.as_deref()).to_string();
            if parent != child {
                let edge = edges.entry((parent, child)).or_default();
                edge.0 += row.get::<i64, _>(2) as u64;
                edge.1 += row.get::<i64, _>(3) as u64;
            }
        }
        edges
            .into_iter()
            .map(
                |((parent, child), (call_count, error_count))| DependencyLink {
                    parent,
                    child,
                    call_count,
                    error_count,
                },
            )
            .collect()
    }

    async fn insert_span(
        conn: &mut SqliteConnection,
        span_id: &str,
        trace_id: &str,
        parent: &str,
        set: Option<&str>,
        start: i64,
        error: bool,
    ) {
        sqlx::query(
            "INSERT INTO spans (span_id, trace_id, parent_span_id, name, kind, \
             start_time_unix_nano, end_time_unix_nano, dropped_span_attributes_count, \
             span_status_message, span_status_code, dropped_resource_attributes_count, \
             dropped_events_count, dropped_links_count, duration, ingestion_time_unix_nano, \
             instrumentation_scope_id, resource_set_id) \
             VALUES (?, ?, ?, 'op', 'Server', ?, ?, 0, '', ?, 0, 0, 0, 10, 0, 0, ?)",
        )
        .bind(span_id)
        .bind(trace_id)
        .bind(parent)
        .bind(start)
        .bind(start + 10)
        .bind(if error { "Error" } else { "Unset" })
        .bind(set)
        .execute(&mut *conn)
        .await
        .unwrap();
        // As the writer does: the segment (bucket 0) lists the span's start time.
        sqlx::query(
            "INSERT INTO segments (bucket, min_start_time_unix_nano, max_start_time_unix_nano, spans) \
             VALUES (0, ?1, ?1, 1) ON CONFLICT (bucket) DO UPDATE SET spans = spans + 1, \
             min_start_time_unix_nano = min(min_start_time_unix_nano, ?1), \
             max_start_time_unix_nano = max(max_start_time_unix_nano, ?1)",
        )
        .bind(start)
        .execute(conn)
        .await
        .unwrap();
    }

    /// Traces over four services (service a with two resource sets) and spans without a
    /// resource set, with clock skew (children starting before their parents), parents
    /// before the timeframe, parents never stored, a parent ID naming a span of another
    /// trace, and IDs in upper case (which only the lookup by ID can match).
    async fn store(conn: &mut SqliteConnection) -> Timeframe {
        add_services(conn, &[("a1", "a"), ("a2", "a"), ("b", "b"), ("c", "c")]).await;
        let sets = [Some("a1"), Some("a2"), Some("b"), Some("c"), None];
        let mut rng = Lcg(7);
        let mut next_span = 1u64;
        for t in 0..80u64 {
            let trace = format!("{:032x}", t + 1);
            let base = 1_000 + t as i64 * 100;
            let mut spans: Vec<(String, i64)> = Vec::new();
            for i in 0..(2 + rng.next(6)) {
                let id = format!("{next_span:016x}");
                next_span += 1;
                let (parent, start) = if i == 0 {
                    (String::new(), base)
                } else {
                    let (p, p_start) = &spans[rng.next(spans.len() as u64) as usize];
                    // Up to 300 ns before or after its parent: sometimes chunks apart.
                    (p.clone(), p_start + rng.next(600) as i64 - 300)
                };
                let parent = match rng.next(25) {
                    0 => format!("{:016x}", 1_000_000 + rng.next(1_000)), // never stored
                    1 if next_span > 10 => format!("{:016x}", rng.next(next_span - 1) + 1), // maybe another trace
                    2 => parent.to_uppercase(),
                    _ => parent,
                };
                let set = sets[rng.next(sets.len() as u64) as usize];
                insert_span(conn, &id, &trace, &parent, set, start, rng.next(4) == 0).await;
                spans.push((id, start));
            }
        }
        // An upper-case span ID, the parent of one child.
        insert_span(
            conn,
            "f0000000000000AB",
            &format!("{:032x}", 999),
            "",
            Some("c"),
            5_000,
            false,
        )
        .await;
        insert_span(
            conn,
            "f0000000000000ac",
            &format!("{:032x}", 999),
            "f0000000000000AB",
            Some("b"),
            5_001,
            true,
        )
        .await;
        Timeframe {
            start_ns: 3_000,
            end_ns: 7_500,
        }
    }

    #[tokio::test]
    async fn hash_join_equals_the_sql_join_for_any_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path()).await;
        let timeframe = store(&mut conn).await;
        // Most of the stored range (read in storage order) and small parts of it (read in
        // start-time order).
        for timeframe in [
            timeframe,
            Timeframe {
                start_ns: 0,
                end_ns: u64::MAX,
            },
            Timeframe {
                start_ns: 4_000,
                end_ns: 4_900,
            },
            Timeframe {
                start_ns: 6_000,
                end_ns: 8_000,
            },
        ] {
            let want = by_sql_join(&mut conn, timeframe).await;
            // Enough edges for the comparison to mean something.
            assert!(want.len() >= 6, "{want:?}");
            assert!(want.iter().any(|l| l.error_count > 0), "{want:?}");
            for chunk in [1, 2, 3, 7, 64, CHUNK] {
                let got = dependencies_in_chunks(&mut conn, timeframe, chunk)
                    .await
                    .unwrap();
                assert_eq!(got, want, "chunk {chunk}");
            }
        }
        let none = dependencies(
            &mut conn,
            Timeframe {
                start_ns: 10,
                end_ns: 5,
            },
        )
        .await
        .unwrap();
        assert!(none.is_empty());
    }
}
