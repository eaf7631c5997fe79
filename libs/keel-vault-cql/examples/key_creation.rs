//! How fast the CQL vault creates data keys, for one tenant and for many: `make up`, then
//! `cargo run --release -p keel-vault-cql --example key_creation -- 5000`.
//!
//! Each key is a new subject's first (`KeyRing::seal_key`: the vault's lookups and the
//! lightweight transaction that stores it), 32 in flight, each configuration in a fresh
//! keyspace; then one KEK rotation re-wraps them all. A measurement, not a test.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use keel_crypto::{InMemoryKms, KeyOwner, KeyRing, RotationPolicy};
use keel_testkit::{TestKeyspace, TestResult};
use keel_vault_cql::CqlKeyVault;

#[tokio::main]
async fn main() -> TestResult {
    let keys: usize = std::env::args().nth(1).map_or(Ok(2_000), |n| n.parse())?;
    for (tenants, in_flight) in [(1, 1), (1, 32), (32, 32)] {
        let keyspace = TestKeyspace::create("key_creation").await?;
        let vault = CqlKeyVault::new(Arc::new(keyspace.into_session())).await?;
        let ring = KeyRing::new(InMemoryKms::new(), vault, RotationPolicy::default(), keys);
        let started = Instant::now();
        futures::stream::iter(0..keys)
            .map(|i| {
                let ring = &ring;
                async move {
                    let tenant = format!("t{}", i % tenants);
                    ring.seal_key(&tenant, &KeyOwner::Subject(format!("s-{i}"))).await
                }
            })
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let created = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for t in 0..tenants {
            ring.rotate_epoch(&format!("t{t}")).await?;
        }
        println!(
            "{tenants} tenant(s), {in_flight} in flight: {keys} keys in {created:.1} s ({:.0} keys/s); \
             re-wrapped in {:.1} s",
            keys as f64 / created,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
