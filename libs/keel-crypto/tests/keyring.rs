//! Key hierarchy: rotation by seal count and age, KEK epochs, cache bounds, the file KMS.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use keel_crypto::{
    CREATOR_SEALS, CryptoError, InMemoryKeyVault, InMemoryKms, KeyId, KeyLookup, KeyOwner, KeyRing, KeyVault, Kms,
    LocalFileKms, RotationPolicy,
};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn ring(policy: RotationPolicy, cache: usize) -> KeyRing<InMemoryKms, InMemoryKeyVault> {
    KeyRing::new(InMemoryKms::new(), InMemoryKeyVault::new(), policy, cache)
}

#[tokio::test]
async fn a_key_rotates_after_max_seals_and_old_versions_stay_readable() -> Result {
    let ring = ring(
        RotationPolicy {
            max_seals: 3,
            ..RotationPolicy::default()
        },
        8,
    );
    let mut versions = Vec::new();
    for _ in 0..7 {
        versions.push(ring.seal_key("acme", &KeyOwner::Tenant).await?.0.version);
    }
    assert_eq!(versions, [1, 1, 1, 2, 2, 2, 3]);
    assert!(ring.open_key(&KeyId::tenant("acme", 1)).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn seals_are_counted_across_processes_so_a_restart_does_not_reset_them() -> Result {
    let policy = RotationPolicy {
        max_seals: CREATOR_SEALS + 100,
        ..RotationPolicy::default()
    };
    let (kms, vault) = (Arc::new(InMemoryKms::new()), Arc::new(InMemoryKeyVault::new()));
    let first = KeyRing::new(Arc::clone(&kms), Arc::clone(&vault), policy, 8);
    // The first process creates version 1 (its first CREATOR_SEALS seals are its own),
    // seals a few times and dies.
    for _ in 0..5 {
        assert_eq!(first.seal_key("acme", &KeyOwner::Tenant).await?.0.version, 1);
    }
    drop(first);
    // Restarted, it may only have what the first one left unreserved: 100 seals.
    let second = KeyRing::new(kms, vault, policy, 8);
    let mut versions = Vec::new();
    for _ in 0..102 {
        versions.push(second.seal_key("acme", &KeyOwner::Tenant).await?.0.version);
    }
    assert_eq!(versions.iter().filter(|v| **v == 1).count(), 100);
    assert_eq!(&versions[100..], [2, 2]);
    Ok(())
}

#[tokio::test]
async fn a_key_rotates_on_schedule() -> Result {
    let ring = ring(
        RotationPolicy {
            max_seals: u64::MAX,
            max_age_secs: 0,
        },
        8,
    );
    let first = ring.seal_key("acme", &KeyOwner::Subject("alice".into())).await?.0;
    let second = ring.seal_key("acme", &KeyOwner::Subject("alice".into())).await?.0;
    assert_eq!((first.version, second.version), (1, 2));
    Ok(())
}

#[tokio::test]
async fn a_key_held_in_memory_is_replaced_once_it_comes_of_age() -> Result {
    // The key stays cached (a minute) past its age (a second): only the age check of the
    // seal path, not a cache miss, can make the third seal rotate.
    let policy = RotationPolicy {
        max_seals: u64::MAX,
        max_age_secs: 1,
    };
    let ring = KeyRing::with_cache(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        policy,
        8,
        std::time::Duration::from_secs(60),
    );
    let mut versions = Vec::new();
    for _ in 0..2 {
        versions.push(ring.seal_key("acme", &KeyOwner::Tenant).await?.0.version);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    versions.push(ring.seal_key("acme", &KeyOwner::Tenant).await?.0.version);
    assert_eq!(versions, [1, 1, 2]);
    Ok(())
}

#[tokio::test]
async fn a_new_epoch_rewraps_live_keys_so_the_old_one_can_be_destroyed() -> Result {
    let ring = ring(RotationPolicy::default(), 0);
    let (tenant_key, _) = ring.seal_key("acme", &KeyOwner::Tenant).await?;
    let (subject_key, _) = ring.seal_key("acme", &KeyOwner::Subject("alice".into())).await?;
    let refused = ring.destroy_epoch("acme", 1).await;
    assert!(
        matches!(refused, Err(CryptoError::EpochInUse { live: 2, .. })),
        "{refused:?}"
    );
    let epoch = ring.rotate_epoch("acme").await?;
    assert_eq!(epoch, 2);
    ring.destroy_epoch("acme", 1).await?;
    assert!(ring.open_key(&tenant_key).await?.is_some());
    assert!(ring.open_key(&subject_key).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn destroying_an_epoch_that_still_wraps_keys_makes_them_unreadable() -> Result {
    let ring = ring(RotationPolicy::default(), 0);
    let (id, _) = ring.seal_key("acme", &KeyOwner::Tenant).await?;
    ring.kms().destroy_epoch("acme", 1).await?;
    assert!(ring.open_key(&id).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn the_cache_is_bounded_and_evicts_per_subject_and_tenant() -> Result {
    let ring = ring(RotationPolicy::default(), 2);
    for s in ["a", "b", "c"] {
        ring.seal_key("acme", &KeyOwner::Subject(s.into())).await?;
    }
    assert_eq!(ring.cached_keys(), 2);
    ring.evict_subject("acme", "c")?;
    assert_eq!(ring.cached_keys(), 1);
    ring.evict_tenant("acme")?;
    assert_eq!(ring.cached_keys(), 0);
    Ok(())
}

#[tokio::test]
async fn erasing_a_subject_evicts_its_cached_key() -> Result {
    let ring = ring(RotationPolicy::default(), 8);
    let (id, _) = ring.seal_key("acme", &KeyOwner::Subject("alice".into())).await?;
    ring.erase_subject("acme", "alice").await?;
    assert!(ring.open_key(&id).await?.is_none());
    assert_eq!(ring.vault().get(&id).await?, KeyLookup::Destroyed);
    assert!(ring.seal_key("acme", &KeyOwner::Subject("alice".into())).await.is_err());
    Ok(())
}

#[tokio::test]
async fn the_file_kms_creates_its_file_owner_only_and_keeps_keks_across_restarts() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kms.json");
    let kms = LocalFileKms::open(&path)?;
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    let epoch = kms.current_epoch("acme").await?;
    let wrapped = kms.wrap("acme", epoch, "ctx", &[7u8; 32]).await?;
    drop(kms);
    let reopened = LocalFileKms::open(&path)?;
    assert_eq!(
        reopened.unwrap("acme", epoch, "ctx", &wrapped).await?.as_slice(),
        &[7u8; 32]
    );
    assert!(reopened.unwrap("acme", epoch, "other", &wrapped).await.is_err());
    Ok(())
}

#[tokio::test]
async fn the_file_kms_rewrites_its_file_only_when_a_kek_changes() -> Result {
    use std::os::unix::fs::MetadataExt;
    // Every new data key asks for the tenant's epoch; a rewrite is a new file renamed over
    // the old one (a new inode) and an fsync. The old file stays open here, so its inode
    // cannot be reused by a rewrite.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kms.json");
    let kms = LocalFileKms::open(&path)?;
    let first = kms.current_epoch("acme").await?;
    let held = std::fs::File::open(&path)?;
    let written = held.metadata()?.ino();
    for _ in 0..3 {
        assert_eq!(kms.current_epoch("acme").await?, first);
    }
    assert_eq!(std::fs::metadata(&path)?.ino(), written, "asking changed nothing");
    kms.current_epoch("globex").await?;
    assert_ne!(
        std::fs::metadata(&path)?.ino(),
        written,
        "a new tenant's first KEK is written"
    );
    Ok(())
}

#[tokio::test]
async fn two_file_kms_on_one_file_see_each_others_keks_and_destructions() -> Result {
    // The handler, the query API and the admin service each open the same file.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kms.json");
    let (handler, admin) = (LocalFileKms::open(&path)?, LocalFileKms::open(&path)?);
    let epoch = handler.current_epoch("acme").await?;
    let wrapped = handler.wrap("acme", epoch, "ctx", &[7u8; 32]).await?;
    assert_eq!(
        admin.current_epoch("acme").await?,
        epoch,
        "one KEK, not one per process"
    );
    assert_eq!(
        admin.unwrap("acme", epoch, "ctx", &wrapped).await?.as_slice(),
        &[7u8; 32]
    );
    let globex = admin.current_epoch("globex").await?;
    assert!(handler.wrap("globex", globex, "ctx", &[1u8; 32]).await.is_ok());
    admin.destroy_tenant("acme").await?;
    assert!(
        handler.unwrap("acme", epoch, "ctx", &wrapped).await.is_err(),
        "a KEK destroyed by one process is gone for the other"
    );
    Ok(())
}

#[test]
fn the_file_kms_refuses_a_file_others_can_read() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kms.json");
    std::fs::write(&path, "{}")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    assert!(matches!(
        LocalFileKms::open(&path),
        Err(CryptoError::InsecureKeyFile { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn a_wrapped_key_moved_to_another_subject_fails_to_unwrap() -> Result {
    let kms = InMemoryKms::new();
    let epoch = kms.current_epoch("acme").await?;
    let wrapped = kms
        .wrap(
            "acme",
            epoch,
            &KeyId::subject("acme", "alice", 1).to_string(),
            &[1u8; 32],
        )
        .await?;
    let moved = kms
        .unwrap("acme", epoch, &KeyId::subject("acme", "bob", 1).to_string(), &wrapped)
        .await;
    assert!(matches!(moved, Err(CryptoError::Open { .. })));
    Ok(())
}

#[tokio::test]
async fn a_subjects_key_versions_are_listed_before_erasure_and_none_after() -> Result {
    let ring = ring(
        RotationPolicy {
            max_seals: 2,
            ..RotationPolicy::default()
        },
        8,
    );
    let subject = KeyOwner::Subject("cust-1".into());
    assert_eq!(ring.subject_key_ids("acme", "cust-1").await?, Some(Vec::new()));
    for _ in 0..5 {
        ring.seal_key("acme", &subject).await?;
    }
    let ids = ring
        .subject_key_ids("acme", "cust-1")
        .await?
        .ok_or("the subject is live")?;
    let versions: Vec<u32> = ids.iter().map(|id| id.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    ring.erase_subject("acme", "cust-1").await?;
    assert_eq!(ring.subject_key_ids("acme", "cust-1").await?, None);
    for id in &ids {
        assert!(ring.open_key(id).await?.is_none(), "{id} must not open after erasure");
    }
    Ok(())
}

#[tokio::test]
async fn retiring_old_epochs_makes_old_copies_of_an_erased_key_useless_and_keeps_live_keys() -> Result {
    let ring = ring(RotationPolicy::default(), 0);
    let (erased, _) = ring.seal_key("acme", &KeyOwner::Subject("ada".into())).await?;
    let (kept, _) = ring.seal_key("acme", &KeyOwner::Subject("bob".into())).await?;
    // A copy of the wrapped key as an old SSTable or a backup would hold it.
    let KeyLookup::Live(copy) = ring.vault().get(&erased).await? else {
        return Err("the key is live before erasure".into());
    };
    ring.erase_subject("acme", "ada").await?;
    let context = erased.to_string();
    assert!(
        ring.kms()
            .unwrap("acme", copy.epoch, &context, &copy.wrapped)
            .await
            .is_ok(),
        "before rotation the old copy still unwraps: this is what rotation is for"
    );

    let epoch = ring.kms().new_epoch("acme").await?;
    // A key another process wrapped under the old epoch while the rotation began.
    let late = KeyId {
        tenant: "acme".into(),
        owner: KeyOwner::Subject("carol".into()),
        version: 1,
    };
    let raw = keel_crypto::DataKey::generate().1;
    let wrapped = ring.kms().wrap("acme", 1, &late.to_string(), &raw).await?;
    ring.vault()
        .insert(&keel_crypto::WrappedKey {
            id: late.clone(),
            epoch: 1,
            wrapped,
            created_at: 0,
        })
        .await?;

    let retired = ring.retire_epochs_before("acme", epoch).await?;
    assert_eq!((retired.epoch, retired.destroyed.as_slice()), (2, [1].as_slice()));
    assert_eq!(retired.rewrapped, 2, "bob's key and the late key");
    assert!(
        ring.kms()
            .unwrap("acme", copy.epoch, &context, &copy.wrapped)
            .await
            .is_err(),
        "after rotation no copy of the erased key unwraps"
    );
    assert!(ring.open_key(&erased).await?.is_none());
    assert!(ring.open_key(&kept).await?.is_some(), "live keys survive rotation");
    assert!(
        ring.open_key(&late).await?.is_some(),
        "a key wrapped during rotation survives"
    );
    Ok(())
}

/// Counter values recorded by `recorder`'s snapshotter, by metric name.
fn counters(snapshotter: &metrics_util::debugging::Snapshotter) -> std::collections::HashMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            metrics_util::debugging::DebugValue::Counter(count) => Some((key.key().name().to_owned(), count)),
            _ => None,
        })
        .collect()
}

#[test]
fn key_cache_hits_and_misses_are_counted() -> Result {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // The local recorder is this thread's; a current-thread runtime polls on this thread.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let ring = ring(RotationPolicy::default(), 8);
            let (id, _) = ring.seal_key("acme", &KeyOwner::Tenant).await?; // created: neither
            ring.seal_key("acme", &KeyOwner::Tenant).await?; // hit
            ring.open_key(&id).await?; // hit
            ring.evict_tenant("acme")?;
            ring.open_key(&id).await?; // miss: unwrapped by the KMS
            ring.open_key(&id).await?; // hit again
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
    })?;
    let counted = counters(&snapshotter);
    assert_eq!(counted.get(keel_crypto::KEY_CACHE_HITS), Some(&3), "{counted:?}");
    assert_eq!(counted.get(keel_crypto::KEY_CACHE_MISSES), Some(&1), "{counted:?}");
    Ok(())
}

/// A vault whose next listing still holds keys erased after it was read, as a rotation
/// racing an erasure sees it.
struct ListsErasedKeys {
    inner: Arc<InMemoryKeyVault>,
    erased: std::sync::Mutex<Vec<keel_crypto::WrappedKey>>,
}

#[async_trait::async_trait]
impl KeyVault for ListsErasedKeys {
    async fn insert(&self, key: &keel_crypto::WrappedKey) -> std::result::Result<(), CryptoError> {
        self.inner.insert(key).await
    }
    async fn get(&self, id: &KeyId) -> std::result::Result<KeyLookup, CryptoError> {
        self.inner.get(id).await
    }
    async fn latest(&self, tenant: &str, owner: &KeyOwner) -> std::result::Result<KeyLookup, CryptoError> {
        self.inner.latest(tenant, owner).await
    }
    async fn rewrap(&self, key: &keel_crypto::WrappedKey) -> std::result::Result<(), CryptoError> {
        self.inner.rewrap(key).await
    }
    async fn destroy_subject(&self, tenant: &str, subject: &str) -> std::result::Result<(), CryptoError> {
        self.inner.destroy_subject(tenant, subject).await
    }
    async fn destroy_tenant(&self, tenant: &str) -> std::result::Result<(), CryptoError> {
        self.inner.destroy_tenant(tenant).await
    }
    async fn live_keys(&self, tenant: &str) -> std::result::Result<Vec<keel_crypto::WrappedKey>, CryptoError> {
        let mut keys = self.inner.live_keys(tenant).await?;
        keys.extend(std::mem::take(&mut *self.erased.lock().expect("lock")));
        Ok(keys)
    }
    async fn reserve_seals(&self, id: &KeyId, count: u64, limit: u64) -> std::result::Result<u64, CryptoError> {
        self.inner.reserve_seals(id, count, limit).await
    }
}

#[tokio::test]
async fn a_rotation_skips_a_key_erased_while_it_runs() -> Result {
    let (kms, vault) = (Arc::new(InMemoryKms::new()), Arc::new(InMemoryKeyVault::new()));
    let setup = KeyRing::new(Arc::clone(&kms), Arc::clone(&vault), RotationPolicy::default(), 8);
    setup.seal_key("acme", &KeyOwner::Tenant).await?;
    let (bob, _) = setup.seal_key("acme", &KeyOwner::Subject("bob".into())).await?;
    let listed_before = vault.live_keys("acme").await?;
    setup.erase_subject("acme", "bob").await?;
    let ring = KeyRing::new(
        kms,
        ListsErasedKeys {
            inner: Arc::clone(&vault),
            erased: std::sync::Mutex::new(listed_before.into_iter().filter(|key| key.id == bob).collect()),
        },
        RotationPolicy::default(),
        8,
    );
    let epoch = ring.rotate_epoch("acme").await?;
    let retired = ring.retire_epochs_before("acme", epoch).await?;
    assert_eq!(retired.destroyed, [1], "the rotation completes");
    assert_eq!(vault.get(&bob).await?, KeyLookup::Destroyed, "bob's key stays erased");
    assert!(ring.open_key(&KeyId::tenant("acme", 1)).await?.is_some());
    Ok(())
}
