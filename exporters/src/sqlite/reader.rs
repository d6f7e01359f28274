//! [`TraceReader`] over the SQLite store, on the exporter's read pool.
//!
//! Tag types are the pdata type names the Teletrace sqlite reader returned: `Str`, `Int`,
//! `Double`, `Bool`, `Bytes`, `Slice`, `Map` (and `Empty`). Fixed span fields are `Str`
//! or `Int`; `span.kind` and `span.status.code` are `Str` because the store holds their
//! names (`Server`, `Error`). Filters on them also take `SPAN_KIND_SERVER` / `2`.

use super::batch::Source;
use super::errors::storage_error;
use super::query::{self, load, tag, trace_json};
use super::value::hex;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqlitePool;
use sqlx::{Row as _, Sqlite};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use teletrace_core::storage::{
    DependencyLink, KeyValueFilter, MetricsGroup, MetricsQuery, Operation, SearchRequest,
    SearchResponse, Statistic, StorageError, StoredSpan, TagInfo, TagValueCount, Timeframe,
    TraceQuery, TraceReader,
};

/// The read pool, filled in when the exporter starts. The reader exists from the moment
/// the exporter is built; until start, its queries fail with "not started".
#[derive(Debug, Default)]
pub(crate) struct PoolCell(OnceLock<SqlitePool>);

impl PoolCell {
    /// Installs the pool (once).
    pub(crate) fn set(&self, pool: SqlitePool) -> Result<(), SqlitePool> {
        self.0.set(pool)
    }

    /// The pool, once started.
    pub(crate) fn get_pool(&self) -> Option<&SqlitePool> {
        self.0.get()
    }
}

/// Reads what the `sqlite` exporter stored.
#[derive(Debug)]
pub struct SqliteReader {
    pool: Arc<PoolCell>,
}

impl SqliteReader {
    pub(crate) fn new(pool: Arc<PoolCell>) -> Self {
        SqliteReader { pool }
    }

    async fn conn(&self) -> Result<PoolConnection<Sqlite>, StorageError> {
        let pool = self
            .pool
            .get_pool()
            .ok_or_else(|| StorageError::Backend("not started".into()))?;
        pool.acquire().await.map_err(storage_error)
    }
}

#[async_trait]
impl TraceReader for SqliteReader {
    async fn search(&self, request: &SearchRequest) -> Result<SearchResponse, StorageError> {
        let mut conn = self.conn().await?;
        query::search(&mut conn, request).await
    }

    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Vec<StoredSpan>, StorageError> {
        let mut conn = self.conn().await?;
        load::trace(&mut conn, &hex(trace_id)).await
    }

    async fn write_trace_json(
        &self,
        trace_id: &[u8; 16],
        out: &mut Vec<u8>,
    ) -> Result<usize, StorageError> {
        let mut conn = self.conn().await?;
        trace_json::write_trace(&mut conn, &hex(trace_id), out).await
    }

    async fn tags(&self) -> Result<Vec<TagInfo>, StorageError> {
        let mut conn = self.conn().await?;
        let mut tags: Vec<TagInfo> = tag::FIXED
            .iter()
            .map(|(name, _, _, ty)| (*name, *ty))
            .chain(tag::FIXED_OTHER.iter().copied())
            .map(|(name, ty)| TagInfo {
                name: name.to_string(),
                value_type: ty.to_string(),
            })
            .collect();
        let rows = sqlx::query("SELECT source, key, type FROM attribute_keys")
            .fetch_all(&mut *conn)
            .await
            .map_err(storage_error)?;
        for row in rows {
            let source: String = row.try_get(0).map_err(storage_error)?;
            let key: String = row.try_get(1).map_err(storage_error)?;
            let value_type: String = row.try_get(2).map_err(storage_error)?;
            if let Some(source) = Source::parse(&source) {
                tags.push(TagInfo {
                    name: format!("{}{key}", tag::prefix(source)),
                    value_type,
                });
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn tag_values(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
    ) -> Result<Vec<TagValueCount>, StorageError> {
        let mut conn = self.conn().await?;
        query::tag_values(&mut conn, tag, timeframe, filters).await
    }

    async fn tag_statistics(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
        statistics: &[Statistic],
    ) -> Result<BTreeMap<Statistic, f64>, StorageError> {
        let mut conn = self.conn().await?;
        query::tag_statistics(&mut conn, tag, timeframe, filters, statistics).await
    }

    async fn services(&self) -> Result<Vec<String>, StorageError> {
        let mut conn = self.conn().await?;
        query::services::services(&mut conn).await
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<i32>,
    ) -> Result<Vec<Operation>, StorageError> {
        let mut conn = self.conn().await?;
        query::services::operations(&mut conn, service, span_kind).await
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<[u8; 16]>, StorageError> {
        let mut conn = self.conn().await?;
        query::find_trace_ids(&mut conn, query).await
    }

    async fn dependencies(
        &self,
        timeframe: Timeframe,
    ) -> Result<Vec<DependencyLink>, StorageError> {
        let mut conn = self.conn().await?;
        query::dependencies(&mut conn, timeframe).await
    }

    async fn service_metrics(
        &self,
        query: &MetricsQuery<'_>,
    ) -> Result<Vec<MetricsGroup>, StorageError> {
        let mut conn = self.conn().await?;
        query::service_metrics(&mut conn, query).await
    }
}
