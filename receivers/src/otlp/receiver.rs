//! The running receiver: binds the configured listeners on start, serves them, and on
//! shutdown stops accepting and waits for requests in flight to reach the pipeline.

use crate::otlp::config::{bind_address, OtlpConfig};
use crate::otlp::export::Export;
use crate::otlp::grpc::{self, TraceService};
use crate::otlp::http::{self, HttpHandler};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentError, ComponentId, ConsumerRef, Host, Lifecycle, Receiver};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a started receiver listens (useful with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoundAddresses {
    /// The OTLP/gRPC listener, when enabled and started.
    pub grpc: Option<SocketAddr>,
    /// The OTLP/HTTP listener, when enabled and started.
    pub http: Option<SocketAddr>,
}

/// Servers started by `start`.
struct Running {
    stop: CancellationToken,
    servers: Vec<JoinHandle<()>>,
}

/// The OTLP receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) into one pipeline.
pub struct OtlpReceiver {
    id: ComponentId,
    config: OtlpConfig,
    export: Arc<Export>,
    running: tokio::sync::Mutex<Option<Running>>,
    bound: Mutex<BoundAddresses>,
}

impl OtlpReceiver {
    /// Builds a receiver `id` feeding `next`; nothing is bound until [`Lifecycle::start`].
    pub fn new(id: ComponentId, config: OtlpConfig, metrics: &Metrics, next: ConsumerRef) -> Self {
        OtlpReceiver {
            export: Arc::new(Export::new(&id, metrics, next)),
            id,
            config,
            running: tokio::sync::Mutex::new(None),
            bound: Mutex::new(BoundAddresses::default()),
        }
    }

    /// The addresses the listeners are bound to, once started (empty before and after).
    pub fn bound_addresses(&self) -> BoundAddresses {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_bound(&self, bound: BoundAddresses) {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = bound;
    }
}

async fn bind(protocol: &str, endpoint: &str) -> Result<(TcpListener, SocketAddr), ComponentError> {
    let fail = |e: std::io::Error| {
        ComponentError::new(format!(
            "cannot listen for OTLP/{protocol} on {endpoint}: {e}"
        ))
    };
    let listener = TcpListener::bind(bind_address(endpoint))
        .await
        .map_err(fail)?;
    let address = listener.local_addr().map_err(fail)?;
    Ok((listener, address))
}

#[async_trait]
impl Lifecycle for OtlpReceiver {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(ComponentError::new("the OTLP receiver is already started"));
        }
        let protocols = &self.config.protocols;
        let tls = self.config.server_tls()?;
        // Bind everything before serving anything, so a failure leaves nothing open.
        let grpc = match &protocols.grpc {
            Some(c) => Some((c, bind("gRPC", &c.endpoint).await?)),
            None => None,
        };
        let http = match &protocols.http {
            Some(c) => Some((c, bind("HTTP", &c.endpoint).await?)),
            None => None,
        };
        let stop = CancellationToken::new();
        let mut servers = Vec::new();
        let mut bound = BoundAddresses::default();
        if let Some((config, (listener, address))) = grpc {
            bound.grpc = Some(address);
            tracing::info!(receiver = %self.id, %address, "OTLP/gRPC listening on {address}");
            let service = TraceService::new(self.export.clone(), config.max_recv_msg_size());
            let config = config.clone();
            let stop = stop.clone();
            let tls = tls.grpc.clone();
            servers.push(tokio::spawn(async move {
                if let Err(e) = grpc::serve(listener, &config, service, tls, stop).await {
                    tracing::error!(error = %e, %address, "OTLP/gRPC server failed");
                }
            }));
        }
        if let Some((config, (listener, address))) = http {
            bound.http = Some(address);
            tracing::info!(receiver = %self.id, %address, "OTLP/HTTP listening on {address}");
            let handler = Arc::new(HttpHandler::new(self.export.clone(), config));
            let config = config.clone();
            let stop = stop.clone();
            let tls = tls.http.clone();
            servers.push(tokio::spawn(async move {
                http::serve(listener, &config, handler, tls, stop).await;
            }));
        }
        self.set_bound(bound);
        *running = Some(Running { stop, servers });
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        // Held throughout, so a second call returns once the first has drained.
        let mut running = self.running.lock().await;
        if let Some(Running { stop, servers }) = running.take() {
            stop.cancel();
            for server in servers {
                if let Err(e) = server.await {
                    tracing::error!(receiver = %self.id, error = %e, "OTLP server task failed");
                }
            }
            self.export.drain().await;
            self.set_bound(BoundAddresses::default());
            tracing::info!(receiver = %self.id, "OTLP receiver stopped");
        }
        Ok(())
    }

    fn listening(&self) -> Vec<(&'static str, SocketAddr)> {
        let bound = self.bound_addresses();
        let mut out = Vec::new();
        if let Some(a) = bound.grpc {
            out.push(("grpc", a));
        }
        if let Some(a) = bound.http {
            out.push(("http", a));
        }
        out
    }
}

impl Receiver for OtlpReceiver {}

impl Drop for OtlpReceiver {
    /// A receiver dropped without `shutdown` still stops accepting (without draining).
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut() {
            running.stop.cancel();
        }
    }
}
