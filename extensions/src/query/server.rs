//! The query extension's HTTP server: the router (the v1 API now; the Jaeger API under
//! `/api` and the web UI at `/` mount beside it), CORS, and the listener's lifecycle.

use super::api_v1::{self, ApiError, ApiState};
use super::config::{CorsConfig, QueryConfig};
use super::system_id;
use async_trait::async_trait;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::storage::TraceReader;
use teletrace_core::{ComponentError, ComponentId, Extension, Host, Lifecycle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

/// How long shutdown waits for requests in flight before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Headers a cross-origin request may always send (the collector's `confighttp` list
/// and the fetch safelist).
const ALWAYS_ALLOWED_HEADERS: [HeaderName; 6] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::ORIGIN,
    HeaderName::from_static("x-requested-with"),
];

/// Builds the whole HTTP application: every API's routes, then the JSON fallbacks,
/// panic catching and CORS (when configured), which apply to every route.
///
/// New APIs mount here beside `/v1`: e.g. `.merge(jaeger::routes(state))` for `/api`;
/// the web UI can replace the fallback with a `fallback_service` serving `/`.
pub fn router(state: ApiState, cors: Option<&CorsConfig>) -> Router {
    let app = Router::new()
        .merge(api_v1::routes(state.clone()))
        .merge(super::jaeger::routes(state))
        .merge(super::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error while serving the request",
                )
                .into_response()
            },
        ));
    match cors.filter(|c| c.enabled()) {
        Some(cors) => app.layer(cors_layer(cors)),
        None => app,
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such route: {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The CORS layer for `cors`: origins matched with wildcards, credentials allowed (as
/// the collector does), `GET`, `POST` and `HEAD`.
pub fn cors_layer(cors: &CorsConfig) -> CorsLayer {
    let origins = Arc::new(cors.clone());
    let allow_origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin.to_str().is_ok_and(|o| origins.allows_origin(o))
    });
    let allow_headers = if cors.allowed_headers.iter().any(|h| h == "*") {
        AllowHeaders::mirror_request()
    } else {
        let mut headers: Vec<HeaderName> = ALWAYS_ALLOWED_HEADERS.to_vec();
        for h in &cors.allowed_headers {
            if let Ok(name) = HeaderName::from_bytes(h.as_bytes()) {
                if !headers.contains(&name) {
                    headers.push(name);
                }
            }
        }
        AllowHeaders::list(headers)
    };
    let mut layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::HEAD,
        ]))
        .allow_headers(allow_headers)
        .allow_credentials(true);
    if let Some(secs) = cors.max_age.filter(|s| *s > 0) {
        layer = layer.max_age(Duration::from_secs(secs));
    }
    layer
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
    address: SocketAddr,
}

/// The `query` extension: serves the Teletrace v1 API over a storing exporter's reader.
pub struct QueryExtension {
    id: ComponentId,
    config: QueryConfig,
    reader: Arc<dyn TraceReader>,
    running: Mutex<Option<Running>>,
}

impl QueryExtension {
    /// An extension serving `reader` as `config` says; nothing is bound until `start`.
    pub fn new(id: ComponentId, config: QueryConfig, reader: Arc<dyn TraceReader>) -> Self {
        QueryExtension {
            id,
            config,
            reader,
            running: Mutex::new(None),
        }
    }

    /// Where the server listens, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().map(|r| r.address)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Lifecycle for QueryExtension {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        if self.lock().is_some() {
            return Ok(());
        }
        let system_id = system_id::load_or_create(&self.config.system_id_path).await;
        let endpoint = self.config.bind_address();
        let listener = tokio::net::TcpListener::bind(&endpoint)
            .await
            .map_err(|e| ComponentError::new(format!("cannot listen on {endpoint}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| ComponentError::new(format!("cannot listen on {endpoint}: {e}")))?;
        let state = ApiState {
            reader: self.reader.clone(),
            system_id: system_id.into(),
        };
        let app = router(state, self.config.cors.as_ref());
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        let id = self.id.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(extension = %id, error = %e, "query API server failed");
            }
        });
        tracing::info!(extension = %self.id, %address, "query API listening");
        let mut running = self.lock();
        if running.is_some() {
            // Another start won the race: keep its server.
            stop.cancel();
            return Ok(());
        }
        *running = Some(Running {
            stop,
            task,
            address,
        });
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        running.stop.cancel();
        let mut task = running.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(extension = %self.id, "query API requests still running at shutdown; dropping them");
            task.abort();
        }
        Ok(())
    }

    fn listening(&self) -> Vec<(&'static str, SocketAddr)> {
        self.local_addr()
            .map(|a| vec![("http", a)])
            .unwrap_or_default()
    }
}

impl Extension for QueryExtension {}
