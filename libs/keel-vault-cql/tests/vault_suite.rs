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
