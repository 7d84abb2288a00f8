//! A scratch database per test on the test server, dropped (with its sessions) on drop.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

/// `base` (`postgres://user@host:port/db?params`) with its database replaced by `name`.
pub fn url_with_database(base: &str, name: &str) -> String {
    let (head, query) = base.split_once('?').map_or((base, ""), |(h, q)| (h, q));
    let authority_starts = head.find("://").map_or(0, |i| i + 3);
    let server = match head[authority_starts..].find('/') {
        Some(i) => &head[..authority_starts + i],
        None => head,
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{name}{query}")
}

/// The name and URL of a database no other test uses. Nothing is created here: the code under
/// test creates and migrates it (as production does); drop removes it.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    /// A database on [`crate::database_server_url`].
    pub fn new() -> Self {
        Self::on(&crate::database_server_url())
    }

    /// A database on the server at `server_url`.
    pub fn on(server_url: &str) -> Self {
        let name = format!("smsgate_test_{}", uuid::Uuid::now_v7().simple());
        Self {
            url: url_with_database(server_url, &name),
            name,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let url = self.url.clone();
        crate::block_on_cleanup(async move { drop_database(&url).await });
    }
}

/// Drops the database `url` names (closing its other sessions), from the maintenance
/// database; for a test whose database was named by the code under test.
pub async fn drop_database(url: &str) {
    let Ok(options) = PgConnectOptions::from_str(url) else {
        return;
    };
    let Some(name) = options.get_database().map(str::to_owned) else {
        return;
    };
    if let Ok(mut conn) = options.database("postgres").connect().await {
        let sql = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        );
        let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
    }
}
