//! The React dashboard, served from its built folder with a fallback to `index.html` for
//! client-side routes. When it has not been built, `/` says how to build it (unstyled: the
//! Content-Security-Policy of every response allows no inline style).

use std::path::Path;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use tower_http::services::{ServeDir, ServeFile};

const NOT_BUILT: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>smsgate</title></head><body>
<h1>smsgate is running</h1><p>The dashboard has not been built. Build it with</p>
<pre>npm --prefix dashboard ci &amp;&amp; npm --prefix dashboard run build</pre>
<p>then reload. The API is up: try <code>GET /api/stats</code> or <code>GET /healthz</code>.</p>
</body></html>"#;

/// A router whose fallback serves the dashboard (API routes are matched before it).
pub fn router(dir: &Path) -> Router {
    let index = dir.join("index.html");
    if index.is_file() {
        Router::new().fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
    } else {
        tracing::warn!(dir = %dir.display(), "dashboard not built; serving build instructions at /");
        Router::new().fallback(|| async { (StatusCode::OK, Html(NOT_BUILT)) })
    }
}
