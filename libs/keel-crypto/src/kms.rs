//! The master-key provider port and its in-memory adapter.
//!
//! Tenant key-encryption keys (KEKs) live inside the KMS and never leave it: one KEK per
//! tenant and epoch. The KMS wraps and unwraps data keys under a named epoch, with a context
//! that is authenticated (Vault transit `context`, AWS KMS `EncryptionContext`, PKCS#11
//! AES-GCM AAD). Destroying an epoch makes every key still wrapped under it unreadable.
//! The trait is async because every production backend is a network or HSM call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::aead::{DataKey, KEY_LEN, associated_data};
use crate::{CryptoError, KekEpoch};

/// Master-key provider: holds tenant KEKs by epoch and wraps data keys with them.
#[async_trait]
pub trait Kms: Send + Sync {
    /// The newest live epoch of a tenant, creating epoch 1 on first use.
    async fn current_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError>;
    /// Creates a new epoch (a fresh KEK) and makes it current.
    async fn new_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError>;
    /// Wraps a data key under the tenant's KEK of `epoch`, binding `context`.
    async fn wrap(&self, tenant: &str, epoch: KekEpoch, context: &str, key: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Unwraps a data key; [`CryptoError::TenantDestroyed`] if the epoch was destroyed.
    async fn unwrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// Destroys one KEK epoch of a tenant for good.
    async fn destroy_epoch(&self, tenant: &str, epoch: KekEpoch) -> Result<(), CryptoError>;
    /// Destroys every KEK epoch of a tenant for good.
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError>;
}

#[async_trait]
impl<K: Kms + ?Sized> Kms for Arc<K> {
    async fn current_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        (**self).current_epoch(tenant).await
    }
    async fn new_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        (**self).new_epoch(tenant).await
    }
    async fn wrap(&self, tenant: &str, epoch: KekEpoch, context: &str, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        (**self).wrap(tenant, epoch, context, key).await
    }
    async fn unwrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        (**self).unwrap(tenant, epoch, context, wrapped).await
    }
    async fn destroy_epoch(&self, tenant: &str, epoch: KekEpoch) -> Result<(), CryptoError> {
        (**self).destroy_epoch(tenant, epoch).await
    }
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        (**self).destroy_tenant(tenant).await
    }
}

/// KEK material of one tenant: `None` marks a destroyed epoch.
pub(crate) type TenantKeks = BTreeMap<KekEpoch, Option<Zeroizing<Vec<u8>>>>;

/// Shared KEK bookkeeping of the in-memory and file-backed KMS.
#[derive(Default)]
pub(crate) struct KekTable {
    pub(crate) tenants: BTreeMap<String, TenantKeks>,
}

impl KekTable {
    /// The tenant's current epoch, if it has one (a destroyed tenant is an error).
    pub(crate) fn existing(&self, tenant: &str) -> Result<Option<KekEpoch>, CryptoError> {
        match self.tenants.get(tenant).and_then(|keks| keks.iter().next_back()) {
            None => Ok(None),
            Some((epoch, Some(_))) => Ok(Some(*epoch)),
            Some((_, None)) => Err(CryptoError::TenantDestroyed(tenant.to_owned())),
        }
    }

    /// The tenant's current epoch, creating its first KEK if it has none.
    pub(crate) fn current(&mut self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        if let Some(epoch) = self.existing(tenant)? {
            return Ok(epoch);
        }
        let (_, raw) = DataKey::generate();
        self.tenants.entry(tenant.to_owned()).or_default().insert(1, Some(raw));
        Ok(1)
    }

    pub(crate) fn new_epoch(&mut self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        let current = self.current(tenant)?;
        let (_, raw) = DataKey::generate();
        let next = current + 1;
        self.tenants
            .entry(tenant.to_owned())
            .or_default()
            .insert(next, Some(raw));
        Ok(next)
    }

    fn kek(&self, tenant: &str, epoch: KekEpoch) -> Result<DataKey, CryptoError> {
        match self.tenants.get(tenant).and_then(|k| k.get(&epoch)) {
            Some(Some(raw)) => DataKey::from_bytes(raw),
            _ => Err(CryptoError::TenantDestroyed(tenant.to_owned())),
        }
    }

    pub(crate) fn wrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let kek = self.kek(tenant, epoch)?;
        let aad = associated_data("keel/wrap/v1", &[tenant, &epoch.to_string(), context]);
        let (nonce, ct) = kek.seal(&aad, key.to_vec())?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    pub(crate) fn unwrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kek = self.kek(tenant, epoch)?;
        let aad = associated_data("keel/wrap/v1", &[tenant, &epoch.to_string(), context]);
        let (nonce, ct) = wrapped
            .split_at_checked(crate::aead::NONCE_LEN)
            .ok_or_else(|| CryptoError::Open {
                what: context.to_owned(),
            })?;
        let raw = Zeroizing::new(kek.open(&aad, nonce, ct, context)?);
        if raw.len() != KEY_LEN {
            return Err(CryptoError::Malformed(format!("unwrapped {context} is not a key")));
        }
        Ok(raw)
    }

    pub(crate) fn destroy_epoch(&mut self, tenant: &str, epoch: KekEpoch) {
        if let Some(keks) = self.tenants.get_mut(tenant)
            && let Some(slot) = keks.get_mut(&epoch)
        {
            *slot = None;
        }
    }

    pub(crate) fn destroy_tenant(&mut self, tenant: &str) {
        let keks = self.tenants.entry(tenant.to_owned()).or_default();
        if keks.is_empty() {
            keks.insert(1, None);
        }
        for slot in keks.values_mut() {
            *slot = None;
        }
    }
}

/// A KMS in process memory, for unit tests.
#[derive(Default)]
pub struct InMemoryKms {
    table: Mutex<KekTable>,
}

impl InMemoryKms {
    /// An empty KMS.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut KekTable) -> Result<T, CryptoError>) -> Result<T, CryptoError> {
        let mut table = self
            .table
            .lock()
            .map_err(|_| CryptoError::Store("kms lock poisoned".into()))?;
        f(&mut table)
    }
}

#[async_trait]
impl Kms for InMemoryKms {
    async fn current_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        self.with(|t| t.current(tenant))
    }
    async fn new_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        self.with(|t| t.new_epoch(tenant))
    }
    async fn wrap(&self, tenant: &str, epoch: KekEpoch, context: &str, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.with(|t| t.wrap(tenant, epoch, context, key))
    }
    async fn unwrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.with(|t| t.unwrap(tenant, epoch, context, wrapped))
    }
    async fn destroy_epoch(&self, tenant: &str, epoch: KekEpoch) -> Result<(), CryptoError> {
        self.with(|t| {
            t.destroy_epoch(tenant, epoch);
            Ok(())
        })
    }
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        self.with(|t| {
            t.destroy_tenant(tenant);
            Ok(())
        })
    }
}
