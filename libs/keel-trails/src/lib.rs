//! The audit trail per stream and the activity trail per actor, in the CQL store.
//!
//! "What happened, in what order, who did it, on whose behalf, allowed by what, and can you
//! prove it" for one stream is one partition of `audit_trail_v1`; "everything this agent
//! did, across streams, in order" is one partition of `actor_activity_v1`. Both are built
//! from envelope metadata ([`EventMeta`]), which holds no personal data. The projector writes
//! them ([`Trails::write`], idempotent: `USING TIMESTAMP <log offset>`); the query API reads
//! them ([`Trails::audit`], [`Trails::activity`]).
//!
//! The same writes count the events that reference each data subject
//! ([`subject_event_count`]), which an erasure reports.
//!
//! [`AccessLog`] records who saw whose personal data in clear (the query API writes it).
//!
//! [`StreamLog`] keeps every stream's events as the log holds them (payload sealed) and the
//! subjects whose erasure was projected: what chain verification, a stream's state as of a
//! version or a time, and the opening of personal fields need, whatever the domain.

mod access;
mod envelope;
mod log;
mod subjects;

pub use access::{ACCESS_SCHEMA, Access, AccessLog, day_of};
pub use envelope::EventMeta;
pub use log::{LOG_SCHEMA, STREAM_EVENTS, StoredEvent, StreamLog};
pub use subjects::subject_event_count;

use std::sync::Arc;

use futures::future::try_join_all;
use keel_auth::Actor;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use serde::Serialize;
use uuid::Uuid;

/// The audit trail projection (table version 1).
pub const AUDIT: &str = "audit_trail.v1";
/// The actor activity projection (table version 1).
pub const ACTIVITY: &str = "actor_activity.v1";
/// The count of events per data subject (table version 1).
pub const SUBJECT_EVENTS: &str = "subject_event_counts.v1";

/// The projections' tables.
pub const SCHEMA: &str = include_str!("cql/schema.cql");

/// Writes both trails and the per-subject event counts.
pub struct Trails {
    session: Arc<Session>,
    subject_counts: subjects::SubjectCounts,
    insert_audit: PreparedStatement,
    insert_activity: PreparedStatement,
    select_audit: PreparedStatement,
    select_activity: PreparedStatement,
}

fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn delegation(on_behalf_of: &[Actor]) -> String {
    serde_json::to_string(on_behalf_of).unwrap_or_else(|_| "[]".into())
}

impl Trails {
    /// Creates the tables if missing and prepares the writes.
    pub async fn new(session: Arc<Session>) -> anyhow::Result<Self> {
        keel_cql::apply_schema(&session, SCHEMA).await?;
        Ok(Self {
            insert_audit: session.prepare(include_str!("cql/insert_audit.cql")).await?,
            insert_activity: session.prepare(include_str!("cql/insert_activity.cql")).await?,
            select_audit: session.prepare(include_str!("cql/select_audit.cql")).await?,
            select_activity: session.prepare(include_str!("cql/select_activity.cql")).await?,
            subject_counts: subjects::SubjectCounts::prepare(&session).await?,
            session,
        })
    }

    /// Writes the rows of `events` (partition, offset, envelope), each `USING TIMESTAMP`
    /// its offset, so rewriting an event changes nothing. `events` is one batch of the
    /// projector in log order, and the previous batch's writes have completed (the subject
    /// counts build on them).
    pub async fn write(&self, events: &[(i32, i64, EventMeta)]) -> anyhow::Result<()> {
        let rows: Vec<(AuditRow<'_>, ActivityRow<'_>)> = events
            .iter()
            .map(|(partition, offset, event)| {
                let on_behalf_of = delegation(&event.on_behalf_of);
                let audit = AuditRow {
                    tenant: &event.tenant,
                    stream: &event.stream,
                    version: i64_of(event.version),
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    recorded_at_micros: event.recorded_at_micros,
                    actor_kind: event.actor.kind.as_str(),
                    actor_id: &event.actor.id,
                    on_behalf_of: on_behalf_of.clone(),
                    policy: &event.authorization.policy,
                    rule: &event.authorization.rule,
                    scope: event.authorization.scope.as_deref(),
                    command_id: event.command_id,
                    correlation_id: event.correlation_id,
                    compensates: event.compensates,
                    hash: &event.hash,
                    prev_hash: &event.prev_hash,
                    partition: *partition,
                    offset: *offset,
                    timestamp: *offset,
                };
                let activity = ActivityRow {
                    tenant: &event.tenant,
                    actor_kind: event.actor.kind.as_str(),
                    actor_id: &event.actor.id,
                    recorded_at_micros: event.recorded_at_micros,
                    event_id: event.event_id,
                    stream: &event.stream,
                    version: i64_of(event.version),
                    event_type: &event.event_type,
                    on_behalf_of,
                    rule: &event.authorization.rule,
                    compensates: event.compensates,
                    timestamp: *offset,
                };
                (audit, activity)
            })
            .collect();
        let audits = rows
            .iter()
            .map(|(audit, _)| self.session.execute_unpaged(&self.insert_audit, audit));
        let activities = rows
            .iter()
            .map(|(_, activity)| self.session.execute_unpaged(&self.insert_activity, activity));
        let trails = async { anyhow::Ok(futures::try_join!(try_join_all(audits), try_join_all(activities))?) };
        futures::try_join!(trails, self.subject_counts.write(&self.session, events))?;
        Ok(())
    }
}

/// One entry of a stream's audit trail.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Version in the stream.
    pub version: i64,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// When it was recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Who acted.
    pub actor: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// The authorisation that allowed it.
    pub authorization: keel_auth::Authorization,
    /// The command that caused it.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// The event it compensates.
    pub compensates: Option<Uuid>,
    /// Its chain hash, hex.
    pub hash: String,
    /// The previous hash, hex.
    pub prev_hash: String,
    /// Where it sits in `keel.events`.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// One entry of an actor's activity trail.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityEntry {
    /// When, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Event id.
    pub event_id: Uuid,
    /// The stream acted on.
    pub stream: String,
    /// Version in that stream.
    pub version: i64,
    /// Event type.
    pub event_type: String,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// The rule that allowed it.
    pub rule: String,
    /// The event it compensates.
    pub compensates: Option<Uuid>,
}

/// A row of `select_audit.cql`, in its column order.
#[derive(scylla::DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct AuditRead {
    version: i64,
    event_id: Uuid,
    event_type: String,
    recorded_at_micros: i64,
    actor_kind: String,
    actor_id: String,
    on_behalf_of: String,
    policy: String,
    rule: String,
    scope: Option<String>,
    command_id: Uuid,
    correlation_id: Uuid,
    compensates: Option<Uuid>,
    hash: String,
    prev_hash: String,
    partition: i32,
    offset: i64,
}

fn actor_kind(kind: &str) -> anyhow::Result<keel_auth::ActorKind> {
    serde_json::from_value(serde_json::Value::String(kind.to_owned()))
        .map_err(|_| anyhow::anyhow!("unknown actor kind {kind}"))
}

impl Trails {
    /// A stream's audit trail, in version order.
    pub async fn audit(&self, tenant: &str, stream: &str) -> anyhow::Result<Vec<AuditEntry>> {
        let rows = self
            .session
            .execute_unpaged(&self.select_audit, (tenant, stream))
            .await?
            .into_rows_result()?;
        let mut entries = Vec::new();
        for row in rows.rows::<AuditRead>()? {
            let row = row?;
            entries.push(AuditEntry {
                version: row.version,
                event_id: row.event_id,
                event_type: row.event_type,
                recorded_at_micros: row.recorded_at_micros,
                actor: Actor {
                    kind: actor_kind(&row.actor_kind)?,
                    id: row.actor_id,
                },
                on_behalf_of: serde_json::from_str(&row.on_behalf_of)?,
                authorization: keel_auth::Authorization {
                    policy: row.policy,
                    rule: row.rule,
                    scope: row.scope,
                },
                command_id: row.command_id,
                correlation_id: row.correlation_id,
                compensates: row.compensates,
                hash: row.hash,
                prev_hash: row.prev_hash,
                partition: row.partition,
                offset: row.offset,
            });
        }
        Ok(entries)
    }

    /// Everything `actor` did in `tenant`, in time order.
    pub async fn activity(&self, tenant: &str, actor: &Actor) -> anyhow::Result<Vec<ActivityEntry>> {
        let rows = self
            .session
            .execute_unpaged(&self.select_activity, (tenant, actor.kind.as_str(), actor.id.as_str()))
            .await?
            .into_rows_result()?;
        let mut entries = Vec::new();
        for row in rows.rows::<(i64, Uuid, String, i64, String, String, String, Option<Uuid>)>()? {
            let (recorded_at_micros, event_id, stream, version, event_type, on_behalf_of, rule, compensates) = row?;
            let on_behalf_of = serde_json::from_str(&on_behalf_of)?;
            entries.push(ActivityEntry {
                recorded_at_micros,
                event_id,
                stream,
                version,
                event_type,
                on_behalf_of,
                rule,
                compensates,
            });
        }
        Ok(entries)
    }
}

/// One audit-trail row, bound in the order of `insert_audit.cql` (the last value is the
/// write timestamp).
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct AuditRow<'a> {
    tenant: &'a str,
    stream: &'a str,
    version: i64,
    event_id: uuid::Uuid,
    event_type: &'a str,
    recorded_at_micros: i64,
    actor_kind: &'a str,
    actor_id: &'a str,
    on_behalf_of: String,
    policy: &'a str,
    rule: &'a str,
    scope: Option<&'a str>,
    command_id: uuid::Uuid,
    correlation_id: uuid::Uuid,
    compensates: Option<uuid::Uuid>,
    hash: &'a str,
    prev_hash: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// One activity-trail row, bound in the order of `insert_activity.cql`.
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct ActivityRow<'a> {
    tenant: &'a str,
    actor_kind: &'a str,
    actor_id: &'a str,
    recorded_at_micros: i64,
    event_id: uuid::Uuid,
    stream: &'a str,
    version: i64,
    event_type: &'a str,
    on_behalf_of: String,
    rule: &'a str,
    compensates: Option<uuid::Uuid>,
    timestamp: i64,
}

#[cfg(test)]
mod tests {
    use keel_auth::{ActorKind, Authorization};
    use keel_testkit::{TestKeyspace, TestResult};

    use super::*;

    fn event(stream: &str, version: u64, at: i64) -> EventMeta {
        EventMeta {
            event_id: Uuid::new_v4(),
            tenant: "acme".into(),
            stream: stream.into(),
            version,
            event_type: "RefundIssued".into(),
            recorded_at_micros: at,
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            actor: Actor {
                kind: ActorKind::Agent,
                id: "support-bot".into(),
            },
            on_behalf_of: vec![Actor {
                kind: ActorKind::Human,
                id: "alice".into(),
            }],
            data_subjects: vec![stream.into()],
            authorization: Authorization {
                policy: "acme/v1".into(),
                rule: "agent-support".into(),
                scope: None,
            },
            compensates: None,
            hash: format!("h{version}"),
            prev_hash: format!("h{}", version - 1),
        }
    }

    #[tokio::test]
    async fn trails_read_back_in_order_and_a_replay_changes_nothing() -> TestResult {
        let keyspace = TestKeyspace::create("trails").await?;
        let session = Arc::new(keyspace.into_session());
        let trails = Trails::new(Arc::clone(&session)).await?;
        let events = vec![
            (0, 10, event("c-1", 1, 100)),
            (0, 11, event("c-2", 1, 200)),
            (0, 12, event("c-1", 2, 300)),
        ];
        trails.write(&events).await?;
        trails.write(&events).await?; // the same events again, as after a crash

        let audit = trails.audit("acme", "c-1").await?;
        assert_eq!(
            audit.iter().map(|e| (e.version, e.offset)).collect::<Vec<_>>(),
            [(1, 10), (2, 12)]
        );
        assert_eq!(audit[1].prev_hash, audit[0].hash, "the trail shows the chain");
        assert_eq!(audit[0].on_behalf_of[0].id, "alice");
        assert_eq!(audit[0].authorization.rule, "agent-support");

        let activity = trails.activity("acme", &events[0].2.actor).await?;
        let streams: Vec<_> = activity.iter().map(|e| (e.stream.as_str(), e.version)).collect();
        assert_eq!(
            streams,
            [("c-1", 1), ("c-2", 1), ("c-1", 2)],
            "one entry per event, in time order"
        );
        assert!(trails.audit("globex", "c-1").await?.is_empty(), "tenants are apart");
        Ok(())
    }

    #[tokio::test]
    async fn subject_counts_survive_replays_and_sum_over_partitions() -> TestResult {
        let keyspace = TestKeyspace::create("subject_counts").await?;
        let name = keyspace.name().to_owned();
        let session = Arc::new(keyspace.into_session());
        let trails = Trails::new(Arc::clone(&session)).await?;
        let mut shared = event("c-1", 3, 300);
        shared.data_subjects = vec!["c-1".into(), "friend-9".into(), "c-1".into()];
        let first = vec![(0, 10, event("c-1", 1, 100)), (0, 11, event("c-2", 1, 200))];
        let second = vec![
            (0, 11, event("c-2", 1, 200)),
            (0, 12, event("c-1", 2, 250)),
            (0, 13, shared),
        ];
        trails.write(&first).await?;
        trails.write(&first).await?; // a crash before the checkpoint: the batch again
        trails.write(&second).await?; // overlaps what was counted
        trails.write(&[(4, 7, event("c-1", 4, 400))]).await?; // another partition
        let count = |subject: &'static str| subject_event_count(&session, &name, "acme", subject);
        assert_eq!(count("c-1").await?, 4, "events 10, 12, 13 and 4/7, each once");
        assert_eq!(count("c-2").await?, 1);
        assert_eq!(count("friend-9").await?, 1, "the second subject of a shared event");
        assert_eq!(count("nobody").await?, 0);
        assert_eq!(
            subject_event_count(&session, "system", "acme", "c-1").await?,
            0,
            "a keyspace no projector wrote to counts nothing (and is no error)"
        );
        assert_eq!(
            subject_event_count(&session, &name, "globex", "c-1").await?,
            0,
            "tenants are apart"
        );
        Ok(())
    }
}
