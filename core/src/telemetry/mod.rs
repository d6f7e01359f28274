//! Internal telemetry: metrics with the collector's names, served as Prometheus text, and
//! logging through `tracing`.

mod metrics;
pub mod process;

pub use metrics::{Counter, Gauge, Histogram, Metrics};

use crate::config::LogsConfig;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Sets up `tracing` output at the configured level (`RUST_LOG` wins when set). Safe to
/// call more than once: later calls do nothing.
pub fn init_logging(config: &LogsConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.level.to_ascii_lowercase()));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if config.encoding == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Binds the metrics endpoint at `address` and serves `GET /metrics` until `stop` fires.
/// Returns the bound address (useful with port 0).
pub async fn serve_metrics(
    address: &str,
    metrics: Metrics,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok(local)
}
