//! `CqlHandlerState`: the command handler's decision state in ScyllaDB (Cassandra locally).
//!
//! Three plain tables (`cql/schema.cql`). Every write is `USING TIMESTAMP <log position>`,
//! so of two writes to a row the one reflecting the later log position wins, whatever order
//! they arrive in: a replay after a crash converges without lightweight transactions.
//! Positions are Kafka offsets, so the tables belong to one events topic: recreating the
//! topic means truncating them.

use std::sync::Arc;

use futures::future::try_join_all;
use keel_handler_state::{HandlerState, StateBatch, StateError, StoredResult, StreamRecord};
use scylla::client::session::Session;
use scylla::errors::{ExecutionError, PrepareError};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

const SCHEMA: &str = include_str!("cql/schema.cql");

/// Decision state on a CQL session whose current keyspace holds the tables.
pub struct CqlHandlerState {
    session: Arc<Session>,
    select_stream: PreparedStatement,
    upsert_stream: PreparedStatement,
    select_result: PreparedStatement,
    upsert_result: PreparedStatement,
    select_watermark: PreparedStatement,
    upsert_watermark: PreparedStatement,
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
        })
    }
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
            .maybe_first_row::<(i64, Vec<u8>, Vec<u8>, i64)>()
            .map_err(|error| unreadable(ACTION, error))?;
        Ok(row.map(|(version, last_hash, snapshot, position)| StreamRecord {
            tenant: tenant.to_owned(),
            stream: stream.to_owned(),
            version: version.max(0) as u64,
            last_hash,
            snapshot,
            position,
        }))
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
