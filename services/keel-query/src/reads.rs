//! Read policy: who sees which personal fields in clear, and the record of every field shown.
//!
//! Reads of personal data are authorised like commands, by the tenant's policy in the tenants
//! file (`keel_auth::ReadRule`: actor kinds, scope, fields, purpose). The runtime applies it
//! in [`crate::Reading::open`], the one way a route shows a personal field: a field no rule
//! opens to the reader is answered **redacted** (`{"redacted": true, "value": null}`), never
//! silently dropped; a field shown in clear is first recorded in the access log
//! (`keel_trails::AccessLog`), so nothing is shown that is not recorded. A reader states its
//! purpose in the `Keel-Purpose` header (an id); a rule may require one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use keel_auth::{Policy, Principal, ReadAuthorization};
use keel_trails::AccessLog;

use crate::ApiError;

/// The request header a reader states its purpose in.
pub const PURPOSE_HEADER: &str = "keel-purpose";

/// The scope that lets a credential read the access log (a data-protection officer's).
pub const PRIVACY_SCOPE: &str = "keel:privacy";

/// Every tenant's read rules and the access log they are recorded in.
pub struct ReadPolicy {
    policies: HashMap<String, Arc<Policy>>,
    pub(crate) access: Arc<AccessLog>,
}

impl ReadPolicy {
    /// `policies` by tenant (the tenants file's), recording shown fields in `access`.
    pub fn new(policies: HashMap<String, Policy>, access: AccessLog) -> Self {
        Self {
            policies: policies
                .into_iter()
                .map(|(tenant, policy)| (tenant, Arc::new(policy)))
                .collect(),
            access: Arc::new(access),
        }
    }

    /// The reader of a request: its principal, its stated purpose and its tenant's policy.
    pub(crate) fn reader(&self, principal: Principal, headers: &HeaderMap) -> Result<Reader, ApiError> {
        Ok(Reader {
            policy: self.policies.get(&principal.tenant).cloned(),
            access: Some(Arc::clone(&self.access)),
            purpose: purpose(headers)?,
            principal,
        })
    }
}

/// Who reads, for what, under which policy.
pub struct Reader {
    /// The authenticated reader.
    pub principal: Principal,
    /// The purpose stated in `Keel-Purpose`, if any.
    pub purpose: Option<String>,
    policy: Option<Arc<Policy>>,
    pub(crate) access: Option<Arc<AccessLog>>,
}

impl Reader {
    /// A reader under no read policy: every personal field is redacted to it.
    pub(crate) fn without_policy(principal: Principal, headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self {
            principal,
            purpose: purpose(headers)?,
            policy: None,
            access: None,
        })
    }

    /// The rule that shows field `path` in clear to this reader, if any (and only when
    /// there is an access log to record it in).
    pub(crate) fn may_see(&self, path: &str) -> Option<ReadAuthorization> {
        self.access.as_ref()?;
        self.policy
            .as_ref()?
            .authorize_read(&self.principal, path, self.purpose.as_deref())
    }
}

/// The purpose a request states: an id (`keel-ids` grammar), or none.
fn purpose(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(PURPOSE_HEADER) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::BadParameter {
        name: "Keel-Purpose",
        reason: "not text".into(),
    })?;
    keel_ids::check("purpose", value)?;
    Ok(Some(value.to_owned()))
}
