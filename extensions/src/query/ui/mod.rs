//! The query extension's web UI: hand-written HTML, CSS and ES modules compiled into the
//! binary and served at `/` beside the APIs (no CDN, nothing fetched from elsewhere).
//!
//! `/assets/<file>` serves the files of `assets/`; the client routes (`/`, `/search`,
//! `/trace/<id>`, `/services`, `/dependencies`) all answer `index.html`, whose script
//! draws the page the path names, so a shared link opens where it was copied.
//! Every answer carries an `ETag` and `Cache-Control: no-cache`: browsers keep the files
//! and revalidate them with a cheap `304`, and a new binary is picked up at once.

use super::api_v1::ApiError;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its name under `/assets/`, bytes, content type and validator.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    etag: u64,
}

/// FNV-1a over `bytes`, computed at compile time for each asset's `ETag`.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("assets/", $name)),
            content_type: $content_type,
            etag: fnv1a(include_bytes!(concat!("assets/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the UI.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("util.js", JS),
    asset!("charts.js", JS),
    asset!("search.js", JS),
    asset!("trace.js", JS),
    asset!("waterfall.js", JS),
    asset!("otlp.js", JS),
    asset!("services.js", JS),
    asset!("dependencies.js", JS),
];

/// The page's content security policy: everything from this origin only, so the UI
/// never reaches the network beyond the server it came from.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'self'";

/// The UI's routes, to be merged into the server's router beside the APIs.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/search", get(index))
        .route("/services", get(index))
        .route("/dependencies", get(index))
        .route("/trace/{trace_id}", get(index))
        .route("/assets/{file}", get(asset))
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

async fn index(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(page) => serve(page, &headers),
        None => ApiError::new(StatusCode::NOT_FOUND, "the web UI is not built in").into_response(),
    }
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match find(&file) {
        Some(a) => serve(a, &headers),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no such asset: {file}")).into_response()
        }
    }
}

/// The asset's answer: `304` when the browser's copy is current, else the bytes.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.etag);
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if current {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if asset.name == "index.html" {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn client_routes_answer_the_page() {
        for path in [
            "/",
            "/search?range=1h",
            "/services",
            "/dependencies",
            "/trace/0af7651916cd43dd8448eb211c80319c",
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
    }

    #[tokio::test]
    async fn assets_have_their_types_and_revalidate() {
        let r = get("/assets/app.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = get("/assets/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/assets/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
        assert_eq!(
            get("/assets/style.css", None).await.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn unknown_assets_are_json_404() {
        let r = get("/assets/nope.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split("from './").nth(1) else {
                    continue;
                };
                let module = from.trim_end_matches(['\'', ';']);
                assert!(find(module).is_some(), "{} imports {module}", a.name);
            }
        }
    }
}
