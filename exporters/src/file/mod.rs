//! The `file` exporter: appends every batch to a file as OTLP/JSON lines or length-prefixed
//! OTLP protobuf, optionally zstd-compressed and rotated, as the collector's `fileexporter`
//! does. The `file` receiver reads it back. See `README.md` in this folder.

pub mod config;
mod exporter;
pub mod rotation;

pub use config::{FileConfig, Format, RotationConfig};
pub use exporter::{encode_record, FileExporter};

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, Exporter, ExporterFactory, FactoryRef, Registration, Stability,
};

/// Builds `file` exporters.
pub struct FileExporterFactory;

impl ExporterFactory for FileExporterFactory {
    type Config = FileConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: FileConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        Ok(Arc::new(FileExporter::new(
            &ctx.id.to_string(),
            config,
            &ctx.metrics,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "file",
        aliases: &[],
        stability: Stability::Alpha,
        description: "appends spans to a file (OTLP/JSON lines or length-prefixed protobuf, zstd, rotation)",
        capabilities: &[],
        factory: FactoryRef::Exporter(&FileExporterFactory),
    }
}

#[cfg(test)]
mod tests;
