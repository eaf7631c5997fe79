//! The one error type of keel-crypto.

/// Why a key operation, a seal or an open failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, edited ciphertext, nonce or associated data, or a
    /// ciphertext moved to another tenant, stream, event or field. Never retry.
    #[error("cannot open {what}: authentication failed")]
    Open {
        /// What was being opened (payload, field path, wrapped key id).
        what: String,
    },
    /// The key named by a message is not in the vault (and was never destroyed there).
    #[error("no key {key_id} for tenant {tenant}")]
    KeyNotFound {
        /// Tenant of the key.
        tenant: String,
        /// The key id asked for.
        key_id: String,
    },
    /// The tenant's keys (or the KEK epoch that wraps them) were destroyed.
    #[error("keys of tenant {0} are destroyed")]
    TenantDestroyed(String),
    /// A key with this id already exists (a concurrent writer created it first).
    #[error("key {key_id} of tenant {tenant} already exists")]
    Conflict {
        /// Tenant of the key.
        tenant: String,
        /// The key id.
        key_id: String,
    },
    /// The KMS or vault is unreachable or timed out; retrying may succeed.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// The KMS or vault failed in a way retrying will not fix.
    #[error("key store failed: {0}")]
    Store(String),
    /// The local key file is readable by group or others, or otherwise unsafe.
    #[error("insecure key file {path}: {reason}")]
    InsecureKeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sealed message is malformed (bad nonce length, bad key id, undecodable field).
    #[error("malformed sealed data: {0}")]
    Malformed(String),
    /// The payload does not fit its schema, or a personal field's subject is missing.
    #[error("cannot seal payload: {0}")]
    Payload(String),
    /// A personal field's subject id breaks the id grammar (`keel-ids`).
    #[error("cannot seal payload: {0}")]
    InvalidSubject(String),
    /// A personal field would be sealed to another subject than the stream's own, and its
    /// schema does not declare the subject foreign.
    #[error("cannot seal payload: {0}")]
    SubjectNotBound(String),
    /// A KEK epoch still wraps live keys and cannot be destroyed yet.
    #[error("epoch {epoch} of tenant {tenant} still wraps {live} live keys")]
    EpochInUse {
        /// Tenant.
        tenant: String,
        /// The epoch.
        epoch: u32,
        /// How many keys still use it.
        live: usize,
    },
}

impl CryptoError {
    /// Whether the caller may retry the same operation.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Conflict { .. })
    }
}
