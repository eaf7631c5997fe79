//! `CqlCheckpoints`: checkpoints and heads in ScyllaDB / Cassandra.

use std::sync::Arc;

use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::{Checkpoint, CheckpointError, Checkpoints, Head};

/// The checkpoint and head tables.
pub const SCHEMA: &str = include_str!("cql/schema.cql");

/// Checkpoints on a CQL session whose current keyspace holds the tables.
pub struct CqlCheckpoints {
    session: Arc<Session>,
    select_checkpoints: PreparedStatement,
    upsert_checkpoint: PreparedStatement,
    select_heads: PreparedStatement,
    upsert_head: PreparedStatement,
}

fn failed(action: &'static str) -> impl Fn(&dyn std::fmt::Display) -> CheckpointError {
    move |error| CheckpointError {
        action,
        message: error.to_string(),
    }
}

impl CqlCheckpoints {
    /// Creates the tables if missing and prepares statements.
    pub async fn new(session: Arc<Session>) -> Result<Self, CheckpointError> {
        keel_cql::apply_schema(&session, SCHEMA)
            .await
            .map_err(|e| failed("creating tables")(&e))?;
        let prepare = async |cql: &str| {
            session
                .prepare(cql)
                .await
                .map_err(|e| failed("preparing statements")(&e))
        };
        Ok(Self {
            select_checkpoints: prepare(include_str!("cql/select_checkpoints.cql")).await?,
            upsert_checkpoint: prepare(include_str!("cql/upsert_checkpoint.cql")).await?,
            select_heads: prepare(include_str!("cql/select_heads.cql")).await?,
            upsert_head: prepare(include_str!("cql/upsert_head.cql")).await?,
            session,
        })
    }
}

impl CqlCheckpoints {
    /// The `(partition, offset, micros)` rows a per-projection select returns.
    async fn rows(
        &self,
        statement: &PreparedStatement,
        projection: &str,
        action: &'static str,
    ) -> Result<Vec<(i32, i64, i64)>, CheckpointError> {
        let result = self
            .session
            .execute_unpaged(statement, (projection,))
            .await
            .map_err(|e| failed(action)(&e))?;
        let rows = result.into_rows_result().map_err(|e| failed(action)(&e))?;
        let rows = rows.rows::<(i32, i64, i64)>().map_err(|e| failed(action)(&e))?;
        rows.map(|row| row.map_err(|e| failed(action)(&e))).collect()
    }
}

impl Checkpoints for CqlCheckpoints {
    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
        let rows = self
            .rows(&self.select_checkpoints, projection, "reading checkpoints")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(partition, next_offset, event_time_micros)| Checkpoint {
                partition,
                next_offset,
                event_time_micros,
            })
            .collect())
    }

    async fn save(&self, projection: &str, checkpoints: &[Checkpoint]) -> Result<(), CheckpointError> {
        let writes = checkpoints.iter().map(|c| {
            let values = (
                projection,
                c.partition,
                c.next_offset,
                c.event_time_micros,
                c.next_offset,
            );
            self.session.execute_unpaged(&self.upsert_checkpoint, values)
        });
        try_join_all(writes)
            .await
            .map_err(|e| failed("writing checkpoints")(&e))?;
        Ok(())
    }

    async fn heads(&self, projection: &str) -> Result<Vec<Head>, CheckpointError> {
        let rows = self.rows(&self.select_heads, projection, "reading heads").await?;
        Ok(rows
            .into_iter()
            .map(|(partition, head_offset, observed_at_micros)| Head {
                partition,
                head_offset,
                observed_at_micros,
            })
            .collect())
    }

    async fn save_heads(&self, projection: &str, heads: &[Head]) -> Result<(), CheckpointError> {
        let writes = heads.iter().map(|h| {
            self.session.execute_unpaged(
                &self.upsert_head,
                (projection, h.partition, h.head_offset, h.observed_at_micros),
            )
        });
        try_join_all(writes).await.map_err(|e| failed("writing heads")(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use keel_testkit::TestKeyspace;

    async fn fresh() -> Result<super::CqlCheckpoints, String> {
        let keyspace = TestKeyspace::create("checkpoints")
            .await
            .map_err(|e| format!("{e:#}"))?;
        super::CqlCheckpoints::new(std::sync::Arc::new(keyspace.into_session()))
            .await
            .map_err(|e| e.to_string())
    }

    crate::checkpoints_suite!(fresh().await?);
}
