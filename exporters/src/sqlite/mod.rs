//! The `sqlite` exporter: stores spans in the Teletrace SQLite layout
//! (`embedded_spans.db`) and reads them back for the query extension.
//!
//! See `README.md` in this folder for the config keys and the schema.

mod allocator;
mod attributes;
mod batch;
mod checkpoint;
pub mod config;
mod direct;
mod errors;
mod insert;
mod postings;
mod query;
mod reader;
mod retention;
pub mod schema;
#[cfg(test)]
mod test_support;
mod value;
mod writer;

pub use allocator::allocate_with_mimalloc;
pub use config::SqliteConfig;
pub use reader::SqliteReader;
pub use writer::SqliteExporter;

use std::sync::Arc;
use teletrace_core::exporter_helper::QueuedRetryExporter;
use teletrace_core::registry::{
    BuildContext, Capability, ExporterFactory, FactoryRef, Registration,
};
use teletrace_core::{ComponentError, Exporter, Stability};

/// Builds `sqlite` exporters: the store behind the exporter helper's sending queue and
/// retries. Building opens nothing; the database is opened on start.
pub struct SqliteFactory;

impl ExporterFactory for SqliteFactory {
    type Config = SqliteConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: SqliteConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        let settings = config.helper_settings();
        let store = SqliteExporter::new(&ctx.id.to_string(), config, &ctx.metrics);
        Ok(Arc::new(QueuedRetryExporter::new(
            ctx.id.clone(),
            settings,
            store,
            &ctx.metrics,
        )?))
    }
}

inventory::submit! {
    Registration {
        type_name: "sqlite",
        aliases: &[],
        stability: Stability::Beta,
        description: "stores spans in SQLite (Teletrace layout) and serves them to the query extension",
        capabilities: &[Capability::TraceStorage],
        factory: FactoryRef::Exporter(&SqliteFactory),
    }
}
