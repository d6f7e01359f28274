//! The `resource_detection` processor (`resourcedetection` in the collector): detects
//! resource attributes of the machine and environment once, at start, and adds them to
//! the resource of every batch, as the OpenTelemetry Collector's
//! resourcedetectionprocessor does with the `env` and `system` detectors. See `README.md`.

pub mod config;
pub mod detectors;

pub use config::ResourceDetectionConfig;

use async_trait::async_trait;
use detectors::{Host, RealHost};
use std::sync::{Arc, OnceLock};
use teletrace_core::proto::tonic::common::v1::KeyValue;
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::{
    BuildContext, ComponentError, ConsumeError, Consumer, ConsumerRef, FactoryRef, Lifecycle,
    Processor, ProcessorFactory, Registration, Stability, Traces,
};

/// Runs the configured detectors in order and merges their attributes: the first
/// detector to set an attribute wins. A detector that fails is logged and skipped.
pub fn detect(config: &ResourceDetectionConfig, host: &dyn Host) -> Vec<KeyValue> {
    let mut merged: Vec<KeyValue> = Vec::new();
    for name in &config.detectors {
        let found = match name.as_str() {
            "env" => detectors::env(host),
            "system" => detectors::system(host, &config.system),
            other => Err(format!("unsupported detector {other:?}")),
        };
        match found {
            Ok(attributes) => {
                for kv in attributes {
                    if !merged.iter().any(|m| m.key == kv.key) {
                        merged.push(kv);
                    }
                }
            }
            Err(e) => tracing::warn!(detector = %name, error = %e, "failed to detect resource"),
        }
    }
    if let Some(keep) = &config.attributes {
        merged.retain(|kv| keep.contains(&kv.key));
    }
    merged
}

/// Adds the detected attributes to every resource of a batch.
pub struct ResourceDetectionProcessor {
    config: ResourceDetectionConfig,
    host: Arc<dyn Host>,
    detected: OnceLock<Vec<KeyValue>>,
    next: ConsumerRef,
}

impl ResourceDetectionProcessor {
    /// Builds the processor; detection runs at start (or on the first batch, if the
    /// processor is used without being started).
    pub fn new(config: ResourceDetectionConfig, host: Arc<dyn Host>, next: ConsumerRef) -> Self {
        ResourceDetectionProcessor {
            config,
            host,
            detected: OnceLock::new(),
            next,
        }
    }

    /// The detected attributes (detecting now if start has not).
    pub fn detected(&self) -> &[KeyValue] {
        self.detected
            .get_or_init(|| detect(&self.config, self.host.as_ref()))
    }

    /// Merges the detected attributes into `resource`: with `override`, they replace
    /// attributes of the same key; without, the resource's own attributes stay.
    pub fn apply(&self, resource: &mut Resource) {
        for kv in self.detected() {
            match resource.attributes.iter_mut().find(|a| a.key == kv.key) {
                Some(existing) if self.config.override_ => existing.value = kv.value.clone(),
                Some(_) => {}
                None => resource.attributes.push(kv.clone()),
            }
        }
    }
}

#[async_trait]
impl Consumer for ResourceDetectionProcessor {
    /// Asks the next stage: this one refuses nothing by state.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.next.admit()
    }

    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        if !traces.is_empty() && !self.detected().is_empty() {
            for rs in traces.resource_spans_mut()? {
                self.apply(rs.resource.get_or_insert_with(Resource::default));
            }
        }
        self.next.consume(traces).await
    }
}

#[async_trait]
impl Lifecycle for ResourceDetectionProcessor {
    async fn start(&self, _host: &teletrace_core::Host) -> Result<(), ComponentError> {
        if self.detected.get().is_some() {
            return Ok(());
        }
        let config = self.config.clone();
        let host = self.host.clone();
        let task = tokio::task::spawn_blocking(move || detect(&config, host.as_ref()));
        let found = match tokio::time::timeout(self.config.timeout, task).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "resource detection failed; no attributes added");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.config.timeout,
                    "resource detection timed out; no attributes added"
                );
                Vec::new()
            }
        };
        let _ = self.detected.set(found);
        Ok(())
    }
}

impl Processor for ResourceDetectionProcessor {}

/// Builds `resource_detection` processors.
pub struct ResourceDetectionFactory;

impl ProcessorFactory for ResourceDetectionFactory {
    type Config = ResourceDetectionConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: ResourceDetectionConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        for (name, toggle) in &config.system.resource_attributes {
            if toggle.enabled && config::SYSTEM_ATTRIBUTES_NOT_PRODUCED.contains(&name.as_str()) {
                tracing::warn!(
                    processor = %ctx.id,
                    attribute = %name,
                    "this system resource attribute is not produced by Teletrace"
                );
            }
        }
        Ok(Arc::new(ResourceDetectionProcessor::new(
            config,
            Arc::new(RealHost),
            next,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "resource_detection",
        aliases: &["resourcedetection"],
        stability: Stability::Beta,
        description: "adds resource attributes detected from the environment and the host",
        capabilities: &[],
        factory: FactoryRef::Processor(&ResourceDetectionFactory),
    }
}

#[cfg(test)]
mod tests;
