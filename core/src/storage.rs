//! The read side of exporters that store spans (SQLite, Elasticsearch): what the query
//! extension reads through.

/// Reads back what a storing exporter wrote. The query extension finds it through
/// [`crate::Exporter::reader`].
pub trait TraceReader: Send + Sync {}
