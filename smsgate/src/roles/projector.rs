//! The projector role: live stats and the operator API (see the `projector` crate).

use super::{RoleContext, RoleParts};
use crate::cli::Settings;

pub async fn start(_ctx: &RoleContext) -> anyhow::Result<RoleParts> {
    Ok(RoleParts::default())
}

/// `smsgate projector --rebuild`.
pub async fn rebuild(_settings: &Settings) -> anyhow::Result<()> {
    anyhow::bail!("the projector is not built yet")
}
