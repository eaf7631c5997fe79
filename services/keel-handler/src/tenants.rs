//! The tenants file: each tenant's credential keys and policy.
//!
//! ```json
//! { "tenants": { "acme": { "auth": { "issuer": "...", "keys": [ ... ] },
//!                          "policy": { "id": "acme/v1", "rules": [ ... ] } } } }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use keel_auth::{Authenticator, Policy, TenantAuth};
use serde::{Deserialize, Serialize};

use crate::decide::Gatekeeper;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    /// By tenant id.
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Who issues its credentials, with which keys.
    pub auth: TenantAuth,
    /// What its actors may do.
    pub policy: Policy,
}

impl TenantsFile {
    /// Reads and checks the file; a key that does not parse fails here, at start-up.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading tenants file {}", path.display()))?;
        let file: Self =
            serde_json::from_str(&text).with_context(|| format!("parsing tenants file {}", path.display()))?;
        for tenant in file.tenants.keys() {
            anyhow::ensure!(
                !tenant.is_empty()
                    && tenant
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "tenant id {tenant:?} must be letters, digits, '-' or '_'"
            );
        }
        Ok(file)
    }

    /// The gatekeeper these tenants configure.
    pub fn gatekeeper(&self) -> anyhow::Result<Gatekeeper> {
        let auth: HashMap<String, TenantAuth> = self
            .tenants
            .iter()
            .map(|(id, tenant)| (id.clone(), tenant.auth.clone()))
            .collect();
        let authenticator = Authenticator::new(&auth).map_err(anyhow::Error::msg)?;
        let policies = self
            .tenants
            .iter()
            .map(|(id, tenant)| (id.clone(), tenant.policy.clone()))
            .collect();
        Ok(Gatekeeper::new(authenticator, policies))
    }
}
