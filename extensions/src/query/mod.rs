//! The `query` extension: the Teletrace v1 HTTP API (`/v1/search`, `/v1/trace/{id}`,
//! `/v1/tags`, ...) over the spans a storing exporter (`sqlite`, `elasticsearch`) keeps.
//! See `README.md` beside this file for every config key.

#![warn(missing_docs)]

pub mod api_v1;
pub mod config;
pub mod jaeger;
pub mod model;
pub mod server;
pub mod system_id;
pub mod ui;

use std::sync::Arc;
use teletrace_core::registry::{BuildContext, ExtensionFactory, FactoryRef, Registration};
use teletrace_core::{ComponentError, Extension, Stability};

pub use config::{CorsConfig, QueryConfig};
pub use server::QueryExtension;

/// Builds `query` extensions.
pub struct QueryFactory;

impl ExtensionFactory for QueryFactory {
    type Config = QueryConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: QueryConfig,
    ) -> Result<Arc<dyn Extension>, ComponentError> {
        let id = config
            .storage_id()
            .map_err(|e| ComponentError::new(format!("storage: {e}")))?;
        let Some(exporter) = ctx.host.exporter(&id) else {
            let known: Vec<String> = ctx.host.exporter_ids().map(|i| i.to_string()).collect();
            let hint = if known.is_empty() {
                "no exporter is in a pipeline".to_string()
            } else {
                format!("exporters in pipelines: {}", known.join(", "))
            };
            return Err(ComponentError::new(format!(
                "storage: exporter \"{id}\" is not in any pipeline ({hint})"
            )));
        };
        let Some(reader) = exporter.reader() else {
            return Err(ComponentError::new(format!(
                "storage: exporter \"{id}\" does not store spans; use sqlite or elasticsearch"
            )));
        };
        Ok(Arc::new(QueryExtension::new(
            ctx.id.clone(),
            config,
            reader,
        )))
    }
}

inventory::submit! {
    Registration {
        type_name: "query",
        aliases: &[],
        stability: Stability::Alpha,
        description: "serves the Teletrace v1 query API over a storing exporter",
        capabilities: &[],
        factory: FactoryRef::Extension(&QueryFactory),
    }
}
