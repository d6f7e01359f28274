//! The `otlp` (alias `otlp_grpc`) and `otlp_http` (alias `otlphttp`) exporters: send
//! spans to another collector or an OTLP backend, with the OpenTelemetry Collector's
//! `otlpexporter` / `otlphttpexporter` keys. `README.md` in this folder lists every key.
//!
//! Both are a [`Sender`](teletrace_core::exporter_helper::Sender) behind the exporter
//! helper (sending queue, retry, timeout). Batches still encoded as received go out as
//! the same bytes; only OTLP/JSON needs the decoded form.

pub mod compress;
pub mod config;
pub mod grpc;
pub mod http;
mod status;

pub use config::{Compression, CompressionParams, Encoding, OtlpGrpcConfig, OtlpHttpConfig};
pub use grpc::GrpcSender;
pub use http::HttpSender;

use std::sync::Arc;
use teletrace_core::exporter_helper::QueuedRetryExporter;
use teletrace_core::{
    BuildContext, ComponentError, Exporter, ExporterFactory, FactoryRef, Registration, Stability,
};

/// Builds `otlp` exporters.
pub struct OtlpGrpcFactory;

impl ExporterFactory for OtlpGrpcFactory {
    type Config = OtlpGrpcConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: OtlpGrpcConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        let sender = GrpcSender::new(&ctx.id.to_string(), &config)?;
        Ok(Arc::new(QueuedRetryExporter::new(
            ctx.id.clone(),
            config.helper_settings(),
            sender,
            &ctx.metrics,
        )?))
    }
}

/// Builds `otlp_http` exporters.
pub struct OtlpHttpFactory;

impl ExporterFactory for OtlpHttpFactory {
    type Config = OtlpHttpConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: OtlpHttpConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        let sender = HttpSender::new(&ctx.id.to_string(), &config)?;
        Ok(Arc::new(QueuedRetryExporter::new(
            ctx.id.clone(),
            config.helper_settings(),
            sender,
            &ctx.metrics,
        )?))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "otlp",
        aliases: &["otlp_grpc"],
        stability: Stability::Beta,
        description: "sends spans over OTLP/gRPC",
        capabilities: &[],
        factory: FactoryRef::Exporter(&OtlpGrpcFactory),
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "otlp_http",
        aliases: &["otlphttp"],
        stability: Stability::Beta,
        description: "sends spans over OTLP/HTTP (protobuf or JSON)",
        capabilities: &[],
        factory: FactoryRef::Exporter(&OtlpHttpFactory),
    }
}
