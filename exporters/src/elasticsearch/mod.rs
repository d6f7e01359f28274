//! The `elasticsearch` exporter: writes spans to Elasticsearch with the `_bulk` API, in
//! the Teletrace document shape (the query API's span JSON) or the collector's otel
//! mapping mode. See `README.md` in this folder.
//!
//! Layout: `config.rs` (keys and checks), `document.rs` (the two document shapes),
//! `json.rs` (the JSON writer they use), `bulk.rs` (NDJSON bodies and the per-item
//! answer), `buffer.rs` (the bulk buffer concurrent sends share, `flush::bytes` /
//! `flush::interval`), `template.rs` (the index template), `client.rs` (HTTP client,
//! TLS, auth, round robin over endpoints), `sender.rs` (the exporter helper's `Sender`).

mod buffer;
pub mod bulk;
mod client;
pub mod config;
pub mod document;
mod sender;
pub mod template;

pub use config::{ElasticsearchConfig, MappingMode};
pub use sender::{ElasticsearchSender, METRIC_BULK_REQUESTS, METRIC_DOCS_PROCESSED};

use std::sync::Arc;
use teletrace_core::exporter_helper::QueuedRetryExporter;
use teletrace_core::{
    BuildContext, ComponentError, Exporter, ExporterFactory, FactoryRef, Registration, Stability,
};

/// Builds `elasticsearch` exporters. Building reads the TLS files and connects nowhere;
/// the index template is installed on start.
pub struct ElasticsearchFactory;

impl ExporterFactory for ElasticsearchFactory {
    type Config = ElasticsearchConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: ElasticsearchConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        let id = ctx.id.to_string();
        let sender = ElasticsearchSender::new(&id, &config, &ctx.metrics)
            .map_err(|(key, message)| ComponentError::new(format!("{key}: {message}")))?;
        let exporter = QueuedRetryExporter::new(
            ctx.id.clone(),
            config.helper_settings(),
            sender,
            &ctx.metrics,
        )?;
        Ok(Arc::new(exporter))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "elasticsearch",
        aliases: &[],
        stability: Stability::Alpha,
        description: "writes spans to Elasticsearch with the _bulk API (Teletrace or otel document shape)",
        capabilities: &[],
        factory: FactoryRef::Exporter(&ElasticsearchFactory),
    }
}
