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
    /// The key versions destroyed (listed before destroying them).
    pub destroyed_key_ids: Vec<String>,
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

type Row = (Uuid, i32, i64, Option<Vec<String>>, Option<String>, Option<bool>);

/// The erasures table on a session whose keyspace is the control keyspace.
pub struct ErasureStore {
    session: Arc<Session>,
    select: PreparedStatement,
    insert: PreparedStatement,
    certify: PreparedStatement,
    commit: PreparedStatement,
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
                "SELECT command_id, input_partition, input_offset, destroyed_key_ids, certificate, committed \
                 FROM erasures WHERE tenant = ? AND subject = ?",
            )
            .await?,
            insert: prepare(
                "INSERT INTO erasures (tenant, subject, command_id, input_partition, input_offset, \
                 destroyed_key_ids, certificate, committed) VALUES (?, ?, ?, ?, ?, ?, null, false)",
            )
            .await?,
            certify: prepare("UPDATE erasures SET certificate = ? WHERE tenant = ? AND subject = ?").await?,
            commit: prepare("UPDATE erasures SET committed = true WHERE tenant = ? AND subject = ?").await?,
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
            |(command_id, input_partition, input_offset, keys, certificate, committed)| ErasureRecord {
                tenant: tenant.to_owned(),
                subject: subject.to_owned(),
                command_id,
                input_partition,
                input_offset,
                destroyed_key_ids: keys.unwrap_or_default(),
                certificate,
                committed: committed.unwrap_or(false),
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
}
