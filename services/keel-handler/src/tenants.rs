//! The handler's gatekeeper, from the tenants file (`keel_auth::TenantsFile`).

pub use keel_auth::{TenantConfig, TenantsFile};

use crate::decide::Gatekeeper;

/// The gatekeeper the tenants file configures: its credentials and its policies.
pub fn gatekeeper(tenants: &TenantsFile) -> anyhow::Result<Gatekeeper> {
    let authenticator = tenants.authenticator().map_err(anyhow::Error::msg)?;
    Ok(Gatekeeper::new(authenticator, tenants.policies()))
}
