//! The key service: finds or creates the data key to seal with, rotates it by policy,
//! unwraps keys to open with, re-wraps under a new KEK epoch, and erases.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};

use crate::aead::DataKey;
use crate::cache::KeyCache;
use crate::sealing::Sealing;
use crate::{CREATOR_SEALS, CryptoError, KekEpoch, KeyId, KeyLookup, KeyOwner, KeyVault, Kms, WrappedKey};

/// When a data key gets a new version. Old versions stay readable until destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Seals one key version may make in all, across every process and restart: processes
    /// reserve seals in the vault ([`KeyVault::reserve_seals`]), so none is counted twice.
    /// Random 96-bit nonces allow 2^32 seals per key (NIST SP 800-38D), the default.
    /// Every process sealing with a tenant's keys must use the same value.
    pub max_seals: u64,
    /// Age in seconds after which a key version is replaced.
    pub max_age_secs: i64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_seals: 1 << 32,
            max_age_secs: 90 * 24 * 3600,
        }
    }
}

/// How long an unwrapped key stays cached unless told otherwise: the bound on how long a
/// process that has not heard of an erasure made elsewhere can still open the erased data.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(1);

/// The fewest owners (tenant or subject keys) whose reserved seals a key ring remembers,
/// even with a smaller key cache: forgetting one costs a vault read and a reservation.
pub const SEALING_OWNERS: usize = 1024;

/// Keys a KEK rotation re-wraps at once.
const REWRAP_CONCURRENCY: usize = 16;

/// Counter of keys served from the cache of unwrapped keys.
pub const KEY_CACHE_HITS: &str = "keel_key_cache_hits_total";
/// Counter of live keys the cache did not hold, so the KMS unwrapped them (keys created or
/// found destroyed are neither hits nor misses).
pub const KEY_CACHE_MISSES: &str = "keel_key_cache_misses_total";

/// Counter of seal reservations asked of the vault: one per block of seals a process takes
/// for a key version it did not create (blocks double, up to 2^20 seals).
pub const KEY_SEAL_RESERVATIONS: &str = "keel_key_seal_reservations_total";

/// What [`KeyRing::retire_epochs`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The tenant's KEK epoch from now on.
    pub epoch: KekEpoch,
    /// Live keys re-wrapped under it.
    pub rewrapped: usize,
    /// The epochs destroyed (every older one; destroying one twice is harmless).
    pub destroyed: Vec<KekEpoch>,
}

/// The key service over a [`Kms`] and a [`KeyVault`].
pub struct KeyRing<K, V> {
    kms: K,
    vault: V,
    policy: RotationPolicy,
    memory: Mutex<Memory>,
}

/// What the key ring holds in memory, behind one lock: serving a cached key takes it once.
#[derive(Debug)]
struct Memory {
    cache: KeyCache,
    /// The version each owner seals with now and the seals reserved for it: spares a vault
    /// read per seal, and is looked up without building a key.
    sealing: Sealing,
}

impl Memory {
    /// One seal of the current key of `owner`, if this process holds one, the key is cached
    /// and not due for rotation by age. Reads the clock once and builds nothing but the id.
    fn seal_with_current(&mut self, tenant: &str, owner: &KeyOwner) -> Option<(KeyId, Arc<DataKey>)> {
        let now = Instant::now();
        let current = self.sealing.get_mut(tenant, owner)?;
        if current.left == 0 || now >= current.rotate_at {
            return None;
        }
        let key = self.cache.get(&current.id, now)?;
        current.left -= 1;
        Some((current.id.clone(), key))
    }
}

/// Seconds until a key created at `created_at` (wall clock, as the vault stores it) is due
/// for rotation by age; zero or less once it is.
fn secs_left(policy: &RotationPolicy, created_at: i64) -> i64 {
    created_at
        .saturating_add(policy.max_age_secs)
        .saturating_sub(now_secs())
}

/// Whether a key created at `created_at` must be replaced by age.
fn too_old(policy: &RotationPolicy, created_at: i64) -> bool {
    secs_left(policy, created_at) <= 0
}

/// When a key created at `created_at` is due for rotation by age, on the monotonic clock the
/// seal path reads: one clock read per seal. Ages beyond a century are capped there.
fn rotate_at(policy: &RotationPolicy, created_at: i64) -> Instant {
    const CENTURY: u64 = 100 * 365 * 24 * 3600;
    let left = u64::try_from(secs_left(policy, created_at)).unwrap_or(0);
    Instant::now() + Duration::from_secs(left.min(CENTURY))
}

impl<K, V> std::fmt::Debug for KeyRing<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, CryptoError> {
    m.lock()
        .map_err(|_| CryptoError::Store("key ring lock poisoned".into()))
}

impl<K: Kms, V: KeyVault> KeyRing<K, V> {
    /// A key ring caching at most `cache_capacity` unwrapped keys, each for at most
    /// [`DEFAULT_CACHE_TTL`].
    pub fn new(kms: K, vault: V, policy: RotationPolicy, cache_capacity: usize) -> Self {
        Self::with_cache(kms, vault, policy, cache_capacity, DEFAULT_CACHE_TTL)
    }

    /// A key ring caching at most `cache_capacity` unwrapped keys, each for at most
    /// `cache_ttl` after it was unwrapped (zero: no cache). It keeps the reserved seals of
    /// as many owners as it caches keys, and of at least [`SEALING_OWNERS`].
    pub fn with_cache(kms: K, vault: V, policy: RotationPolicy, cache_capacity: usize, cache_ttl: Duration) -> Self {
        Self {
            kms,
            vault,
            policy,
            memory: Mutex::new(Memory {
                cache: KeyCache::new(cache_capacity, cache_ttl),
                sealing: Sealing::new(cache_capacity.max(SEALING_OWNERS)),
            }),
        }
    }

    /// The vault, e.g. for an admin listing.
    pub fn vault(&self) -> &V {
        &self.vault
    }

    /// The KMS.
    pub fn kms(&self) -> &K {
        &self.kms
    }

    /// The key to seal with for `owner` in `tenant`, rotating it first if the policy says so;
    /// takes one of the seals this process reserved for it, reserving more in the vault when
    /// they run out. A destroyed subject or tenant cannot get new keys. While the current key
    /// is cached and seals are left, no vault call happens: a process that learns of an
    /// erasure made elsewhere must call [`Self::evict_subject`] / [`Self::evict_tenant`].
    pub async fn seal_key(&self, tenant: &str, owner: &KeyOwner) -> Result<(KeyId, Arc<DataKey>), CryptoError> {
        let current = lock(&self.memory)?.seal_with_current(tenant, owner);
        if let Some(found) = current {
            metrics::counter!("keel_key_cache_hits_total").increment(1);
            return Ok(found);
        }
        for _ in 0..3 {
            let next_version = match self.vault.latest(tenant, owner).await? {
                KeyLookup::Destroyed => return Err(CryptoError::TenantDestroyed(tenant.to_owned())),
                KeyLookup::Unknown => 1,
                KeyLookup::Live(key) => {
                    if !too_old(&self.policy, key.created_at) && self.reserve(&key).await? {
                        let data_key = self.unwrap_cached(&key).await?;
                        if lock(&self.memory)?.sealing.take(&key.id) {
                            return Ok((key.id, data_key));
                        }
                        // Other tasks of this process used the seals up meanwhile.
                        continue;
                    }
                    key.id.version + 1
                }
            };
            let id = KeyId {
                tenant: tenant.to_owned(),
                owner: owner.clone(),
                version: next_version,
            };
            match self.create(&id).await {
                Ok(data_key) => {
                    let mut memory = lock(&self.memory)?;
                    memory.sealing.grant(
                        &id,
                        rotate_at(&self.policy, now_secs()),
                        CREATOR_SEALS.min(self.policy.max_seals),
                    );
                    if memory.sealing.take(&id) {
                        return Ok((id, data_key));
                    }
                }
                Err(CryptoError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(CryptoError::Conflict {
            tenant: tenant.to_owned(),
            key_id: format!("{owner:?}"),
        })
    }

    /// Whether this process holds seals of `key`, reserving the next block in the vault if
    /// not (`keel_key_seal_reservations_total`); `false` when the version is used up.
    async fn reserve(&self, key: &WrappedKey) -> Result<bool, CryptoError> {
        let block = {
            let memory = lock(&self.memory)?;
            if memory.sealing.left(&key.id) > 0 {
                return Ok(true);
            }
            memory.sealing.next_block(&key.id)
        };
        metrics::counter!("keel_key_seal_reservations_total").increment(1);
        let granted = self.vault.reserve_seals(&key.id, block, self.policy.max_seals).await?;
        if granted == 0 {
            return Ok(false);
        }
        lock(&self.memory)?
            .sealing
            .grant(&key.id, rotate_at(&self.policy, key.created_at), granted);
        Ok(true)
    }

    /// The key to open with; `None` if it was destroyed (the data it sealed is erased).
    pub async fn open_key(&self, id: &KeyId) -> Result<Option<Arc<DataKey>>, CryptoError> {
        if let Some(key) = self.cached(id)? {
            return Ok(Some(key));
        }
        match self.vault.get(id).await? {
            KeyLookup::Live(key) => match self.unwrap_cached(&key).await {
                Ok(k) => Ok(Some(k)),
                Err(CryptoError::TenantDestroyed(_)) => Ok(None),
                Err(e) => Err(e),
            },
            KeyLookup::Destroyed => Ok(None),
            KeyLookup::Unknown => Err(CryptoError::KeyNotFound {
                tenant: id.tenant.clone(),
                key_id: id.to_string(),
            }),
        }
    }

    /// Starts a new KEK epoch and re-wraps every live data key of the tenant under it.
    /// Returns the new epoch; older epochs can then be destroyed with [`Self::destroy_epoch`].
    pub async fn rotate_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        let epoch = self.kms.new_epoch(tenant).await?;
        let mut keys = self.vault.live_keys(tenant).await?;
        keys.retain(|key| key.epoch != epoch);
        self.rewrap_all(tenant, epoch, keys).await?;
        Ok(epoch)
    }

    /// Re-wraps `keys` under `epoch`, [`REWRAP_CONCURRENCY`] at a time (each key is its own
    /// vault transaction); a key erased meanwhile needs none and is skipped. Returns how
    /// many were re-wrapped.
    async fn rewrap_all(&self, tenant: &str, epoch: KekEpoch, keys: Vec<WrappedKey>) -> Result<usize, CryptoError> {
        futures::stream::iter(keys)
            .map(|key| async move {
                let context = key.id.to_string();
                let raw = self.kms.unwrap(tenant, key.epoch, &context, &key.wrapped).await?;
                let wrapped = self.kms.wrap(tenant, epoch, &context, &raw).await?;
                match self.vault.rewrap(&WrappedKey { epoch, wrapped, ..key }).await {
                    Ok(()) => Ok(1),
                    Err(CryptoError::KeyNotFound { .. }) => Ok(0),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(REWRAP_CONCURRENCY)
            .try_fold(0, |total, one| async move { Ok(total + one) })
            .await
    }

    /// Second half of a KEK rotation (the first is [`Kms::new_epoch`]): re-wraps every live
    /// key still under an older epoch into `epoch`, then destroys every older epoch, so that
    /// every copy of a key wrapped before (a destroyed subject's key in an old SSTable,
    /// snapshot or backup included) can never be unwrapped again.
    ///
    /// Wait a grace period between the two halves: a key another process was wrapping under
    /// the old epoch at that moment has been stored by then and is re-wrapped here. A key
    /// that still turns up under an old epoch is re-wrapped and the check repeated: an
    /// epoch is destroyed only when no live key needs it.
    pub async fn retire_epochs_before(&self, tenant: &str, epoch: KekEpoch) -> Result<Retirement, CryptoError> {
        let mut rewrapped = 0;
        for _ in 0..5 {
            let stale: Vec<WrappedKey> = self
                .vault
                .live_keys(tenant)
                .await?
                .into_iter()
                .filter(|key| key.epoch < epoch)
                .collect();
            if stale.is_empty() {
                for old in 1..epoch {
                    self.kms.destroy_epoch(tenant, old).await?;
                }
                return Ok(Retirement {
                    epoch,
                    rewrapped,
                    destroyed: (1..epoch).collect(),
                });
            }
            rewrapped += self.rewrap_all(tenant, epoch, stale).await?;
        }
        Err(CryptoError::EpochInUse {
            tenant: tenant.to_owned(),
            epoch: epoch - 1,
            live: 1,
        })
    }

    /// Destroys a KEK epoch; refuses while live keys are still wrapped under it.
    pub async fn destroy_epoch(&self, tenant: &str, epoch: KekEpoch) -> Result<(), CryptoError> {
        let live = self
            .vault
            .live_keys(tenant)
            .await?
            .iter()
            .filter(|k| k.epoch == epoch)
            .count();
        if live > 0 {
            return Err(CryptoError::EpochInUse {
                tenant: tenant.to_owned(),
                epoch,
                live,
            });
        }
        self.kms.destroy_epoch(tenant, epoch).await
    }

    /// Every version of a subject's key, to list before erasing it; `None` if the subject
    /// is already erased. Versions run gapless from 1 to the latest (old versions are kept
    /// until the subject is erased).
    pub async fn subject_key_ids(&self, tenant: &str, subject: &str) -> Result<Option<Vec<KeyId>>, CryptoError> {
        let owner = KeyOwner::Subject(subject.to_owned());
        Ok(match self.vault.latest(tenant, &owner).await? {
            KeyLookup::Destroyed => None,
            KeyLookup::Unknown => Some(Vec::new()),
            KeyLookup::Live(key) => Some(
                (1..=key.id.version)
                    .map(|version| KeyId {
                        tenant: tenant.to_owned(),
                        owner: owner.clone(),
                        version,
                    })
                    .collect(),
            ),
        })
    }

    /// Destroys every version of a subject's key: its personal fields open as erased.
    pub async fn erase_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError> {
        self.vault.destroy_subject(tenant, subject).await?;
        self.evict_subject(tenant, subject)
    }

    /// Destroys every key of a tenant and its KEKs: nothing of the tenant opens again.
    pub async fn erase_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        self.vault.destroy_tenant(tenant).await?;
        self.kms.destroy_tenant(tenant).await?;
        self.evict_tenant(tenant)
    }

    /// Drops a subject's unwrapped keys from the cache (e.g. on an erasure seen elsewhere).
    pub fn evict_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError> {
        let mut memory = lock(&self.memory)?;
        memory.cache.evict_subject(tenant, subject);
        memory.sealing.forget_subject(tenant, subject);
        Ok(())
    }

    /// Drops every unwrapped key of a tenant from the cache.
    pub fn evict_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        let mut memory = lock(&self.memory)?;
        memory.cache.evict_tenant(tenant);
        memory.sealing.forget_tenant(tenant);
        Ok(())
    }

    /// How many unwrapped keys the cache holds.
    pub fn cached_keys(&self) -> usize {
        lock(&self.memory).map_or(0, |m| m.cache.len())
    }

    async fn create(&self, id: &KeyId) -> Result<Arc<DataKey>, CryptoError> {
        let (data_key, raw) = DataKey::generate();
        let epoch = self.kms.current_epoch(&id.tenant).await?;
        let wrapped = self.kms.wrap(&id.tenant, epoch, &id.to_string(), &raw).await?;
        let key = WrappedKey {
            id: id.clone(),
            epoch,
            wrapped,
            created_at: now_secs(),
        };
        self.vault.insert(&key).await?;
        let data_key = Arc::new(data_key);
        let mut memory = lock(&self.memory)?;
        memory.cache.evict_owner(&id.tenant, &id.owner);
        memory.cache.insert(id.clone(), Arc::clone(&data_key));
        Ok(data_key)
    }

    /// A key served from the cache, counted as a hit (`keel_key_cache_hits_total`).
    fn cached(&self, id: &KeyId) -> Result<Option<Arc<DataKey>>, CryptoError> {
        let found = lock(&self.memory)?.cache.get(id, Instant::now());
        if found.is_some() {
            metrics::counter!("keel_key_cache_hits_total").increment(1);
        }
        Ok(found)
    }

    /// The live `key` unwrapped: from the cache (a hit), else by the KMS (a miss,
    /// `keel_key_cache_misses_total`), then cached.
    async fn unwrap_cached(&self, key: &WrappedKey) -> Result<Arc<DataKey>, CryptoError> {
        if let Some(k) = self.cached(&key.id)? {
            return Ok(k);
        }
        metrics::counter!("keel_key_cache_misses_total").increment(1);
        let raw = self
            .kms
            .unwrap(&key.id.tenant, key.epoch, &key.id.to_string(), &key.wrapped)
            .await?;
        let data_key = Arc::new(DataKey::from_bytes(&raw)?);
        lock(&self.memory)?.cache.insert(key.id.clone(), Arc::clone(&data_key));
        Ok(data_key)
    }
}
