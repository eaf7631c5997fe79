//! The access log: who saw whose personal data, when, which field, for what purpose, allowed
//! by which read rule. The query API records a row for every personal field it shows in
//! clear, before it answers; a data subject's access report (GDPR art. 15) reads it per
//! subject, the records of processing (art. 30) per actor and day.
//!
//! Append-only and free of personal data (ids, field names and rule ids, never a value), so
//! it outlives the erasure of the subjects it names; it lives in the control keyspace,
//! which no rebuild of the projections drops.

use std::sync::Arc;

use keel_auth::{Actor, ReadAuthorization};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use uuid::Uuid;

/// The tables.
pub const ACCESS_SCHEMA: &str = include_str!("cql/access_schema.cql");

/// One personal field shown in clear to a reader.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// When, microseconds since the Unix epoch.
    pub at_micros: i64,
    /// This access's id.
    pub access_id: Uuid,
    /// Who read.
    pub actor: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// Whose data: the data subject the field is sealed to.
    pub subject: String,
    /// The stream the field was read from.
    pub stream: String,
    /// The field's name in its event.
    pub field: String,
    /// The purpose the reader stated, if any.
    pub purpose: Option<String>,
    /// The policy and read rule that allowed it.
    pub authorization: ReadAuthorization,
}

/// The access log on a CQL session (the control keyspace).
pub struct AccessLog {
    session: Arc<Session>,
    record: PreparedStatement,
    by_subject: PreparedStatement,
    by_actor: PreparedStatement,
}

/// Values of `record_access.cql`, by name.
#[derive(scylla::SerializeRow)]
struct AccessRow<'a> {
    tenant: &'a str,
    subject: &'a str,
    day: String,
    at_micros: i64,
    access_id: Uuid,
    actor_kind: &'a str,
    actor: &'a str,
    on_behalf_of: String,
    stream: &'a str,
    field: &'a str,
    purpose: Option<&'a str>,
    policy: &'a str,
    rule: &'a str,
}

/// A row of the select statements, in their column order.
#[derive(scylla::DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct AccessRead {
    at_micros: i64,
    access_id: Uuid,
    actor_kind: String,
    actor: String,
    on_behalf_of: String,
    subject: String,
    stream: String,
    field: String,
    purpose: Option<String>,
    policy: String,
    rule: String,
}

/// The UTC day of `micros` since the Unix epoch, `YYYY-MM-DD`: the actor table's bucket.
pub fn day_of(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

impl AccessLog {
    /// Creates the tables if missing and prepares the statements.
    pub async fn new(session: Arc<Session>) -> anyhow::Result<Self> {
        keel_cql::apply_schema(&session, ACCESS_SCHEMA).await?;
        let prepare = async |cql: &str| session.prepare(cql.trim()).await;
        Ok(Self {
            record: prepare(include_str!("cql/record_access.cql")).await?,
            by_subject: prepare(include_str!("cql/select_access_by_subject.cql")).await?,
            by_actor: prepare(include_str!("cql/select_access_by_actor.cql")).await?,
            session,
        })
    }

    /// Appends `access` of `tenant`, to both views at once (a logged batch).
    pub async fn record(&self, tenant: &str, access: &Access) -> anyhow::Result<()> {
        let row = AccessRow {
            tenant,
            subject: &access.subject,
            day: day_of(access.at_micros),
            at_micros: access.at_micros,
            access_id: access.access_id,
            actor_kind: access.actor.kind.as_str(),
            actor: &access.actor.id,
            on_behalf_of: serde_json::to_string(&access.on_behalf_of)?,
            stream: &access.stream,
            field: &access.field,
            purpose: access.purpose.as_deref(),
            policy: &access.authorization.policy,
            rule: &access.authorization.rule,
        };
        self.session.execute_unpaged(&self.record, row).await?;
        Ok(())
    }

    /// The latest `limit` accesses to `subject`'s data, newest first.
    pub async fn of_subject(&self, tenant: &str, subject: &str, limit: i32) -> anyhow::Result<Vec<Access>> {
        self.read(&self.by_subject, (tenant, subject, limit)).await
    }

    /// The latest `limit` accesses by `actor` on `day` (UTC, `YYYY-MM-DD`), newest first.
    pub async fn of_actor(&self, tenant: &str, actor: &Actor, day: &str, limit: i32) -> anyhow::Result<Vec<Access>> {
        let values = (tenant, actor.kind.as_str(), actor.id.as_str(), day, limit);
        self.read(&self.by_actor, values).await
    }

    async fn read(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> anyhow::Result<Vec<Access>> {
        let rows = self
            .session
            .execute_unpaged(statement, values)
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<AccessRead>()? {
            let row = row?;
            out.push(Access {
                at_micros: row.at_micros,
                access_id: row.access_id,
                actor: Actor {
                    kind: crate::actor_kind(&row.actor_kind)?,
                    id: row.actor,
                },
                on_behalf_of: serde_json::from_str(&row.on_behalf_of)?,
                subject: row.subject,
                stream: row.stream,
                field: row.field,
                purpose: row.purpose,
                authorization: ReadAuthorization {
                    policy: row.policy,
                    rule: row.rule,
                },
            });
        }
        Ok(out)
    }
}
