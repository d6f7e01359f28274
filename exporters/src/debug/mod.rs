//! The `debug` exporter: prints spans through Teletrace's log for debugging, as the
//! OpenTelemetry Collector's debug exporter does. See `README.md` in this folder.

pub mod config;
pub mod format;
mod printer;

pub use config::{DebugConfig, Verbosity};
pub use printer::{
    render, DebugExporter, Rendered, Sampler, METRIC_SEND_FAILED_SPANS, METRIC_SENT_SPANS,
};

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, Exporter, ExporterFactory, FactoryRef, Registration, Stability,
};

/// Builds `debug` exporters.
pub struct DebugFactory;

impl ExporterFactory for DebugFactory {
    type Config = DebugConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: DebugConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        Ok(Arc::new(DebugExporter::new(
            &ctx.id.to_string(),
            &config,
            &ctx.metrics,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "debug",
        aliases: &[],
        stability: Stability::Development,
        description: "prints spans to the log (stderr) for debugging",
        capabilities: &[],
        factory: FactoryRef::Exporter(&DebugFactory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::component::Kind;
    use teletrace_core::telemetry::Metrics;
    use teletrace_core::{ComponentId, Host, Traces};

    #[tokio::test]
    async fn registered_factory_builds_from_yaml() {
        let registration =
            teletrace_core::registry::find(Kind::Exporter, "debug").expect("debug is registered");
        assert_eq!(registration.stability, Stability::Development);
        let FactoryRef::Exporter(factory) = registration.factory else {
            panic!("not an exporter factory");
        };
        let value: serde_yaml::Value = serde_yaml::from_str("verbosity: detailed").unwrap();
        let config = factory.parse_config(&value).unwrap();
        let metrics = Metrics::new();
        let ctx = BuildContext {
            id: ComponentId::parse("debug").unwrap(),
            pipeline: None,
            metrics: metrics.clone(),
            host: Host::default(),
        };
        let exporter = factory.create(&ctx, config).unwrap();
        exporter.start(&Host::default()).await.unwrap();
        exporter.consume(Traces::default()).await.unwrap();
        exporter.shutdown().await.unwrap();
        exporter.shutdown().await.unwrap();
    }
}
