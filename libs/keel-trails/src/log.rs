//! Every stream's events as the log holds them, and the subjects whose erasure was
//! projected: the runtime's read models that the generic stream routes (chain verification,
//! state as of a version or a time) and the opening of personal fields stand on, whatever
//! the domain.

use std::sync::Arc;

use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use keel_erasure::{TENANT_ERASURE_STREAM, WHOLE_TENANT, erasure_stream_subject};

use crate::EventMeta;

/// Every stream's events, sealed, in version order (table version 1).
pub const STREAM_EVENTS: &str = "stream_events.v1";

/// The tables.
pub const LOG_SCHEMA: &str = include_str!("cql/log_schema.cql");

/// One event of a stream as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its version.
    pub version: i64,
    /// When it was recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Single-object Avro of its envelope, payload sealed.
    pub envelope: Vec<u8>,
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
}

/// The subject an erasure record marks erased, if `event` is one: a `SubjectErased` on its
/// subject's erasure stream, or a `TenantErased` (the whole tenant, named
/// [`WHOLE_TENANT`] in `erased_subjects_v1`).
fn erased_subject(event: &EventMeta) -> Option<&str> {
    match event.event_type.as_str() {
        "SubjectErased" => erasure_stream_subject(&event.stream),
        "TenantErased" if event.stream == TENANT_ERASURE_STREAM => Some(WHOLE_TENANT),
        _ => None,
    }
}

/// The stream events and erased subjects on a CQL session.
pub struct StreamLog {
    session: Arc<Session>,
    insert_event: PreparedStatement,
    subject_erased: PreparedStatement,
    select_erased: PreparedStatement,
    select_events: PreparedStatement,
}

impl std::fmt::Debug for StreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLog").finish_non_exhaustive()
    }
}

impl StreamLog {
    /// Creates the tables if missing and prepares the statements.
    pub async fn new(session: Arc<Session>) -> anyhow::Result<Self> {
        keel_cql::apply_schema(&session, LOG_SCHEMA).await?;
        let prepare = async |cql: &str| session.prepare(cql.trim()).await;
        Ok(Self {
            insert_event: prepare(include_str!("cql/insert_event.cql")).await?,
            subject_erased: prepare(include_str!("cql/subject_erased.cql")).await?,
            select_erased: prepare(include_str!("cql/select_erased.cql")).await?,
            select_events: prepare(include_str!("cql/select_events.cql")).await?,
            session,
        })
    }

    /// Writes each event's sealed copy (partition, offset, metadata, the record's bytes) and,
    /// for an erasure record, marks its subject erased; every write `USING TIMESTAMP` the
    /// offset, so writing an event again changes nothing.
    pub async fn write(&self, events: &[(i32, i64, &EventMeta, &[u8])]) -> anyhow::Result<()> {
        let mut copies = Vec::with_capacity(events.len());
        let mut erasures = Vec::new();
        for &(partition, offset, event, bytes) in events {
            let event_id = event.event_id.to_string();
            let version = i64::try_from(event.version).unwrap_or(i64::MAX);
            let at = event.recorded_at_micros;
            if let Some(subject) = erased_subject(event) {
                let values = (&event.tenant, subject, at, event_id.clone(), partition, offset, offset);
                erasures.push(self.session.execute_unpaged(&self.subject_erased, values));
            }
            let values = (
                &event.tenant,
                &event.stream,
                version,
                event_id,
                &event.event_type,
                at,
                bytes,
                partition,
                offset,
                offset,
            );
            copies.push(self.session.execute_unpaged(&self.insert_event, values));
        }
        futures::try_join!(try_join_all(copies), try_join_all(erasures))?;
        Ok(())
    }

    /// Whether a `SubjectErased` for `subject` (or a `TenantErased` for its tenant) was
    /// projected: its personal fields read as erased from then on.
    pub async fn is_erased(&self, tenant: &str, subject: &str) -> anyhow::Result<bool> {
        for name in [subject, WHOLE_TENANT] {
            let rows = self
                .session
                .execute_unpaged(&self.select_erased, (tenant, name))
                .await?
                .into_rows_result()?;
            if rows.maybe_first_row::<(Option<i64>,)>()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every event of a stream, in version order, as the log holds it.
    pub async fn events(&self, tenant: &str, stream: &str) -> anyhow::Result<Vec<StoredEvent>> {
        let rows = self
            .session
            .execute_unpaged(&self.select_events, (tenant, stream))
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<(i64, i64, Vec<u8>, i32, i64)>()? {
            let (version, recorded_at_micros, envelope, partition, offset) = row?;
            out.push(StoredEvent {
                version,
                recorded_at_micros,
                envelope,
                partition,
                offset,
            });
        }
        Ok(out)
    }
}
