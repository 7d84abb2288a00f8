//! A scratch archive for the archive and replay benchmarks: a database `<database>_<tag>_<uuid>`
//! on the server of `DATABASE_URL`, created and migrated like the real one, dropped after, so
//! a benchmark never writes into a real archive.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgPool};
use uuid::Uuid;

pub struct Scratch {
    pub name: String,
    pub pg: PgPool,
    options: PgConnectOptions,
}

impl Scratch {
    pub async fn create(database_url: &str, tag: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(database_url).context("invalid DATABASE_URL")?;
        let base = options.get_database().unwrap_or("smsgate").to_owned();
        let name = format!("{base}_{tag}_{}", Uuid::now_v7().simple());
        let options = options.database(&name);
        let pg = archiver::connect_with(options.clone())
            .await
            .context("creating the scratch database")?;
        Ok(Self { name, pg, options })
    }

    /// Closes the pool and drops the database (closing any other session on it).
    pub async fn drop(self) -> anyhow::Result<()> {
        self.pg.close().await;
        let mut conn = self.options.clone().database("postgres").connect().await?;
        let drop = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name.replace('"', "\"\"")
        );
        conn.execute(sqlx::AssertSqlSafe(drop)).await?;
        Ok(())
    }
}
