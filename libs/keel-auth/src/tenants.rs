//! The tenants file every Keel service reads: each tenant's credential keys and policy.
//!
//! ```json
//! { "tenants": { "acme": { "auth": { "issuer": "...", "keys": [ ... ] },
//!                          "policy": { "id": "acme/v1", "rules": [ ... ] } } } }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Authenticator, Policy, TenantAuth};

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
    /// Reads and checks the file. Keys are parsed by [`TenantsFile::authenticator`], so a
    /// service that builds one at start-up fails there on a bad key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("reading tenants file {}: {error}", path.display()))?;
        let file: Self =
            serde_json::from_str(&text).map_err(|error| format!("parsing tenants file {}: {error}", path.display()))?;
        for tenant in file.tenants.keys() {
            let valid = !tenant.is_empty()
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(format!("tenant id {tenant:?} must be letters, digits, '-' or '_'"));
            }
        }
        Ok(file)
    }

    /// A verifier of every tenant's credentials.
    pub fn authenticator(&self) -> Result<Authenticator, String> {
        let auth: HashMap<String, TenantAuth> = self
            .tenants
            .iter()
            .map(|(id, tenant)| (id.clone(), tenant.auth.clone()))
            .collect();
        Authenticator::new(&auth)
    }

    /// Every tenant's policy.
    pub fn policies(&self) -> HashMap<String, Policy> {
        self.tenants
            .iter()
            .map(|(id, tenant)| (id.clone(), tenant.policy.clone()))
            .collect()
    }
}
