//! The archiver role: stream → Postgres (see the `archiver` crate).

use super::{RoleContext, RoleParts};
use crate::cli::Settings;

pub async fn start(_ctx: &RoleContext) -> anyhow::Result<RoleParts> {
    Ok(RoleParts::default())
}

/// `smsgate archiver --once`.
pub async fn run_once(_settings: &Settings) -> anyhow::Result<()> {
    anyhow::bail!("the archiver is not built yet")
}
