//! `CqlHandlerState`: the command handler's decision state in ScyllaDB (Cassandra locally).
//!
//! Three plain tables (`cql/schema.cql`). Every write is `USING TIMESTAMP <log position>`,
//! so of two writes to a row the one reflecting the later log position wins, whatever order
//! they arrive in: a replay after a crash converges without lightweight transactions.
//! Positions are Kafka offsets, so the tables belong to one events topic: recreating the
//! topic means truncating them. Command results expire after a retention
//! ([`CqlHandlerState::with_result_retention`], 7 days unless told), so the deduplication
//! table does not grow without bound.

use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use keel_handler_state::{HandlerState, StateBatch, StateError, StoredResult, StreamRecord};
use scylla::client::session::Session;
use scylla::errors::{ExecutionError, PrepareError};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

const SCHEMA: &str = include_str!("cql/schema.cql");

/// How long command results are kept for deduplication unless told: the retention of
/// `keel.command-results`.
pub const DEFAULT_RESULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Decision state on a CQL session whose current keyspace holds the tables.
pub struct CqlHandlerState {
    session: Arc<Session>,
    select_stream: PreparedStatement,
    upsert_stream: PreparedStatement,
    select_result: PreparedStatement,
    upsert_result: PreparedStatement,
    select_watermark: PreparedStatement,
    upsert_watermark: PreparedStatement,
    /// TTL of a stored result, in seconds.
    result_ttl: i32,
}

impl CqlHandlerState {
    /// Creates the tables if missing (in the session's keyspace) and prepares statements.
    pub async fn new(session: Arc<Session>) -> Result<Self, StateError> {
        keel_cql::apply_schema(&session, SCHEMA)
            .await
            .map_err(|error| execution("creating the decision-state tables", error))?;
        let prepare = async |cql: &str| session.prepare(cql).await.map_err(prepare_error);
        Ok(Self {
            select_stream: prepare(include_str!("cql/select_stream.cql")).await?,
            upsert_stream: prepare(include_str!("cql/upsert_stream.cql")).await?,
            select_result: prepare(include_str!("cql/select_result.cql")).await?,
            upsert_result: prepare(include_str!("cql/upsert_result.cql")).await?,
            select_watermark: prepare(include_str!("cql/select_watermark.cql")).await?,
            upsert_watermark: prepare(include_str!("cql/upsert_watermark.cql")).await?,
            session,
            result_ttl: ttl_secs(DEFAULT_RESULT_RETENTION),
        })
    }

    /// Keeps each command result for `retention` (whole seconds, at least one; CQL's TTL
    /// tops out at 20 years), after which a command id sent again is decided anew.
    #[must_use]
    pub fn with_result_retention(mut self, retention: Duration) -> Self {
        self.result_ttl = ttl_secs(retention);
        self
    }
}

/// A CQL TTL for `retention`: 1 second to CQL's 20-year maximum.
fn ttl_secs(retention: Duration) -> i32 {
    const MAX_TTL: u64 = 20 * 365 * 24 * 3600;
    i32::try_from(retention.as_secs().clamp(1, MAX_TTL)).unwrap_or(i32::MAX)
}

fn prepare_error(error: PrepareError) -> StateError {
    StateError::Permanent {
        action: "preparing decision-state statements",
        message: error.to_string(),
    }
}

fn execution(action: &'static str, error: ExecutionError) -> StateError {
    let message = error.to_string();
    if keel_cql::is_permanent(&error) {
        StateError::Permanent { action, message }
    } else {
        StateError::Transient { action, message }
    }
}

fn unreadable(action: &'static str, error: impl std::fmt::Display) -> StateError {
    StateError::Permanent {
        action,
        message: error.to_string(),
    }
}

fn cql_i64(value: u64, action: &'static str) -> Result<i64, StateError> {
    i64::try_from(value).map_err(|_| StateError::Permanent {
        action,
        message: format!("{value} exceeds bigint"),
    })
}

impl HandlerState for CqlHandlerState {
    async fn stream(&self, tenant: &str, stream: &str) -> Result<Option<StreamRecord>, StateError> {
        const ACTION: &str = "reading a stream's state";
        let rows = self
            .session
            .execute_unpaged(&self.select_stream, (tenant, stream))
            .await
            .map_err(|error| execution(ACTION, error))?
            .into_rows_result()
            .map_err(|error| unreadable(ACTION, error))?;
        let row = rows
            .maybe_first_row::<(i64, Vec<u8>, Option<i32>, Vec<u8>, i64)>()
            .map_err(|error| unreadable(ACTION, error))?;
        Ok(row.map(
            |(version, last_hash, snapshot_version, snapshot, position)| StreamRecord {
                tenant: tenant.to_owned(),
                stream: stream.to_owned(),
                version: version.max(0) as u64,
                last_hash,
                // A row without a version predates versioned snapshots: version 0, which no
                // domain writes, so it is rebuilt from the log.
                snapshot_version: snapshot_version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                snapshot,
                position,
            },
        ))
    }

    async fn result(&self, tenant: &str, command_id: Uuid) -> Result<Option<StoredResult>, StateError> {
        const ACTION: &str = "reading a command result";
        let rows = self
            .session
            .execute_unpaged(&self.select_result, (tenant, command_id))
            .await
            .map_err(|error| execution(ACTION, error))?
            .into_rows_result()
            .map_err(|error| unreadable(ACTION, error))?;
        let row = rows
            .maybe_first_row::<(Vec<u8>, i64)>()
            .map_err(|error| unreadable(ACTION, error))?;
        Ok(row.map(|(result, position)| StoredResult {
            tenant: tenant.to_owned(),
            command_id,
            result,
            position,
        }))
    }

    async fn watermark(&self, consumer: &str, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
        const ACTION: &str = "reading a watermark";
        let rows = self
            .session
            .execute_unpaged(&self.select_watermark, (consumer, topic, partition))
            .await
            .map_err(|error| execution(ACTION, error))?
            .into_rows_result()
            .map_err(|error| unreadable(ACTION, error))?;
        let row = rows
            .maybe_first_row::<(i64,)>()
            .map_err(|error| unreadable(ACTION, error))?;
        Ok(row.map(|(next_offset,)| next_offset))
    }

    async fn apply(&self, batch: &StateBatch) -> Result<(), StateError> {
        const ACTION: &str = "writing decision state";
        let streams = batch.streams.iter().map(|record| async move {
            let values = (
                &record.tenant,
                &record.stream,
                cql_i64(record.version, ACTION)?,
                &record.last_hash,
                i32::try_from(record.snapshot_version).unwrap_or(i32::MAX),
                &record.snapshot,
                record.position,
                record.position,
            );
            self.session
                .execute_unpaged(&self.upsert_stream, values)
                .await
                .map_err(|error| execution(ACTION, error))
        });
        let results = batch.results.iter().map(|result| async move {
            let values = (
                &result.tenant,
                result.command_id,
                &result.result,
                result.position,
                result.position,
                self.result_ttl,
            );
            self.session
                .execute_unpaged(&self.upsert_result, values)
                .await
                .map_err(|error| execution(ACTION, error))
        });
        futures::try_join!(try_join_all(streams), try_join_all(results))?;
        // Watermarks last: they must never claim rows that were not written.
        let marks = batch.watermarks.iter().map(|mark| async move {
            let values = (
                &mark.consumer,
                &mark.topic,
                mark.partition,
                mark.next_offset,
                mark.next_offset,
            );
            self.session
                .execute_unpaged(&self.upsert_watermark, values)
                .await
                .map_err(|error| execution(ACTION, error))
        });
        try_join_all(marks).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use keel_testkit::TestKeyspace;

    use super::*;

    async fn fresh_state() -> Result<CqlHandlerState, String> {
        let keyspace = TestKeyspace::create("handler_state")
            .await
            .map_err(|error| format!("{error:#}"))?;
        let session = std::sync::Arc::new(keyspace.into_session());
        CqlHandlerState::new(session).await.map_err(|error| error.to_string())
    }

    keel_handler_state::handler_state_suite!(fresh_state().await?);

    #[test]
    fn a_retention_becomes_a_ttl_within_what_cql_takes() {
        assert_eq!(ttl_secs(DEFAULT_RESULT_RETENTION), 604_800);
        assert_eq!(ttl_secs(Duration::from_millis(10)), 1);
        assert_eq!(ttl_secs(Duration::from_secs(u64::MAX)), 630_720_000);
    }

    #[test]
    fn schema_file_splits_into_its_three_tables() {
        let statements: Vec<String> = keel_cql::statements(SCHEMA).collect();
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(
            statements
                .iter()
                .all(|s| s.trim_start().starts_with("CREATE TABLE IF NOT EXISTS"))
        );
    }
}
