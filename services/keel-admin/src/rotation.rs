//! KEK rotation: what makes an erasure final against copies on disk.
//!
//! Destroying a subject's key deletes its wrapped copies from the vault's table, but old
//! SSTables, snapshots and backups still hold them, wrapped under the tenant's KEK. A
//! rotation creates a new KEK epoch, re-wraps every live key under it and destroys the
//! older epochs in the KMS: every old copy of every wrapped key, the erased ones included,
//! becomes useless. The admin service rotates each tenant with pending erasures once the
//! oldest has waited `--rotation-delay-secs` (so many erasures share one rotation), and
//! `keel admin rotate --tenant T` rotates on demand.

use std::time::{Duration, Instant};

use keel_crypto::{Kms, Retirement};
use keel_erasure::ErasureStore;
use keel_vault_cql::ServiceKeyRing;
use serde::Serialize;

/// What one rotation did, as `keel admin rotate` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    /// The tenant.
    pub tenant: String,
    /// Its KEK epoch from now on.
    pub epoch: u32,
    /// Live keys re-wrapped under it.
    pub rewrapped: usize,
    /// Epochs destroyed.
    pub destroyed_epochs: Vec<u32>,
    /// How long it took, in seconds (the grace period included).
    pub seconds: f64,
}

/// Rotates `tenant`'s KEK: a new epoch, `grace` for keys being wrapped elsewhere to land,
/// every live key re-wrapped, every older epoch destroyed; then the tenant's pending
/// erasures up to the rotation's start are final.
pub async fn rotate_tenant(
    keys: &ServiceKeyRing,
    store: &ErasureStore,
    tenant: &str,
    grace: Duration,
) -> anyhow::Result<Rotated> {
    let started = Instant::now();
    let started_micros = keel_service::now_micros();
    let epoch = keys.kms().new_epoch(tenant).await?;
    tokio::time::sleep(grace).await;
    let Retirement {
        epoch,
        rewrapped,
        destroyed,
    } = keys.retire_epochs_before(tenant, epoch).await?;
    store.clear_pending_rotations(tenant, started_micros).await?;
    let seconds = started.elapsed().as_secs_f64();
    metrics::counter!("keel_admin_rotations_total").increment(1);
    metrics::histogram!("keel_admin_rotation_seconds").record(seconds);
    tracing::info!(
        tenant,
        epoch,
        rewrapped,
        seconds,
        "tenant KEK rotated; older epochs destroyed"
    );
    Ok(Rotated {
        tenant: tenant.to_owned(),
        epoch,
        rewrapped,
        destroyed_epochs: destroyed,
        seconds,
    })
}

/// When rotations happen.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// How long the oldest pending erasure of a tenant waits before its rotation.
    pub delay: Duration,
    /// How often pending rotations are looked for.
    pub check_every: Duration,
    /// The grace period inside a rotation.
    pub grace: Duration,
}

impl Schedule {
    /// The latest time an erasure at `erased_at_micros` is covered by a rotation, if this
    /// service runs: the delay, one check period, the grace and a minute of work.
    pub fn final_by(&self, erased_at_micros: i64) -> i64 {
        let bound = self.delay + self.check_every + self.grace + Duration::from_secs(60);
        erased_at_micros.saturating_add(i64::try_from(bound.as_micros()).unwrap_or(i64::MAX))
    }
}

/// Rotates every tenant whose oldest pending erasure has waited `schedule.delay`, every
/// `schedule.check_every`, until the process ends. Failures are logged and retried at the
/// next check.
pub async fn run_schedule(keys: &ServiceKeyRing, store: &ErasureStore, schedule: Schedule) {
    loop {
        match store.pending_rotations().await {
            Ok(pending) => {
                let due_before =
                    keel_service::now_micros() - i64::try_from(schedule.delay.as_micros()).unwrap_or(i64::MAX);
                for (tenant, oldest) in pending.into_iter().filter(|(_, oldest)| *oldest <= due_before) {
                    if let Err(error) = rotate_tenant(keys, store, &tenant, schedule.grace).await {
                        metrics::counter!("keel_admin_rotation_failures_total").increment(1);
                        tracing::error!(tenant, oldest, error = %format!("{error:#}"), "scheduled rotation failed; retrying at the next check");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "reading pending rotations failed"),
        }
        tokio::time::sleep(schedule.check_every).await;
    }
}
