//! A `capture` exporter, registered only in the test binaries, that records every span
//! it receives under the name given in its config.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use teletrace_core::proto::tonic::trace::v1::Span;
use teletrace_core::registry::BuildContext;
use teletrace_core::{
    ComponentConfig, ComponentError, ConsumeError, Consumer, Exporter, ExporterFactory, FactoryRef,
    Lifecycle, Registration, Stability, Traces,
};

/// Config of the capture exporter.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Name to record under (the component ID when empty).
    pub name: String,
}

impl ComponentConfig for CaptureConfig {}

/// Spans recorded, by capture name, with the service.name of their resource.
#[derive(Default)]
pub struct Store {
    pub spans: Vec<(String, Span)>,
    pub batches: usize,
    pub encoded_batches: usize,
}

fn stores() -> &'static Mutex<HashMap<String, Arc<Mutex<Store>>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<Mutex<Store>>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// The store recorded under `name` (created empty if needed).
pub fn store(name: &str) -> Arc<Mutex<Store>> {
    stores()
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// Number of spans recorded under `name`.
pub fn count(name: &str) -> usize {
    store(name).lock().unwrap().spans.len()
}

/// A copy of the spans recorded under `name`, with their service names.
pub fn spans(name: &str) -> Vec<(String, Span)> {
    store(name).lock().unwrap().spans.clone()
}

/// Batches recorded under `name`: (all, still encoded when they arrived).
pub fn batches(name: &str) -> (usize, usize) {
    let store = store(name);
    let store = store.lock().unwrap();
    (store.batches, store.encoded_batches)
}

/// Span names recorded under `name`.
pub fn names(name: &str) -> Vec<String> {
    store(name)
        .lock()
        .unwrap()
        .spans
        .iter()
        .map(|(_, s)| s.name.clone())
        .collect()
}

struct Capture {
    store: Arc<Mutex<Store>>,
}

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        let encoded = traces.is_encoded();
        let mut spans = Vec::new();
        traces.for_each_span(|resource, _, span| {
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        teletrace_core::proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            spans.push((service, span.clone()));
        })?;
        let mut store = self.store.lock().unwrap();
        store.spans.extend(spans);
        store.batches += 1;
        store.encoded_batches += usize::from(encoded);
        Ok(())
    }
}

impl Lifecycle for Capture {}
impl Exporter for Capture {}

struct CaptureFactory;

impl ExporterFactory for CaptureFactory {
    type Config = CaptureConfig;
    fn create(
        &self,
        ctx: &BuildContext,
        config: CaptureConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        let name = if config.name.is_empty() {
            ctx.id.to_string()
        } else {
            config.name
        };
        Ok(Arc::new(Capture {
            store: store(&name),
        }))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "capture",
        aliases: &[],
        stability: Stability::Development,
        description: "test-only: records spans in memory",
        capabilities: &[],
        factory: FactoryRef::Exporter(&CaptureFactory),
    }
}
