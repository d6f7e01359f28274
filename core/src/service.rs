//! The running service: builds the pipeline graph from a resolved config, starts it in
//! order (extensions, exporters, processors, receivers) and shuts it down in reverse,
//! draining what each stage holds.
//!
//! Graph rules, as in the OpenTelemetry Collector: a receiver is one instance shared by
//! every pipeline that names it; processors are one instance per pipeline; an exporter is
//! one instance shared by every pipeline that names it; a fan-out gives every consumer
//! but the last a clone.

use crate::component::{
    ComponentError, ComponentId, Exporter, Extension, Host, Kind, Lifecycle, Processor, Receiver,
};
use crate::config::{ConfigError, ConfigErrors, ResolvedComponent, ResolvedConfig};
use crate::consumer::{ConsumerRef, FanOut};
use crate::registry::{AnyConfig, BuildContext, FactoryRef};
use crate::telemetry::{self, Metrics};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A started component, remembered for shutdown.
type Started = (Kind, ComponentId, Arc<dyn Lifecycle>);

/// One pipeline's processors, in order, with its ID.
type PipelineChain = (String, Vec<(ComponentId, Arc<dyn Processor>)>);

/// A built service: every component constructed, nothing started.
pub struct Service {
    receivers: Vec<(ComponentId, Arc<dyn Receiver>)>,
    /// Processors per pipeline, in pipeline order.
    processors: Vec<PipelineChain>,
    exporters: BTreeMap<ComponentId, Arc<dyn Exporter>>,
    extensions: Vec<(ComponentId, Arc<dyn Extension>)>,
    host: Host,
    metrics: Metrics,
    metrics_address: Option<String>,
    metrics_stop: CancellationToken,
    started: Vec<Started>,
    metrics_bound: Option<SocketAddr>,
}

/// Parses a component's config again (each instance gets its own) and builds it with
/// `create`; errors carry the component's config path.
fn build_component<T>(
    resolved: &ResolvedComponent,
    create: impl FnOnce(AnyConfig) -> Result<T, ComponentError>,
) -> Result<T, ConfigError> {
    let config = resolved
        .registration
        .factory
        .parse_config(&resolved.value)
        .map_err(|e| e.under(&resolved.path()))?;
    create(config).map_err(|e| ConfigError::new(resolved.path(), e.0))
}

impl Service {
    /// Builds every component of `config`. Build errors (a value the factory refuses, an
    /// extension naming a missing exporter) are reported as config errors with paths;
    /// nothing is bound or opened yet.
    pub fn build(config: &ResolvedConfig, metrics: Metrics) -> Result<Service, ConfigErrors> {
        let mut errors = Vec::new();
        let context = |id: &ComponentId, pipeline: Option<&str>, host: &Host| BuildContext {
            id: id.clone(),
            pipeline: pipeline.map(str::to_string),
            metrics: metrics.clone(),
            host: host.clone(),
        };
        let empty_host = Host::new(BTreeMap::new(), metrics.clone());

        // Exporters: one instance per ID.
        let mut exporters: BTreeMap<ComponentId, Arc<dyn Exporter>> = BTreeMap::new();
        for pipeline in &config.pipelines {
            for id in &pipeline.exporters {
                if exporters.contains_key(id) {
                    continue;
                }
                let Some(resolved) = config.component(Kind::Exporter, id) else {
                    continue;
                };
                let FactoryRef::Exporter(factory) = resolved.registration.factory else {
                    continue;
                };
                let built = build_component(resolved, |cfg| {
                    factory.create(&context(id, None, &empty_host), cfg)
                });
                match built {
                    Ok(exporter) => {
                        exporters.insert(id.clone(), exporter);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let host = Host::new(exporters.clone(), metrics.clone());

        // Pipelines: processors built back to front, each feeding the next.
        let mut pipeline_heads: BTreeMap<ComponentId, Vec<ConsumerRef>> = BTreeMap::new();
        let mut processors = Vec::new();
        for pipeline in &config.pipelines {
            let outs: Vec<ConsumerRef> = pipeline
                .exporters
                .iter()
                .filter_map(|id| exporters.get(id))
                .map(|e| e.clone() as ConsumerRef)
                .collect();
            if outs.len() != pipeline.exporters.len() {
                continue; // an exporter failed to build; reported above
            }
            let mut next: ConsumerRef = FanOut::build(outs);
            let mut chain = Vec::new();
            for id in pipeline.processors.iter().rev() {
                let Some(resolved) = config.component(Kind::Processor, id) else {
                    continue;
                };
                let FactoryRef::Processor(factory) = resolved.registration.factory else {
                    continue;
                };
                let built = build_component(resolved, |cfg| {
                    factory.create(&context(id, Some(&pipeline.id), &host), cfg, next.clone())
                });
                match built {
                    Ok(p) => {
                        next = p.clone() as ConsumerRef;
                        chain.push((id.clone(), p));
                    }
                    Err(e) => errors.push(e),
                }
            }
            chain.reverse();
            processors.push((pipeline.id.clone(), chain));
            for id in &pipeline.receivers {
                pipeline_heads
                    .entry(id.clone())
                    .or_default()
                    .push(next.clone());
            }
        }

        // Receivers: one instance per ID, feeding every pipeline that names it.
        let mut receivers = Vec::new();
        for (id, heads) in pipeline_heads {
            let Some(resolved) = config.component(Kind::Receiver, &id) else {
                continue;
            };
            let FactoryRef::Receiver(factory) = resolved.registration.factory else {
                continue;
            };
            let built = build_component(resolved, |cfg| {
                factory.create(&context(&id, None, &host), cfg, FanOut::build(heads))
            });
            match built {
                Ok(r) => receivers.push((id, r)),
                Err(e) => errors.push(e),
            }
        }

        // Extensions, last: they may look up exporters.
        let mut extensions = Vec::new();
        for id in &config.extensions {
            let Some(resolved) = config.component(Kind::Extension, id) else {
                continue;
            };
            let FactoryRef::Extension(factory) = resolved.registration.factory else {
                continue;
            };
            let built = build_component(resolved, |cfg| {
                factory.create(&context(id, None, &host), cfg)
            });
            match built {
                Ok(x) => extensions.push((id.clone(), x)),
                Err(e) => errors.push(e),
            }
        }

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let metrics_address = config
            .telemetry
            .metrics
            .endpoint()
            .map_err(|e| ConfigError::new("service::telemetry::metrics", e))?;
        Ok(Service {
            receivers,
            processors,
            exporters,
            extensions,
            host,
            metrics,
            metrics_address,
            metrics_stop: CancellationToken::new(),
            started: Vec::new(),
            metrics_bound: None,
        })
    }

    /// The host view of this service (its exporters and metrics).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The internal metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every socket the started components listen on: component ID, label, address.
    pub fn listening(&self) -> Vec<(String, &'static str, SocketAddr)> {
        let mut out = Vec::new();
        for (kind, id, component) in &self.started {
            for (label, address) in component.listening() {
                out.push((format!("{}::{id}", kind.section()), label, address));
            }
        }
        if let Some(address) = self.metrics_bound {
            out.push((
                "service::telemetry::metrics".to_string(),
                "metrics",
                address,
            ));
        }
        out
    }

    /// The address `id`'s component listens on for `label` (e.g. `("receivers::otlp", "grpc")`).
    pub fn address_of(&self, component: &str, label: &str) -> Option<SocketAddr> {
        self.listening()
            .into_iter()
            .find(|(c, l, _)| c == component && *l == label)
            .map(|(_, _, a)| a)
    }

    /// Where the metrics endpoint listens, once started (when enabled).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_bound
    }

    /// Starts every component: extensions, exporters, processors, then receivers. If one
    /// fails, those already started are shut down again and the error is returned.
    pub async fn start(&mut self) -> Result<(), ComponentError> {
        if let Some(address) = self.metrics_address.clone() {
            telemetry::process::register(&self.metrics);
            let bound =
                telemetry::serve_metrics(&address, self.metrics.clone(), self.metrics_stop.clone())
                    .await
                    .map_err(|e| {
                        ComponentError::new(format!(
                            "service::telemetry::metrics: cannot listen on {address}: {e}"
                        ))
                    })?;
            self.metrics_bound = Some(bound);
        }
        let mut order: Vec<Started> = Vec::new();
        for (id, x) in &self.extensions {
            order.push((Kind::Extension, id.clone(), x.clone() as Arc<dyn Lifecycle>));
        }
        for (id, x) in &self.exporters {
            order.push((Kind::Exporter, id.clone(), x.clone() as Arc<dyn Lifecycle>));
        }
        for (_, chain) in &self.processors {
            for (id, p) in chain {
                order.push((Kind::Processor, id.clone(), p.clone() as Arc<dyn Lifecycle>));
            }
        }
        for (id, r) in &self.receivers {
            order.push((Kind::Receiver, id.clone(), r.clone() as Arc<dyn Lifecycle>));
        }
        for (kind, id, component) in order {
            tracing::debug!(%kind, %id, "starting");
            if let Err(e) = component.start(&self.host).await {
                let error =
                    ComponentError::new(format!("{}::{id}: failed to start: {e}", kind.section()));
                self.shutdown(Duration::from_secs(5)).await;
                return Err(error);
            }
            self.started.push((kind, id, component));
        }
        for (component, label, address) in self.listening() {
            tracing::info!(%component, protocol = %label, %address, "listening");
        }
        tracing::info!(
            receivers = self.receivers.len(),
            pipelines = self.processors.len(),
            exporters = self.exporters.len(),
            extensions = self.extensions.len(),
            "everything is ready; begin running and processing data"
        );
        Ok(())
    }

    /// Shuts down what was started, in reverse start order: receivers stop accepting and
    /// finish requests in flight, processors flush (a pipeline's first processor first, so
    /// what it flushes reaches the next before that one stops), exporters drain, then
    /// extensions stop. Gives up on whatever has not finished after `deadline`.
    pub async fn shutdown(&mut self, deadline: Duration) {
        let started = std::mem::take(&mut self.started);
        let stop_all = async {
            // Reverse start order, but processors within a pipeline front to back.
            let mut receivers = Vec::new();
            let mut processors = Vec::new();
            let mut rest = Vec::new();
            for (kind, id, component) in started {
                match kind {
                    Kind::Receiver => receivers.push((kind, id, component)),
                    Kind::Processor => processors.push((kind, id, component)),
                    _ => rest.push((kind, id, component)),
                }
            }
            rest.reverse();
            for (kind, id, component) in receivers.into_iter().chain(processors).chain(rest) {
                tracing::debug!(%kind, %id, "shutting down");
                if let Err(e) = component.shutdown().await {
                    tracing::error!(%kind, %id, error = %e, "shutdown failed");
                }
            }
        };
        if tokio::time::timeout(deadline, stop_all).await.is_err() {
            tracing::error!(
                ?deadline,
                "shutdown did not finish within the deadline; data still held may be lost"
            );
        }
        self.metrics_stop.cancel();
    }
}
