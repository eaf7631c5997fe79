//! Identities of keys: KEK epochs, data key versions and the key ids bound into ciphertexts.

use std::fmt;

use crate::CryptoError;

/// Version of a tenant's key-encryption key; a new epoch re-wraps the live data keys.
pub type KekEpoch = u32;

/// Which data key: the tenant's payload key or one data subject's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyOwner {
    /// The tenant data key, sealing payloads.
    Tenant,
    /// A data subject's key, sealing that subject's personal fields.
    Subject(String),
}

/// One version of one data key of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    /// Tenant owning the key.
    pub tenant: String,
    /// Tenant or subject key.
    pub owner: KeyOwner,
    /// Version, from 1; a new version is made on rotation.
    pub version: u32,
}

impl KeyId {
    /// The tenant data key `version` of `tenant`.
    pub fn tenant(tenant: &str, version: u32) -> Self {
        Self {
            tenant: tenant.to_owned(),
            owner: KeyOwner::Tenant,
            version,
        }
    }

    /// The data key `version` of `subject` in `tenant`.
    pub fn subject(tenant: &str, subject: &str, version: u32) -> Self {
        Self {
            tenant: tenant.to_owned(),
            owner: KeyOwner::Subject(subject.to_owned()),
            version,
        }
    }

    /// The subject id, for a subject key.
    pub fn subject_id(&self) -> Option<&str> {
        match &self.owner {
            KeyOwner::Tenant => None,
            KeyOwner::Subject(s) => Some(s),
        }
    }

    /// The short id written in envelopes (`t<version>` or `s<version>`); tenant and
    /// subject travel in their own fields.
    pub fn short(&self) -> String {
        let kind = match self.owner {
            KeyOwner::Tenant => 't',
            KeyOwner::Subject(_) => 's',
        };
        // Once per seal: `itoa` spares the formatting machinery.
        let mut version = itoa::Buffer::new();
        let digits = version.format(self.version);
        let mut short = String::with_capacity(1 + digits.len());
        short.push(kind);
        short.push_str(digits);
        short
    }

    /// Parses a short id written by [`KeyId::short`] back, given its tenant and subject.
    pub fn parse(tenant: &str, subject: Option<&str>, short: &str) -> Result<Self, CryptoError> {
        let bad = || CryptoError::Malformed(format!("bad key id {short:?}"));
        let (kind, digits) = short.split_at_checked(1).ok_or_else(bad)?;
        let version: u32 = digits.parse().map_err(|_| bad())?;
        match (kind, subject) {
            ("t", None) => Ok(Self::tenant(tenant, version)),
            ("s", Some(s)) => Ok(Self::subject(tenant, s, version)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            KeyOwner::Tenant => write!(f, "{}/tenant/v{}", self.tenant, self.version),
            KeyOwner::Subject(s) => write!(f, "{}/subject/{}/v{}", self.tenant, s, self.version),
        }
    }
}
