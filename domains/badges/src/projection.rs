//! The badges domain's projection, kept by Keel's projector through [`Projections`]: the
//! table `badges_v1`, one row per badge as it stands (`cql/schema.cql`).
//!
//! Idempotent, as the projector needs: a row is keyed by the badge it describes and every
//! write is `USING TIMESTAMP <log offset>`, so an event applied twice, or late, changes
//! nothing. The visitor's name is stored as the ciphertext its event carries
//! ([`StoredField`]), never as plaintext.

use std::sync::Arc;

use futures::future::try_join_all;
use keel_projection::{LoggedEvent, ProjectionError, Projections, StoredField};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::{Badge, BadgeEvent};

/// The projection, as checkpoints and freshness name it (table `badges_v1`).
pub const BADGES: &str = "badges.v1";

/// The table `badges_v1` on a CQL session, its statements prepared.
pub struct BadgeProjections {
    session: Arc<Session>,
    badge_issued: PreparedStatement,
    badge_returned: PreparedStatement,
}

impl Projections for BadgeProjections {
    type Domain = Badge;
    type Event = BadgeEvent;

    const NAMES: &'static [&'static str] = &[BADGES];
    const SCHEMA: &'static str = include_str!("cql/schema.cql");

    async fn connect(session: Arc<Session>) -> Result<Self, ProjectionError> {
        let setup = |error: &dyn std::fmt::Display| ProjectionError::Setup(format!("badges_v1: {error}"));
        keel_cql::apply_schema(&session, Self::SCHEMA)
            .await
            .map_err(|error| setup(&error))?;
        let badge_issued = session.prepare(include_str!("cql/badge_issued.cql")).await;
        let badge_returned = session.prepare(include_str!("cql/badge_returned.cql")).await;
        Ok(Self {
            badge_issued: badge_issued.map_err(|error| setup(&error))?,
            badge_returned: badge_returned.map_err(|error| setup(&error))?,
            session,
        })
    }

    async fn write(&self, events: &[LoggedEvent<'_, BadgeEvent>]) -> Result<(), ProjectionError> {
        let writes = events.iter().map(write_of).collect::<Result<Vec<_>, _>>()?;
        let requests = writes.iter().flatten().map(|write| async move {
            match write {
                Write::Issued(row) => self.session.execute_unpaged(&self.badge_issued, row).await,
                Write::Returned(row) => self.session.execute_unpaged(&self.badge_returned, row).await,
            }
        });
        try_join_all(requests).await?;
        Ok(())
    }
}

/// One row write: a statement's bind values, in the order of its `?`s.
#[derive(Debug, PartialEq)]
enum Write {
    /// `cql/badge_issued.cql`.
    Issued(IssuedRow),
    /// `cql/badge_returned.cql`.
    Returned(ReturnedRow),
}

/// The values of `cql/badge_issued.cql`.
#[derive(Debug, PartialEq, scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct IssuedRow {
    tenant: String,
    badge_id: String,
    visitor_id: String,
    visitor_name: StoredField,
    issued_by: String,
    issued_at_micros: i64,
    version: i64,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// The values of `cql/badge_returned.cql`.
#[derive(Debug, PartialEq, scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct ReturnedRow {
    tenant: String,
    badge_id: String,
    returned_at_micros: i64,
    return_reason: String,
    version: i64,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// The row write of one event; none for a system event or an erased tenant's (no payload).
/// The row is the stream's (the badge), whose id the sealed name's associated data binds.
fn write_of(logged: &LoggedEvent<'_, BadgeEvent>) -> Result<Option<Write>, ProjectionError> {
    let Some(event) = logged.event else {
        return Ok(None);
    };
    let envelope = logged.envelope;
    let write = match event {
        BadgeEvent::BadgeIssued { visitor_id, .. } => Write::Issued(IssuedRow {
            tenant: envelope.tenant_id.clone(),
            badge_id: envelope.stream_id.clone(),
            visitor_id: visitor_id.clone(),
            visitor_name: StoredField::of(envelope, "visitor_name").ok_or_else(|| {
                ProjectionError::Event(format!("event {} has no sealed visitor_name", envelope.event_id))
            })?,
            issued_by: envelope.actor.id.clone(),
            issued_at_micros: envelope.recorded_at,
            version: envelope.stream_version,
            partition: logged.partition,
            offset: logged.offset,
            timestamp: logged.offset,
        }),
        BadgeEvent::BadgeReturned { reason, .. } => Write::Returned(ReturnedRow {
            tenant: envelope.tenant_id.clone(),
            badge_id: envelope.stream_id.clone(),
            returned_at_micros: envelope.recorded_at,
            return_reason: reason.clone(),
            version: envelope.stream_version,
            partition: logged.partition,
            offset: logged.offset,
            timestamp: logged.offset,
        }),
    };
    Ok(Some(write))
}

/// A badge's row as stored: the visitor's name still sealed. Columns no event wrote yet
/// are `None`.
#[derive(Debug, Clone, PartialEq, Eq, scylla::DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct BadgeRow {
    /// The badge.
    pub badge_id: String,
    /// `issued` or `returned`.
    pub status: Option<String>,
    /// The visitor's data-subject id.
    pub visitor_id: Option<String>,
    /// The visitor's name, sealed with the visitor's key.
    pub visitor_name: Option<StoredField>,
    /// Who issued the badge (the actor of `BadgeIssued`).
    pub issued_by: Option<String>,
    /// When issued, µs since the Unix epoch.
    pub issued_at_micros: Option<i64>,
    /// When returned.
    pub returned_at_micros: Option<i64>,
    /// Why it was returned.
    pub return_reason: Option<String>,
    /// The stream version of the last event applied.
    pub version: Option<i64>,
    /// Its partition of the events topic.
    pub partition: Option<i32>,
    /// Its offset there.
    pub offset: Option<i64>,
}

#[cfg(test)]
mod tests;
