//! The key-vault port: wrapped data keys by tenant, subject and version, and how many seals
//! of each version are spoken for; and its in-memory adapter. A vault never sees a plaintext
//! key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{CryptoError, KekEpoch, KeyId, KeyOwner};

/// A data key as stored: wrapped under the tenant KEK of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which key and version.
    pub id: KeyId,
    /// The KEK epoch that wraps it.
    pub epoch: KekEpoch,
    /// The wrapped key bytes (opaque; produced by a [`crate::Kms`]).
    pub wrapped: Vec<u8>,
    /// Creation time in seconds since the Unix epoch, for scheduled rotation.
    pub created_at: i64,
}

/// What the vault knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// The key exists.
    Live(WrappedKey),
    /// The key's subject or tenant was erased: the data it sealed is gone for good.
    Destroyed,
    /// No such key was ever stored.
    Unknown,
}

/// Seals of a key version that belong to the process that inserted it, without a write to
/// the vault (or the limit, if lower): creating a key costs no reservation.
pub const CREATOR_SEALS: u64 = 1024;

/// Stores wrapped data keys. Destroying is final: later lookups say [`KeyLookup::Destroyed`]
/// and later inserts for a destroyed subject or tenant fail.
#[async_trait]
pub trait KeyVault: Send + Sync {
    /// Stores a new key version; [`CryptoError::Conflict`] if that version exists, and
    /// [`CryptoError::TenantDestroyed`] if its tenant or subject was destroyed.
    async fn insert(&self, key: &WrappedKey) -> Result<(), CryptoError>;
    /// One key version.
    async fn get(&self, id: &KeyId) -> Result<KeyLookup, CryptoError>;
    /// The highest live version of a tenant's or subject's key, if any.
    async fn latest(&self, tenant: &str, owner: &KeyOwner) -> Result<KeyLookup, CryptoError>;
    /// Replaces the wrapping of an existing key (re-wrap under a new KEK epoch).
    async fn rewrap(&self, key: &WrappedKey) -> Result<(), CryptoError>;
    /// Destroys every version of a subject's key.
    async fn destroy_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError>;
    /// Destroys every key of a tenant.
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError>;
    /// Every live key of a tenant, for re-wrap.
    async fn live_keys(&self, tenant: &str) -> Result<Vec<WrappedKey>, CryptoError>;
    /// Reserves up to `count` more seals of key version `id` for the caller, never more than
    /// `limit` in all, and returns how many it granted: 0 when the version is used up (rotate
    /// it). Seals are counted across every process and restart: two callers never get the
    /// same seal, so a key's random nonces stay within `limit`. The first
    /// `min(CREATOR_SEALS, limit)` went to the key's creator ([`CREATOR_SEALS`]). The vault
    /// does not check that the key exists; destroying it forgets its count.
    async fn reserve_seals(&self, id: &KeyId, count: u64, limit: u64) -> Result<u64, CryptoError>;
}

#[async_trait]
impl<V: KeyVault + ?Sized> KeyVault for Arc<V> {
    async fn insert(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        (**self).insert(key).await
    }
    async fn get(&self, id: &KeyId) -> Result<KeyLookup, CryptoError> {
        (**self).get(id).await
    }
    async fn latest(&self, tenant: &str, owner: &KeyOwner) -> Result<KeyLookup, CryptoError> {
        (**self).latest(tenant, owner).await
    }
    async fn rewrap(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        (**self).rewrap(key).await
    }
    async fn destroy_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError> {
        (**self).destroy_subject(tenant, subject).await
    }
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        (**self).destroy_tenant(tenant).await
    }
    async fn live_keys(&self, tenant: &str) -> Result<Vec<WrappedKey>, CryptoError> {
        (**self).live_keys(tenant).await
    }
    async fn reserve_seals(&self, id: &KeyId, count: u64, limit: u64) -> Result<u64, CryptoError> {
        (**self).reserve_seals(id, count, limit).await
    }
}

#[derive(Default)]
struct Tables {
    keys: BTreeMap<KeyId, WrappedKey>,
    /// Seals reserved per key version; a missing entry means the creator's block.
    reserved: BTreeMap<KeyId, u64>,
    destroyed_subjects: BTreeSet<(String, String)>,
    destroyed_tenants: BTreeSet<String>,
}

impl Tables {
    fn destroyed(&self, tenant: &str, owner: &KeyOwner) -> bool {
        self.destroyed_tenants.contains(tenant)
            || matches!(owner, KeyOwner::Subject(s) if self.destroyed_subjects.contains(&(tenant.to_owned(), s.clone())))
    }
}

/// A key vault in process memory, for unit tests.
#[derive(Default)]
pub struct InMemoryKeyVault {
    tables: Mutex<Tables>,
}

impl InMemoryKeyVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> Result<T, CryptoError>) -> Result<T, CryptoError> {
        let mut t = self
            .tables
            .lock()
            .map_err(|_| CryptoError::Store("vault lock poisoned".into()))?;
        f(&mut t)
    }
}

#[async_trait]
impl KeyVault for InMemoryKeyVault {
    async fn insert(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        self.with(|t| {
            if t.destroyed(&key.id.tenant, &key.id.owner) {
                return Err(CryptoError::TenantDestroyed(key.id.tenant.clone()));
            }
            if t.keys.contains_key(&key.id) {
                return Err(CryptoError::Conflict {
                    tenant: key.id.tenant.clone(),
                    key_id: key.id.to_string(),
                });
            }
            t.keys.insert(key.id.clone(), key.clone());
            Ok(())
        })
    }

    async fn get(&self, id: &KeyId) -> Result<KeyLookup, CryptoError> {
        self.with(|t| {
            Ok(if t.destroyed(&id.tenant, &id.owner) {
                KeyLookup::Destroyed
            } else {
                t.keys.get(id).cloned().map_or(KeyLookup::Unknown, KeyLookup::Live)
            })
        })
    }

    async fn latest(&self, tenant: &str, owner: &KeyOwner) -> Result<KeyLookup, CryptoError> {
        self.with(|t| {
            if t.destroyed(tenant, owner) {
                return Ok(KeyLookup::Destroyed);
            }
            Ok(t.keys
                .values()
                .filter(|k| k.id.tenant == tenant && &k.id.owner == owner)
                .max_by_key(|k| k.id.version)
                .cloned()
                .map_or(KeyLookup::Unknown, KeyLookup::Live))
        })
    }

    async fn rewrap(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        self.with(|t| match t.keys.get_mut(&key.id) {
            Some(existing) => {
                existing.epoch = key.epoch;
                existing.wrapped.clone_from(&key.wrapped);
                Ok(())
            }
            None => Err(CryptoError::KeyNotFound {
                tenant: key.id.tenant.clone(),
                key_id: key.id.to_string(),
            }),
        })
    }

    async fn destroy_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError> {
        self.with(|t| {
            let subjects = |id: &KeyId| id.tenant == tenant && id.subject_id() == Some(subject);
            t.keys.retain(|id, _| !subjects(id));
            t.reserved.retain(|id, _| !subjects(id));
            t.destroyed_subjects.insert((tenant.to_owned(), subject.to_owned()));
            Ok(())
        })
    }

    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        self.with(|t| {
            t.keys.retain(|id, _| id.tenant != tenant);
            t.reserved.retain(|id, _| id.tenant != tenant);
            t.destroyed_tenants.insert(tenant.to_owned());
            Ok(())
        })
    }

    async fn live_keys(&self, tenant: &str) -> Result<Vec<WrappedKey>, CryptoError> {
        self.with(|t| Ok(t.keys.values().filter(|k| k.id.tenant == tenant).cloned().collect()))
    }

    async fn reserve_seals(&self, id: &KeyId, count: u64, limit: u64) -> Result<u64, CryptoError> {
        self.with(|t| {
            let reserved = t.reserved.entry(id.clone()).or_insert(CREATOR_SEALS.min(limit));
            let granted = count.min(limit.saturating_sub(*reserved));
            *reserved += granted;
            Ok(granted)
        })
    }
}
