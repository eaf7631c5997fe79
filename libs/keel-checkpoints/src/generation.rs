//! Which generation of the projections serves reads.
//!
//! A generation is a keyspace holding a full set of projection tables and their
//! checkpoints. A rebuild builds a new generation from the log's start while the serving one
//! keeps answering; once the new one has caught up, the pointer in the control keyspace
//! (the services' own, `--keyspace`) switches, projectors and query APIs follow it, and the
//! old generation is dropped. Without a pointer, the control keyspace itself serves.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::CheckpointError;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS projection_generation (name text PRIMARY KEY, keyspace_name text, switched_at_micros bigint)";

/// The serving-generation pointer in a control keyspace.
pub struct Generations {
    session: Arc<Session>,
    control: String,
    select: PreparedStatement,
    upsert: PreparedStatement,
}

fn failed(action: &'static str, error: &dyn std::fmt::Display) -> CheckpointError {
    CheckpointError {
        action,
        message: error.to_string(),
    }
}

impl Generations {
    /// The pointer of `control`, the keyspace `session` uses (the table is created if missing).
    pub async fn new(session: Arc<Session>, control: &str) -> Result<Self, CheckpointError> {
        session
            .query_unpaged(SCHEMA, &[])
            .await
            .map_err(|e| failed("creating the generation table", &e))?;
        let select = session
            .prepare("SELECT keyspace_name FROM projection_generation WHERE name = 'serving'")
            .await
            .map_err(|e| failed("preparing statements", &e))?;
        let upsert = session
            .prepare(
                "INSERT INTO projection_generation (name, keyspace_name, switched_at_micros) VALUES ('serving', ?, ?)",
            )
            .await
            .map_err(|e| failed("preparing statements", &e))?;
        Ok(Self {
            session,
            control: control.to_owned(),
            select,
            upsert,
        })
    }

    /// The keyspace whose projections serve reads.
    pub async fn serving(&self) -> Result<String, CheckpointError> {
        let rows = self
            .session
            .execute_unpaged(&self.select, ())
            .await
            .map_err(|e| failed("reading the serving generation", &e))?
            .into_rows_result()
            .map_err(|e| failed("reading the serving generation", &e))?;
        let serving = rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(|e| failed("reading the serving generation", &e))?
            .and_then(|(keyspace,)| keyspace);
        Ok(serving.unwrap_or_else(|| self.control.clone()))
    }

    /// Makes `keyspace` the serving generation.
    pub async fn switch(&self, keyspace: &str, now_micros: i64) -> Result<(), CheckpointError> {
        self.session
            .execute_unpaged(&self.upsert, (keyspace, now_micros))
            .await
            .map_err(|e| failed("switching the serving generation", &e))?;
        Ok(())
    }

    /// The control keyspace.
    pub fn control(&self) -> &str {
        &self.control
    }
}
