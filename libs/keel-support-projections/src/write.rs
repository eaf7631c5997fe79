//! From opened events to rows: one idempotent write per row an event touches.

use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};
use keel_customer_support::SupportEvent;
use keel_envelope::EventEnvelope;
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;
use uuid::Uuid;

use crate::{StoredField, SupportProjections};

/// An event as the projector hands it over (the projection port's, with this domain's
/// events). Only ids, amounts and statuses are taken from the payload; personal fields are
/// taken sealed from the envelope. An event of an erased tenant has no opened payload: only
/// its sealed copy is kept.
pub type LoggedEvent<'a> = keel_projection::LoggedEvent<'a, SupportEvent>;

type Write<'a> = BoxFuture<'a, Result<QueryResult, ExecutionError>>;

fn event_uuid(envelope: &EventEnvelope) -> anyhow::Result<Uuid> {
    Uuid::parse_str(&envelope.event_id)
        .map_err(|error| anyhow::anyhow!("event {} has no uuid id: {error}", envelope.event_id))
}

fn sealed(envelope: &EventEnvelope, path: &str) -> anyhow::Result<StoredField> {
    StoredField::of(envelope, path).ok_or_else(|| {
        anyhow::anyhow!(
            "event {} ({}) lacks the sealed field {path}",
            envelope.event_id,
            envelope.event_type
        )
    })
}

impl SupportProjections {
    /// Writes every row `events` touch. Idempotent: applying an event again, or an older
    /// event after a newer one, leaves the tables as they are.
    pub async fn write_events(&self, events: &[LoggedEvent<'_>]) -> anyhow::Result<()> {
        let mut writes: Vec<Write<'_>> = Vec::with_capacity(events.len() * 2);
        for event in events {
            self.rows(event, &mut writes)?;
        }
        try_join_all(writes).await?;
        Ok(())
    }

    fn rows<'s>(&'s self, logged: &LoggedEvent<'_>, writes: &mut Vec<Write<'s>>) -> anyhow::Result<()> {
        use SupportEvent as E;
        let envelope = logged.envelope;
        let session = &*self.session;
        let (ts, partition, offset) = (logged.offset, logged.partition, logged.offset);
        let version = envelope.stream_version;
        let at = envelope.recorded_at;
        let tenant = envelope.tenant_id.clone();
        let customer = envelope.stream_id.clone();
        let Some(event) = logged.event else {
            return Ok(());
        };
        let key = (tenant.clone(), customer.clone());
        let touched = (ts, at, version, partition, offset, tenant.clone(), customer.clone());
        match event {
            E::CustomerRegistered { .. } => {
                let values = (
                    ts,
                    sealed(envelope, "name")?,
                    sealed(envelope, "email")?,
                    sealed(envelope, "address")?,
                    at,
                    at,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                );
                writes.push(session.execute_unpaged(&self.profile_registered, values).boxed());
                return Ok(());
            }
            E::CustomerDeleted { reason, .. } => {
                let values = (ts, reason.clone(), at, version, partition, offset, key.0, key.1);
                writes.push(session.execute_unpaged(&self.profile_deleted, values).boxed());
                return Ok(());
            }
            E::EmailSent { email_id, .. } => {
                let values = (
                    ts,
                    sealed(envelope, "to")?,
                    sealed(envelope, "subject")?,
                    sealed(envelope, "body")?,
                    at,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    email_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.email_sent, values).boxed());
            }
            E::FriendReferred { friend_id, .. } => {
                let values = (
                    ts,
                    sealed(envelope, "friend_name")?,
                    sealed(envelope, "friend_email")?,
                    sealed(envelope, "message")?,
                    at,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    friend_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.friend_referred, values).boxed());
            }
            E::SubscriptionStarted {
                subscription_id, plan, ..
            } => {
                let values = (
                    ts,
                    plan.clone(),
                    version,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    subscription_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.subscription_started, values).boxed());
            }
            E::SubscriptionCancelled {
                subscription_id,
                reason,
                ..
            } => {
                let values = (
                    ts,
                    "cancelled",
                    Some(event_uuid(envelope)?),
                    Some(reason.clone()),
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    subscription_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.subscription_status, values).boxed());
            }
            E::SubscriptionReinstated { subscription_id, .. } => {
                let values = (
                    ts,
                    "active",
                    None::<Uuid>,
                    None::<String>,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    subscription_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.subscription_status, values).boxed());
            }
            E::RefundIssued {
                refund_id,
                amount_cents,
                reason,
                ..
            } => {
                let values = (
                    ts,
                    *amount_cents,
                    reason.clone(),
                    event_uuid(envelope)?,
                    version,
                    at,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    refund_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.refund_issued, values).boxed());
            }
            E::RefundReversed {
                refund_id,
                amount_cents,
                ..
            } => {
                let values = (
                    ts,
                    *amount_cents,
                    event_uuid(envelope)?,
                    version,
                    partition,
                    offset,
                    key.0,
                    key.1,
                    refund_id.clone(),
                );
                writes.push(session.execute_unpaged(&self.refund_reversed, values).boxed());
            }
        }
        writes.push(session.execute_unpaged(&self.profile_touched, touched).boxed());
        Ok(())
    }
}
