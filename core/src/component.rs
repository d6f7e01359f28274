//! Component kinds, identity, lifecycle, and the host that lets components find each other.

use crate::consumer::Consumer;
use crate::storage::TraceReader;
use crate::telemetry::Metrics;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The four kinds of components a pipeline config wires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Takes spans in from outside (OTLP, file).
    Receiver,
    /// Shapes spans inside a pipeline (batch, sampling, attributes).
    Processor,
    /// Sends or stores spans (OTLP, SQLite, Elasticsearch, file, debug).
    Exporter,
    /// Serves something around the pipelines (query API, health).
    Extension,
}

impl Kind {
    /// The config section that holds components of this kind (`receivers`, ...).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Extension => "extensions",
        }
    }

    /// All kinds, in the order `components` lists them.
    pub const ALL: [Kind; 4] = [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Extension,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Extension => "extension",
        })
    }
}

/// How mature a component is, as the OpenTelemetry Collector grades them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// Being built; config and behaviour may change.
    Development,
    /// Usable, config may still change.
    Alpha,
    /// Config stable, used in production by some.
    Beta,
    /// Stable.
    Stable,
}

impl fmt::Display for Stability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stability::Development => "development",
            Stability::Alpha => "alpha",
            Stability::Beta => "beta",
            Stability::Stable => "stable",
        })
    }
}

/// A component ID as written in a config: `type[/name]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    type_name: String,
    name: Option<String>,
}

impl ComponentId {
    /// Parses `type` or `type/name`. Both parts must be non-empty.
    pub fn parse(id: &str) -> Result<Self, String> {
        let (type_name, name) = match id.split_once('/') {
            Some((t, n)) => (t.trim(), Some(n.trim())),
            None => (id.trim(), None),
        };
        if type_name.is_empty() {
            return Err(format!(
                "invalid component ID {id:?}: the type part is empty"
            ));
        }
        if name.is_some_and(str::is_empty) {
            return Err(format!(
                "invalid component ID {id:?}: the name after '/' is empty"
            ));
        }
        let valid = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !valid(type_name) {
            return Err(format!(
                "invalid component ID {id:?}: the type may hold letters, digits, '_', '-' and '.'"
            ));
        }
        Ok(ComponentId {
            type_name: type_name.to_string(),
            name: name.map(str::to_string),
        })
    }

    /// The component type (`otlp` in `otlp/internal`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The optional name after the slash.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.type_name, n),
            None => f.write_str(&self.type_name),
        }
    }
}

/// An error a component reports while being built, started or shut down.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// Builds an error from anything displayable.
    pub fn new(message: impl fmt::Display) -> Self {
        ComponentError(message.to_string())
    }
}

/// Start and shutdown, shared by every component kind.
///
/// `shutdown` must be safe to call twice and must drain: a receiver stops accepting and
/// waits for requests in flight; a processor flushes what it holds; an exporter sends or
/// stores what it has queued.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Starts the component (bind sockets, spawn tasks). The host gives access to the
    /// other components of the running service.
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Stops the component, draining what it holds.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        Ok(())
    }

    /// The sockets the component listens on once started, each with a short label
    /// (`grpc`, `http`). Lets tests use port 0 and lets the service log where it listens.
    fn listening(&self) -> Vec<(&'static str, std::net::SocketAddr)> {
        Vec::new()
    }
}

/// A receiver: takes spans from outside and hands them to its pipelines' consumer.
pub trait Receiver: Lifecycle {}

/// A processor: a consumer inside a pipeline that passes batches on to the next stage.
pub trait Processor: Lifecycle + Consumer {}

/// An exporter: the last consumer of a pipeline.
pub trait Exporter: Lifecycle + Consumer {
    /// The reader over what this exporter stores, for exporters that store spans
    /// (SQLite, Elasticsearch). The query extension reads through it.
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        None
    }
}

/// An extension: serves something around the pipelines.
pub trait Extension: Lifecycle {}

/// What the running service offers to components: the other components, by ID, and the
/// internal metrics.
#[derive(Clone, Default)]
pub struct Host {
    exporters: BTreeMap<ComponentId, Arc<dyn Exporter>>,
    metrics: Metrics,
}

impl Host {
    /// Builds a host over the service's exporters.
    pub fn new(exporters: BTreeMap<ComponentId, Arc<dyn Exporter>>, metrics: Metrics) -> Self {
        Host { exporters, metrics }
    }

    /// The exporter configured under `id`, if it is part of a pipeline.
    pub fn exporter(&self, id: &ComponentId) -> Option<&Arc<dyn Exporter>> {
        self.exporters.get(id)
    }

    /// The IDs of every exporter in the service.
    pub fn exporter_ids(&self) -> impl Iterator<Item = &ComponentId> {
        self.exporters.keys()
    }

    /// The service's internal metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
