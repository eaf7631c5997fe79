//! The shared [`KeyVault`] test suite: every adapter runs it (in-memory in this crate, CQL
//! against the real store in keel-vault-cql). Each case uses fresh tenant ids, so cases may
//! share one vault. Use [`key_vault_suite!`](crate::key_vault_suite) to get one test per case.

use crate::{CREATOR_SEALS, CryptoError, KeyId, KeyLookup, KeyOwner, KeyVault, WrappedKey};

/// Why a suite case failed.
#[derive(Debug, thiserror::Error)]
pub enum SuiteFailure {
    /// The adapter returned an error.
    #[error(transparent)]
    Vault(#[from] CryptoError),
    /// The adapter returned something else than the port promises.
    #[error("{0}")]
    Broken(String),
}

fn check(ok: bool, what: &str) -> Result<(), SuiteFailure> {
    if ok {
        Ok(())
    } else {
        Err(SuiteFailure::Broken(what.to_owned()))
    }
}

fn tenant() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

fn key(id: KeyId, epoch: u32) -> WrappedKey {
    let wrapped = format!("wrapped:{id}:{epoch}").into_bytes();
    WrappedKey {
        id,
        epoch,
        wrapped,
        created_at: 1_700_000_000,
    }
}

/// A stored key reads back equal, by id and as the latest.
pub async fn insert_then_get<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    let k = key(KeyId::subject(&t, "alice", 1), 1);
    vault.insert(&k).await?;
    check(
        vault.get(&k.id).await? == KeyLookup::Live(k.clone()),
        "get returns the stored key",
    )?;
    let latest = vault.latest(&t, &KeyOwner::Subject("alice".into())).await?;
    check(latest == KeyLookup::Live(k), "latest returns the only version")
}

/// A key never stored is unknown, not destroyed.
pub async fn missing_key_is_unknown<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    check(
        vault.get(&KeyId::tenant(&t, 1)).await? == KeyLookup::Unknown,
        "get of a missing key",
    )?;
    check(
        vault.latest(&t, &KeyOwner::Tenant).await? == KeyLookup::Unknown,
        "latest of a missing key",
    )
}

/// Inserting an existing version is a conflict and keeps the first.
pub async fn duplicate_version_conflicts<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    let first = key(KeyId::tenant(&t, 1), 1);
    vault.insert(&first).await?;
    let second = WrappedKey {
        wrapped: b"other".to_vec(),
        ..first.clone()
    };
    let result = vault.insert(&second).await;
    check(
        matches!(result, Err(CryptoError::Conflict { .. })),
        "second insert of a version is a conflict",
    )?;
    check(
        vault.get(&first.id).await? == KeyLookup::Live(first),
        "the first insert stays",
    )
}

/// Latest is the highest version, per owner.
pub async fn latest_is_highest_version<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    for v in [1, 3, 2] {
        vault.insert(&key(KeyId::tenant(&t, v), 1)).await?;
    }
    vault.insert(&key(KeyId::subject(&t, "bob", 7), 1)).await?;
    match vault.latest(&t, &KeyOwner::Tenant).await? {
        KeyLookup::Live(k) => check(k.id.version == 3, "latest tenant key is version 3"),
        other => Err(SuiteFailure::Broken(format!("latest tenant key: {other:?}"))),
    }
}

/// Destroying a subject destroys all its versions and nothing else.
pub async fn destroy_subject_destroys_every_version_only<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    for v in 1..=3 {
        vault.insert(&key(KeyId::subject(&t, "alice", v), 1)).await?;
    }
    let bob = key(KeyId::subject(&t, "bob", 1), 1);
    let tk = key(KeyId::tenant(&t, 1), 1);
    vault.insert(&bob).await?;
    vault.insert(&tk).await?;
    vault.destroy_subject(&t, "alice").await?;
    for v in 1..=3 {
        check(
            vault.get(&KeyId::subject(&t, "alice", v)).await? == KeyLookup::Destroyed,
            "alice's versions are destroyed",
        )?;
    }
    check(
        vault.latest(&t, &KeyOwner::Subject("alice".into())).await? == KeyLookup::Destroyed,
        "alice's latest is destroyed",
    )?;
    check(vault.get(&bob.id).await? == KeyLookup::Live(bob), "bob's key survives")?;
    check(
        vault.get(&tk.id).await? == KeyLookup::Live(tk),
        "the tenant key survives",
    )?;
    let again = vault.insert(&key(KeyId::subject(&t, "alice", 4), 1)).await;
    check(again.is_err(), "a destroyed subject gets no new key")
}

/// Destroying a tenant destroys all its keys and no other tenant's.
pub async fn destroy_tenant_destroys_its_keys_only<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let (t, other) = (tenant(), tenant());
    vault.insert(&key(KeyId::tenant(&t, 1), 1)).await?;
    vault.insert(&key(KeyId::subject(&t, "alice", 1), 1)).await?;
    let survivor = key(KeyId::tenant(&other, 1), 1);
    vault.insert(&survivor).await?;
    vault.destroy_tenant(&t).await?;
    check(
        vault.get(&KeyId::tenant(&t, 1)).await? == KeyLookup::Destroyed,
        "tenant key destroyed",
    )?;
    check(
        vault.get(&KeyId::subject(&t, "alice", 1)).await? == KeyLookup::Destroyed,
        "subject key destroyed",
    )?;
    check(vault.live_keys(&t).await?.is_empty(), "no live keys left")?;
    check(
        vault.get(&survivor.id).await? == KeyLookup::Live(survivor),
        "other tenant untouched",
    )
}

/// Live keys lists every live key of the tenant; rewrap changes epoch and bytes.
pub async fn live_keys_and_rewrap<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    let keys = [
        key(KeyId::tenant(&t, 1), 1),
        key(KeyId::subject(&t, "a", 1), 1),
        key(KeyId::subject(&t, "b", 2), 1),
    ];
    for k in &keys {
        vault.insert(k).await?;
    }
    vault.insert(&key(KeyId::tenant(&tenant(), 1), 1)).await?;
    let mut live = vault.live_keys(&t).await?;
    live.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = keys.to_vec();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    check(live == expected, "live keys are exactly the tenant's keys")?;
    let moved = WrappedKey {
        epoch: 2,
        wrapped: b"rewrapped".to_vec(),
        ..keys[1].clone()
    };
    vault.rewrap(&moved).await?;
    check(
        vault.get(&moved.id).await? == KeyLookup::Live(moved),
        "rewrap replaces epoch and bytes",
    )
}

/// Seal reservations start after the creator's block, are granted up to the limit and
/// then refused; destroying the subject forgets them.
pub async fn seal_reservations_stop_at_the_limit<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    let id = KeyId::subject(&t, "alice", 1);
    vault.insert(&key(id.clone(), 1)).await?;
    let limit = CREATOR_SEALS + 150;
    let granted = [
        vault.reserve_seals(&id, 100, limit).await?,
        vault.reserve_seals(&id, 100, limit).await?,
        vault.reserve_seals(&id, 100, limit).await?,
    ];
    check(
        granted == [100, 50, 0],
        &format!("grants up to the limit, then none: {granted:?}"),
    )?;
    let other = KeyId::subject(&t, "alice", 2);
    check(
        vault.reserve_seals(&other, 10, limit).await? == 10,
        "each version has its own count",
    )?;
    let small = KeyId::tenant(&t, 1);
    check(
        vault.reserve_seals(&small, 10, CREATOR_SEALS / 2).await? == 0,
        "a limit below the creator's block leaves nothing to reserve",
    )?;
    vault.destroy_subject(&t, "alice").await?;
    check(
        vault.reserve_seals(&id, 10, limit).await? == 10,
        "destroying a subject forgets its counts",
    )
}

/// Reservations racing for the same key version never share a seal: together they get
/// exactly what is left.
pub async fn racing_reservations_never_overlap<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    let id = KeyId::tenant(&t, 1);
    vault.insert(&key(id.clone(), 1)).await?;
    let limit = CREATOR_SEALS + 45;
    let race = || vault.reserve_seals(&id, 10, limit);
    let (a, b, c, d, e, f) = tokio::join!(race(), race(), race(), race(), race(), race());
    let granted = [a?, b?, c?, d?, e?, f?];
    check(
        granted.iter().sum::<u64>() == 45,
        &format!("six racing reservations of 10 share the 45 left: {granted:?}"),
    )
}

/// A key stored while its subject is being erased never outlives the erasure: once both
/// are done, every lookup says destroyed and no listing holds the key.
pub async fn an_insert_racing_an_erasure_never_outlives_it<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    for i in 0..40 {
        let subject = format!("s-{i}");
        let id = KeyId::subject(&t, &subject, 1);
        let stored = key(id.clone(), 1);
        let (inserted, destroyed) = tokio::join!(vault.insert(&stored), vault.destroy_subject(&t, &subject));
        destroyed?;
        check(
            matches!(inserted, Ok(()) | Err(CryptoError::TenantDestroyed(_))),
            &format!("the insert succeeds or finds the subject erased: {inserted:?}"),
        )?;
        check(
            vault.get(&id).await? == KeyLookup::Destroyed
                && vault.latest(&t, &KeyOwner::Subject(subject.clone())).await? == KeyLookup::Destroyed,
            &format!("{subject}'s key reads as destroyed after the race"),
        )?;
    }
    let listed = vault.live_keys(&t).await?;
    check(
        listed.is_empty(),
        &format!("no erased subject's key is listed: {listed:?}"),
    )
}

/// Listing finds every live key of a tenant with many subjects, and none of the erased.
pub async fn live_keys_skip_erased_subjects<V: KeyVault>(vault: &V) -> Result<(), SuiteFailure> {
    let t = tenant();
    vault.insert(&key(KeyId::tenant(&t, 1), 1)).await?;
    for i in 0..150 {
        vault.insert(&key(KeyId::subject(&t, &format!("s-{i}"), 1), 1)).await?;
    }
    vault.insert(&key(KeyId::subject(&t, "s-0", 2), 1)).await?;
    for i in 0..10 {
        vault.destroy_subject(&t, &format!("s-{i}")).await?;
    }
    let mut listed: Vec<KeyId> = vault.live_keys(&t).await?.into_iter().map(|k| k.id).collect();
    listed.sort();
    let mut expected: Vec<KeyId> = (10..150)
        .map(|i| KeyId::subject(&t, &format!("s-{i}"), 1))
        .chain([KeyId::tenant(&t, 1)])
        .collect();
    expected.sort();
    check(
        listed == expected,
        &format!("{} keys listed, {} live", listed.len(), expected.len()),
    )
}

/// Runs every case of the suite as its own `#[tokio::test]`, each with a vault from the
/// given async factory (`async fn() -> Result<V, E>`).
#[macro_export]
macro_rules! key_vault_suite {
    ($factory:path) => {
        $crate::key_vault_suite!(@cases $factory;
            insert_then_get, missing_key_is_unknown, duplicate_version_conflicts,
            latest_is_highest_version, destroy_subject_destroys_every_version_only,
            destroy_tenant_destroys_its_keys_only, live_keys_and_rewrap,
            seal_reservations_stop_at_the_limit, racing_reservations_never_overlap,
            an_insert_racing_an_erasure_never_outlives_it, live_keys_skip_erased_subjects);
    };
    (@cases $factory:path; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let vault = $factory().await?;
                $crate::testsuite::$case(&vault).await?;
                Ok(())
            }
        )*
    };
}
