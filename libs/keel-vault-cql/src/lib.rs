//! `CqlKeyVault`: the [`KeyVault`] port on ScyllaDB (Cassandra 5.0 locally).
//!
//! Four plain tables (`cql/schema.cql`): wrapped data keys and the seals reserved per key
//! version, both with one partition per key owner (a tenant's own key or one data subject's);
//! a listing of each tenant's owners in 64 buckets; and erasure markers per tenant. Reads
//! and deletes are plain statements; creating a key version (rare: first use and rotation),
//! re-wrapping and reserving a block of seals use a lightweight transaction, so two handlers
//! racing to create the same version see a [`CryptoError::Conflict`] and two racing
//! reservations never get the same seals. Those transactions serialise per partition only,
//! so one subject's never wait for another's.
//!
//! Erasure writes a marker, then deletes the rows. A marker outranks any key row: lookups
//! read both at once and answer [`KeyLookup::Destroyed`], a key stored by a process that
//! raced the erasure included, and a rotation never re-wraps such a key. The vault never
//! sees a plaintext key.

use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use keel_crypto::{CREATOR_SEALS, CryptoError, KeyId, KeyLookup, KeyOwner, KeyVault, WrappedKey};
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryRowsResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::Row;
use sha2::{Digest, Sha256};

const SCHEMA: &str = include_str!("cql/schema.cql");
const WHOLE_TENANT: &str = "*";

/// Buckets of a tenant's owner listing (`vault_owners_by_tenant`); part of the stored
/// layout: changing it would hide the owners listed under the old count.
const OWNER_BUCKETS: i32 = 64;

/// Statements a listing, re-wrap or tenant erasure keeps in flight at once.
const CONCURRENCY: usize = 32;

/// Wrapped keys on a CQL session whose current keyspace holds (or will hold) the tables.
pub struct CqlKeyVault {
    session: Arc<Session>,
    insert_key: PreparedStatement,
    select_key: PreparedStatement,
    select_latest: PreparedStatement,
    select_owner_keys: PreparedStatement,
    delete_key: PreparedStatement,
    update_wrapping: PreparedStatement,
    delete_owner: PreparedStatement,
    insert_owner: PreparedStatement,
    select_owners: PreparedStatement,
    delete_owners: PreparedStatement,
    insert_destroyed: PreparedStatement,
    select_destroyed: PreparedStatement,
    select_tenant_destroyed: PreparedStatement,
    select_reservation: PreparedStatement,
    insert_reservation: PreparedStatement,
    update_reservation: PreparedStatement,
    delete_owner_reservations: PreparedStatement,
}

/// Reservations lost to racing processes before a reservation gives up (as unavailable).
const RESERVATION_ATTEMPTS: usize = 16;

impl std::fmt::Debug for CqlKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlKeyVault").finish_non_exhaustive()
    }
}

fn owner_key(owner: &KeyOwner) -> String {
    match owner {
        KeyOwner::Tenant => "t".to_owned(),
        KeyOwner::Subject(s) => format!("s:{s}"),
    }
}

/// The bucket of the tenant's owner listing that holds `owner`: the first byte of its
/// SHA-256, modulo [`OWNER_BUCKETS`] (stable across builds and languages).
fn owner_bucket(owner: &str) -> i32 {
    i32::from(Sha256::digest(owner.as_bytes())[0]) % OWNER_BUCKETS
}

fn parse_owner(owner: &str) -> Result<KeyOwner, CryptoError> {
    match owner.split_once(':') {
        None if owner == "t" => Ok(KeyOwner::Tenant),
        Some(("s", subject)) => Ok(KeyOwner::Subject(subject.to_owned())),
        _ => Err(CryptoError::Store(format!("unreadable key owner {owner:?}"))),
    }
}

fn execution(action: &str, error: ExecutionError) -> CryptoError {
    let message = format!("{action}: {error}");
    if keel_cql::is_permanent(&error) {
        CryptoError::Store(message)
    } else {
        CryptoError::Unavailable(message)
    }
}

fn unreadable(action: &str, error: impl std::fmt::Display) -> CryptoError {
    CryptoError::Store(format!("{action}: {error}"))
}

/// The `[applied]` column a lightweight transaction answers with first.
fn was_applied(row: &Row) -> bool {
    row.columns
        .first()
        .and_then(|column| column.as_ref())
        .and_then(|value| value.as_boolean())
        .unwrap_or(false)
}

fn to_bigint(value: u64) -> Result<i64, CryptoError> {
    i64::try_from(value).map_err(|_| CryptoError::Store(format!("seal count {value} exceeds bigint")))
}

fn from_bigint(value: i64) -> Result<u64, CryptoError> {
    u64::try_from(value).map_err(|_| CryptoError::Store(format!("negative seal count {value}")))
}

fn to_int(value: u32, what: &str) -> Result<i32, CryptoError> {
    i32::try_from(value).map_err(|_| CryptoError::Store(format!("{what} {value} exceeds int")))
}

fn from_int(value: i32, what: &str) -> Result<u32, CryptoError> {
    u32::try_from(value).map_err(|_| CryptoError::Store(format!("negative {what} {value}")))
}

type KeyRow = (i32, i32, Vec<u8>, i64);

fn wrapped(
    tenant: &str,
    owner: KeyOwner,
    (version, epoch, wrapped, created_at): KeyRow,
) -> Result<WrappedKey, CryptoError> {
    Ok(WrappedKey {
        id: KeyId {
            tenant: tenant.to_owned(),
            owner,
            version: from_int(version, "version")?,
        },
        epoch: from_int(epoch, "epoch")?,
        wrapped,
        created_at,
    })
}

impl CqlKeyVault {
    /// Creates the tables if missing (in the session's keyspace) and prepares statements.
    pub async fn new(session: Arc<Session>) -> Result<Self, CryptoError> {
        keel_cql::apply_schema(&session, SCHEMA)
            .await
            .map_err(|e| execution("creating the key-vault tables", e))?;
        let prepare = async |cql: &str| {
            session
                .prepare(cql.trim())
                .await
                .map_err(|e| CryptoError::Store(format!("preparing key-vault statements: {e}")))
        };
        Ok(Self {
            insert_key: prepare(include_str!("cql/insert_key.cql")).await?,
            select_key: prepare(include_str!("cql/select_key.cql")).await?,
            select_latest: prepare(include_str!("cql/select_latest.cql")).await?,
            select_owner_keys: prepare(include_str!("cql/select_owner_keys.cql")).await?,
            delete_key: prepare(include_str!("cql/delete_key.cql")).await?,
            update_wrapping: prepare(include_str!("cql/update_wrapping.cql")).await?,
            delete_owner: prepare(include_str!("cql/delete_owner.cql")).await?,
            insert_owner: prepare(include_str!("cql/insert_owner.cql")).await?,
            select_owners: prepare(include_str!("cql/select_owners.cql")).await?,
            delete_owners: prepare(include_str!("cql/delete_owners.cql")).await?,
            insert_destroyed: prepare(include_str!("cql/insert_destroyed.cql")).await?,
            select_destroyed: prepare(include_str!("cql/select_destroyed.cql")).await?,
            select_tenant_destroyed: prepare(include_str!("cql/select_tenant_destroyed.cql")).await?,
            select_reservation: prepare(include_str!("cql/select_reservation.cql")).await?,
            insert_reservation: prepare(include_str!("cql/insert_reservation.cql")).await?,
            update_reservation: prepare(include_str!("cql/update_reservation.cql")).await?,
            delete_owner_reservations: prepare(include_str!("cql/delete_owner_reservations.cql")).await?,
            session,
        })
    }

    /// Runs a statement and reads its rows; `action` names it in errors.
    async fn rows(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        action: &str,
    ) -> Result<QueryRowsResult, CryptoError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(|e| execution(action, e))?
            .into_rows_result()
            .map_err(|e| unreadable(action, e))
    }

    async fn destroyed(&self, tenant: &str, owner: &str) -> Result<bool, CryptoError> {
        const ACTION: &str = "reading erasure markers";
        let rows = self
            .rows(&self.select_destroyed, (tenant, owner, WHOLE_TENANT), ACTION)
            .await?;
        Ok(rows.rows_num() > 0)
    }

    /// A key read (`select` on `values`) and the owner's erasure markers, at once: a
    /// marker outranks any row.
    async fn lookup(
        &self,
        tenant: &str,
        owner: &KeyOwner,
        select: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        action: &str,
    ) -> Result<KeyLookup, CryptoError> {
        let key = owner_key(owner);
        let (rows, destroyed) = futures::join!(self.rows(select, values, action), self.destroyed(tenant, &key));
        if destroyed? {
            return Ok(KeyLookup::Destroyed);
        }
        let row = rows?.maybe_first_row::<KeyRow>().map_err(|e| unreadable(action, e))?;
        match row {
            Some(row) => Ok(KeyLookup::Live(wrapped(tenant, owner.clone(), row)?)),
            None => Ok(KeyLookup::Unknown),
        }
    }

    /// Runs a plain statement that answers with no rows.
    async fn run(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        action: &str,
    ) -> Result<(), CryptoError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map(|_| ())
            .map_err(|e| execution(action, e))
    }

    /// Every row of a paged single-partition query, decoded as `T`.
    async fn all_rows<T>(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow + Clone,
        action: &str,
    ) -> Result<Vec<T>, CryptoError>
    where
        T: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
    {
        let mut all = Vec::new();
        let mut state = scylla::response::PagingState::start();
        loop {
            let (result, paging) = self
                .session
                .execute_single_page(statement, values.clone(), state)
                .await
                .map_err(|e| execution(action, e))?;
            let rows = result.into_rows_result().map_err(|e| unreadable(action, e))?;
            for row in rows.rows::<T>().map_err(|e| unreadable(action, e))? {
                all.push(row.map_err(|e| unreadable(action, e))?);
            }
            match paging.into_paging_control_flow() {
                std::ops::ControlFlow::Break(()) => return Ok(all),
                std::ops::ControlFlow::Continue(next) => state = next,
            }
        }
    }

    /// Every owner the tenant ever gave a key to, erased ones included.
    async fn owners(&self, tenant: &str) -> Result<Vec<String>, CryptoError> {
        const ACTION: &str = "listing a tenant's key owners";
        let buckets = futures::stream::iter(0..OWNER_BUCKETS)
            .map(|bucket| self.all_rows::<(String,)>(&self.select_owners, (tenant, bucket), ACTION))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(buckets.into_iter().flatten().map(|(owner,)| owner).collect())
    }

    async fn applied(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        action: &str,
    ) -> Result<bool, CryptoError> {
        let rows = self.rows(statement, values, action).await?;
        let row = rows.maybe_first_row::<Row>().map_err(|e| unreadable(action, e))?;
        Ok(row.as_ref().is_some_and(was_applied))
    }

    /// Runs a reservation's lightweight transaction: whether it applied, and if not, the
    /// count the row held (`None`: no row).
    async fn reservation(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<(bool, Option<u64>), CryptoError> {
        const ACTION: &str = "reserving seals of a key";
        let rows = self.rows(statement, values, ACTION).await?;
        let reserved_at = rows.column_specs().get_by_name("reserved").map(|(index, _)| index);
        let Some(row) = rows.maybe_first_row::<Row>().map_err(|e| unreadable(ACTION, e))? else {
            return Err(unreadable(ACTION, "no answer to a conditional statement"));
        };
        let reserved = reserved_at
            .and_then(|index| row.columns.get(index).cloned().flatten())
            .and_then(|v| v.as_bigint());
        Ok((was_applied(&row), reserved.map(from_bigint).transpose()?))
    }

    /// The seals reserved of a key version, as a plain read (a hint; the transaction that
    /// follows checks it): `None` if no reservation was made beyond the creator's.
    async fn reserved(&self, tenant: &str, owner: &str, version: i32) -> Result<Option<u64>, CryptoError> {
        const ACTION: &str = "reading the seals reserved of a key";
        let rows = self
            .rows(&self.select_reservation, (tenant, owner, version), ACTION)
            .await?;
        let row = rows.maybe_first_row::<(i64,)>().map_err(|e| unreadable(ACTION, e))?;
        row.map(|(reserved,)| from_bigint(reserved)).transpose()
    }
}

#[async_trait]
impl KeyVault for CqlKeyVault {
    async fn insert(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        const ACTION: &str = "storing a wrapped key";
        let tenant = &key.id.tenant;
        let owner = owner_key(&key.id.owner);
        let version = to_int(key.id.version, "version")?;
        if self.destroyed(tenant, &owner).await? {
            return Err(CryptoError::TenantDestroyed(tenant.clone()));
        }
        // Listed first: a key is never stored where a rotation cannot find it.
        self.run(&self.insert_owner, (tenant, owner_bucket(&owner), &owner), ACTION)
            .await?;
        let values = (
            tenant,
            &owner,
            version,
            to_int(key.epoch, "epoch")?,
            &key.wrapped,
            key.created_at,
        );
        if !self.applied(&self.insert_key, values, ACTION).await? {
            return Err(CryptoError::Conflict {
                tenant: tenant.clone(),
                key_id: key.id.to_string(),
            });
        }
        // An erasure that began after the check above may have deleted the owner's rows
        // before this one landed: then this key must not live on.
        if self.destroyed(tenant, &owner).await? {
            self.run(&self.delete_key, (tenant, &owner, version), ACTION).await?;
            return Err(CryptoError::TenantDestroyed(tenant.clone()));
        }
        Ok(())
    }

    async fn get(&self, id: &KeyId) -> Result<KeyLookup, CryptoError> {
        let values = (&id.tenant, owner_key(&id.owner), to_int(id.version, "version")?);
        self.lookup(&id.tenant, &id.owner, &self.select_key, values, "reading a wrapped key")
            .await
    }

    async fn latest(&self, tenant: &str, owner: &KeyOwner) -> Result<KeyLookup, CryptoError> {
        let values = (tenant, owner_key(owner));
        self.lookup(
            tenant,
            owner,
            &self.select_latest,
            values,
            "reading the latest wrapped key",
        )
        .await
    }

    async fn rewrap(&self, key: &WrappedKey) -> Result<(), CryptoError> {
        const ACTION: &str = "re-wrapping a key";
        let values = (
            to_int(key.epoch, "epoch")?,
            &key.wrapped,
            &key.id.tenant,
            owner_key(&key.id.owner),
            to_int(key.id.version, "version")?,
        );
        if self.applied(&self.update_wrapping, values, ACTION).await? {
            Ok(())
        } else {
            Err(CryptoError::KeyNotFound {
                tenant: key.id.tenant.clone(),
                key_id: key.id.to_string(),
            })
        }
    }

    async fn destroy_subject(&self, tenant: &str, subject: &str) -> Result<(), CryptoError> {
        const ACTION: &str = "destroying a subject's keys";
        let owner = owner_key(&KeyOwner::Subject(subject.to_owned()));
        // Marker first: a crash in between leaves the subject erased, never half-alive.
        self.run(&self.insert_destroyed, (tenant, &owner), ACTION).await?;
        self.run(&self.delete_owner, (tenant, &owner), ACTION).await?;
        self.run(&self.delete_owner_reservations, (tenant, &owner), ACTION)
            .await
    }

    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        const ACTION: &str = "destroying a tenant's keys";
        self.run(&self.insert_destroyed, (tenant, WHOLE_TENANT), ACTION).await?;
        let owners = self.owners(tenant).await?;
        futures::stream::iter(owners)
            .map(|owner| async move {
                self.run(&self.delete_owner, (tenant, &owner), ACTION).await?;
                self.run(&self.delete_owner_reservations, (tenant, &owner), ACTION)
                    .await
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await?;
        futures::stream::iter(0..OWNER_BUCKETS)
            .map(|bucket| self.run(&self.delete_owners, (tenant, bucket), ACTION))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn live_keys(&self, tenant: &str) -> Result<Vec<WrappedKey>, CryptoError> {
        const ACTION: &str = "listing a tenant's keys";
        let destroyed: std::collections::HashSet<String> = self
            .all_rows::<(String,)>(&self.select_tenant_destroyed, (tenant,), ACTION)
            .await?
            .into_iter()
            .map(|(owner,)| owner)
            .collect();
        if destroyed.contains(WHOLE_TENANT) {
            return Ok(Vec::new());
        }
        let mut owners = self.owners(tenant).await?;
        owners.retain(|owner| !destroyed.contains(owner));
        let keys = futures::stream::iter(owners)
            .map(|owner| async move {
                let parsed = parse_owner(&owner)?;
                self.all_rows::<KeyRow>(&self.select_owner_keys, (tenant, &owner), ACTION)
                    .await?
                    .into_iter()
                    .map(|row| wrapped(tenant, parsed.clone(), row))
                    .collect::<Result<Vec<_>, _>>()
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(keys.into_iter().flatten().collect())
    }

    async fn reserve_seals(&self, id: &KeyId, count: u64, limit: u64) -> Result<u64, CryptoError> {
        let owner = owner_key(&id.owner);
        let version = to_int(id.version, "version")?;
        let limit = limit.min(i64::MAX.unsigned_abs());
        // Compare-and-set from what a plain read saw; a lost race answers with the count
        // that won, and the next attempt starts from it.
        let mut seen = self.reserved(&id.tenant, &owner, version).await?;
        for _ in 0..RESERVATION_ATTEMPTS {
            let reserved = seen.unwrap_or(CREATOR_SEALS.min(limit));
            let granted = count.min(limit.saturating_sub(reserved));
            if granted == 0 {
                return Ok(0);
            }
            let after = to_bigint(reserved + granted)?;
            let (applied, now) = match seen {
                None => {
                    self.reservation(&self.insert_reservation, (&id.tenant, &owner, version, after))
                        .await?
                }
                Some(before) => {
                    let values = (after, &id.tenant, &owner, version, to_bigint(before)?);
                    self.reservation(&self.update_reservation, values).await?
                }
            };
            if applied {
                return Ok(granted);
            }
            seen = now;
        }
        Err(CryptoError::Unavailable(format!(
            "reserving seals of key {id}: {RESERVATION_ATTEMPTS} attempts lost to other processes"
        )))
    }
}

/// Where a service's keys are: flags, each also a `KEEL_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The development KMS file holding tenant KEKs (mode 0600; shared by the services of
    /// one machine). Production swaps in a Vault transit, AWS KMS or PKCS#11 `Kms`.
    #[arg(long, env = "KEEL_KMS_FILE", default_value = ".local/keys/kms.json")]
    pub kms_file: std::path::PathBuf,
    /// How many unwrapped data keys a process keeps in memory.
    #[arg(long, env = "KEEL_KEY_CACHE", default_value_t = 10_000)]
    pub key_cache: usize,
    /// How long an unwrapped data key stays cached, in ms: the bound on how long this
    /// process can still open a subject erased by another process (0: no cache).
    #[arg(long, env = "KEEL_KEY_CACHE_TTL_MS", default_value_t = 1_000)]
    pub key_cache_ttl_ms: u64,
    /// Keyspace of the key vault, when it is not the service's own (a projector building
    /// into a keyspace of its own still reads the keys the handler wrote).
    #[arg(long, env = "KEEL_VAULT_KEYSPACE")]
    pub vault_keyspace: Option<String>,
}

/// The key ring every service uses: KEKs in the development KMS, wrapped data keys in CQL.
pub type ServiceKeyRing = keel_crypto::KeyRing<keel_crypto::LocalFileKms, CqlKeyVault>;

/// [`key_ring`] for a service on `nodes` whose own keyspace is `session`'s: the vault is
/// there, unless `args.vault_keyspace` names another, which gets a session of its own.
pub async fn service_key_ring(
    args: &KeyArgs,
    nodes: &[String],
    session: Arc<Session>,
) -> Result<ServiceKeyRing, CryptoError> {
    let session = match &args.vault_keyspace {
        None => session,
        Some(keyspace) => Arc::new(keel_cql::connect(nodes, keyspace).await.map_err(CryptoError::Store)?),
    };
    key_ring(args, session).await
}

/// Opens the KMS file (creating it and its directory, owner-only, when absent) and the
/// vault tables in `session`'s keyspace.
pub async fn key_ring(args: &KeyArgs, session: Arc<Session>) -> Result<ServiceKeyRing, CryptoError> {
    if let Some(directory) = args.kms_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)
            .map_err(|e| CryptoError::Store(format!("creating {}: {e}", directory.display())))?;
    }
    let kms = keel_crypto::LocalFileKms::open(&args.kms_file)?;
    let vault = CqlKeyVault::new(session).await?;
    Ok(keel_crypto::KeyRing::with_cache(
        kms,
        vault,
        keel_crypto::RotationPolicy::default(),
        args.key_cache,
        std::time::Duration::from_millis(args.key_cache_ttl_ms),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buckets are part of the stored layout: an owner listed under one bucket must be
    /// looked for there by every later build (values computed independently with Python's
    /// hashlib: `sha256(owner)[0] % 64`).
    #[test]
    fn owner_buckets_are_stable() {
        assert_eq!(
            [owner_bucket("t"), owner_bucket("s:alice"), owner_bucket("s:bob")],
            [35, 22, 49]
        );
    }
}
