//! The shared key-vault suite against the real CQL store (`make up`), one fresh keyspace
//! per case.

use std::sync::Arc;

use keel_testkit::{TestKeyspace, TestResult};
use keel_vault_cql::CqlKeyVault;

async fn vault() -> TestResult<CqlKeyVault> {
    let keyspace = TestKeyspace::create("vault").await?;
    Ok(CqlKeyVault::new(Arc::new(keyspace.into_session())).await?)
}

keel_crypto::key_vault_suite!(vault);

/// A key row of an erased subject, as a process that crashed between storing the key and
/// checking for a racing erasure leaves it: the marker outranks it.
#[tokio::test]
async fn a_key_row_left_behind_an_erasure_reads_as_destroyed() -> TestResult {
    use keel_crypto::{KeyId, KeyLookup, KeyOwner, KeyVault};

    let keyspace = TestKeyspace::create("vault").await?;
    let session = Arc::new(keyspace.into_session());
    let vault = CqlKeyVault::new(Arc::clone(&session)).await?;
    vault.destroy_subject("acme", "alice").await?;
    session
        .query_unpaged(
            "INSERT INTO vault_keys_by_owner (tenant, owner, version, epoch, wrapped, created_at) \
             VALUES ('acme', 's:alice', 1, 1, 0x00, 0)",
            (),
        )
        .await?;
    // Listed where the vault looks for it (bucket 22: see `owner_buckets_are_stable`), so
    // only the marker can keep it out of the listing.
    session
        .query_unpaged(
            "INSERT INTO vault_owners_by_tenant (tenant, bucket, owner) VALUES ('acme', 22, 's:alice')",
            (),
        )
        .await?;
    let alice = KeyOwner::Subject("alice".into());
    assert_eq!(
        vault.get(&KeyId::subject("acme", "alice", 1)).await?,
        KeyLookup::Destroyed
    );
    assert_eq!(vault.latest("acme", &alice).await?, KeyLookup::Destroyed);
    assert_eq!(
        vault.live_keys("acme").await?,
        Vec::new(),
        "a rotation never re-wraps it"
    );
    Ok(())
}
