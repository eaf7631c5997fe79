//! Where erasures are kept: one row per erased subject, in the CQL store.
//!
//! The row is what makes an erase command take effect exactly once although destroying keys
//! cannot join a Kafka transaction. The admin service writes it (with the key ids it is
//! about to destroy and the input record it is handling) before destroying anything, adds
//! the signed certificate before committing, and marks it committed after. A command seen
//! again finds the row: the same input record means its transaction never committed (redo
//! it, with the key ids recorded the first time); a later one means it did.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

/// The table.
pub const SCHEMA: &str = include_str!("cql/schema.cql");

/// One erasure as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    /// The tenant.
    pub tenant: String,
    /// The erased subject.
    pub subject: String,
    /// The erase command that did it.
    pub command_id: Uuid,
    /// The `keel.admin` partition of that command.
    pub input_partition: i32,
    /// Its offset.
    pub input_offset: i64,
    /// The key versions destroyed (listed before destroying them; empty for a tenant).
    pub destroyed_key_ids: Vec<String>,
    /// How many key versions were destroyed.
    pub destroyed_keys: i64,
    /// The erasure's event, when it had to be sealed before the keys were destroyed (a
    /// tenant's erasure), as the log will hold it.
    pub event: Option<Vec<u8>>,
    /// The signed certificate (JSON), once made.
    pub certificate: Option<String>,
    /// Whether the transaction with the `SubjectErased` event committed.
    pub committed: bool,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("erasure store: {action}: {message}")]
pub struct StoreError {
    action: &'static str,
    message: String,
}

fn failed(action: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |error| StoreError {
        action,
        message: error.to_string(),
    }
}

type Row = (
    Uuid,
    i32,
    i64,
    Option<Vec<String>>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
    Option<bool>,
);

/// The erasures table on a session whose keyspace is the control keyspace.
pub struct ErasureStore {
    session: Arc<Session>,
    select: PreparedStatement,
    insert: PreparedStatement,
    certify: PreparedStatement,
    commit: PreparedStatement,
    note_pending: PreparedStatement,
    oldest_pending: PreparedStatement,
    clear_pending: PreparedStatement,
}

impl std::fmt::Debug for ErasureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureStore").finish_non_exhaustive()
    }
}

impl ErasureStore {
    /// Creates the table if missing and prepares statements.
    pub async fn new(session: Arc<Session>) -> Result<Self, StoreError> {
        keel_cql::apply_schema(&session, SCHEMA)
            .await
            .map_err(|e| failed("creating the erasures table")(&e))?;
        let prepare = async |cql: &str| session.prepare(cql).await.map_err(|e| failed("preparing")(&e));
        Ok(Self {
            select: prepare(
                "SELECT command_id, input_partition, input_offset, destroyed_key_ids, destroyed_keys, event, \
                 certificate, committed FROM erasures WHERE tenant = ? AND subject = ?",
            )
            .await?,
            insert: prepare(
                "INSERT INTO erasures (tenant, subject, command_id, input_partition, input_offset, \
                 destroyed_key_ids, destroyed_keys, event, certificate, committed) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, null, false)",
            )
            .await?,
            certify: prepare("UPDATE erasures SET certificate = ? WHERE tenant = ? AND subject = ?").await?,
            commit: prepare("UPDATE erasures SET committed = true WHERE tenant = ? AND subject = ?").await?,
            note_pending: prepare("INSERT INTO pending_rotations (tenant, erased_at_micros, subject) VALUES (?, ?, ?)")
                .await?,
            oldest_pending: prepare("SELECT erased_at_micros FROM pending_rotations WHERE tenant = ? LIMIT 1").await?,
            clear_pending: prepare("DELETE FROM pending_rotations WHERE tenant = ? AND erased_at_micros <= ?").await?,
            session,
        })
    }

    /// The erasure of `subject` in `tenant`, if one was begun.
    pub async fn get(&self, tenant: &str, subject: &str) -> Result<Option<ErasureRecord>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.select, (tenant, subject))
            .await
            .map_err(|e| failed("reading an erasure")(&e))?
            .into_rows_result()
            .map_err(|e| failed("reading an erasure")(&e))?;
        let row = rows
            .maybe_first_row::<Row>()
            .map_err(|e| failed("reading an erasure")(&e))?;
        Ok(row.map(
            |(command_id, input_partition, input_offset, keys, count, event, certificate, committed)| {
                let destroyed_key_ids = keys.unwrap_or_default();
                ErasureRecord {
                    tenant: tenant.to_owned(),
                    subject: subject.to_owned(),
                    command_id,
                    input_partition,
                    input_offset,
                    destroyed_keys: count.unwrap_or_else(|| i64::try_from(destroyed_key_ids.len()).unwrap_or(i64::MAX)),
                    destroyed_key_ids,
                    event,
                    certificate,
                    committed: committed.unwrap_or(false),
                }
            },
        ))
    }

    /// Records that `record`'s command is being carried out (no certificate, not committed).
    pub async fn begin(&self, record: &ErasureRecord) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.insert,
                (
                    &record.tenant,
                    &record.subject,
                    record.command_id,
                    record.input_partition,
                    record.input_offset,
                    &record.destroyed_key_ids,
                    record.destroyed_keys,
                    &record.event,
                ),
            )
            .await
            .map_err(|e| failed("beginning an erasure")(&e))?;
        Ok(())
    }

    /// Keeps the signed certificate of an erasure whose transaction is about to commit.
    pub async fn certify(&self, tenant: &str, subject: &str, certificate: &str) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.certify, (certificate, tenant, subject))
            .await
            .map_err(|e| failed("keeping a certificate")(&e))?;
        Ok(())
    }

    /// Marks an erasure's transaction committed: its certificate is served from now on.
    pub async fn commit(&self, tenant: &str, subject: &str) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.commit, (tenant, subject))
            .await
            .map_err(|e| failed("marking an erasure committed")(&e))?;
        Ok(())
    }

    /// The signed certificate of a committed erasure.
    pub async fn certificate(&self, tenant: &str, subject: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(tenant, subject)
            .await?
            .filter(|record| record.committed)
            .and_then(|record| record.certificate))
    }

    /// Notes that `tenant` erased `subject` at `erased_at_micros`: the KEK rotation that
    /// makes it final is due.
    pub async fn note_pending_rotation(
        &self,
        tenant: &str,
        erased_at_micros: i64,
        subject: &str,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.note_pending, (tenant, erased_at_micros, subject))
            .await
            .map_err(|e| failed("noting a pending rotation")(&e))?;
        Ok(())
    }

    /// Every tenant with erasures waiting for a rotation, with its oldest erasure's time.
    pub async fn pending_rotations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .session
            .query_unpaged("SELECT DISTINCT tenant FROM pending_rotations", &[])
            .await
            .map_err(|e| failed("listing pending rotations")(&e))?
            .into_rows_result()
            .map_err(|e| failed("listing pending rotations")(&e))?;
        let tenants: Vec<String> = rows
            .rows::<(String,)>()
            .map_err(|e| failed("listing pending rotations")(&e))?
            .map(|row| row.map(|(tenant,)| tenant))
            .collect::<Result<_, _>>()
            .map_err(|e| failed("listing pending rotations")(&e))?;
        let mut pending = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let rows = self
                .session
                .execute_unpaged(&self.oldest_pending, (&tenant,))
                .await
                .map_err(|e| failed("reading a pending rotation")(&e))?
                .into_rows_result()
                .map_err(|e| failed("reading a pending rotation")(&e))?;
            if let Some((oldest,)) = rows
                .maybe_first_row::<(i64,)>()
                .map_err(|e| failed("reading a pending rotation")(&e))?
            {
                pending.push((tenant, oldest));
            }
        }
        Ok(pending)
    }

    /// Clears the pending erasures of `tenant` up to `up_to_micros`, when a rotation that
    /// began then has completed.
    pub async fn clear_pending_rotations(&self, tenant: &str, up_to_micros: i64) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.clear_pending, (tenant, up_to_micros))
            .await
            .map_err(|e| failed("clearing pending rotations")(&e))?;
        Ok(())
    }

    /// Every erasure record not marked committed (a whole-table read: erasures are few,
    /// and this runs once at the admin service's start).
    pub async fn uncommitted(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        let rows = self
            .session
            .query_unpaged("SELECT tenant, subject, committed FROM erasures", &[])
            .await
            .map_err(|e| failed("listing erasures")(&e))?
            .into_rows_result()
            .map_err(|e| failed("listing erasures")(&e))?;
        let keys: Vec<(String, String)> = rows
            .rows::<(String, String, Option<bool>)>()
            .map_err(|e| failed("listing erasures")(&e))?
            .filter_map(|row| match row {
                Ok((tenant, subject, committed)) => (committed != Some(true)).then_some(Ok((tenant, subject))),
                Err(error) => Some(Err(error)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| failed("listing erasures")(&e))?;
        let mut records = Vec::with_capacity(keys.len());
        for (tenant, subject) in keys {
            if let Some(record) = self.get(&tenant, &subject).await? {
                records.push(record);
            }
        }
        Ok(records)
    }
}
