//! The shared key-vault suite against the in-memory adapter.

use keel_crypto::InMemoryKeyVault;

async fn vault() -> Result<InMemoryKeyVault, std::convert::Infallible> {
    Ok(InMemoryKeyVault::new())
}

keel_crypto::key_vault_suite!(vault);
