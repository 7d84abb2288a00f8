//! The archive's HTTP routes. `/api/history` and `/api/audit` arrive with issue 6; until then
//! the router is empty so the binary can already merge it.

use axum::Router;
use sqlx::PgPool;

/// Routes served from the Postgres archive.
pub fn router(pg: PgPool) -> Router {
    let _ = pg;
    Router::new()
}
