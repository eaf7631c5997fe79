//! The customer-support domain's projections in the CQL store.
//!
//! They implement the projection port (`keel_projection::Projections`): the projector
//! runtime writes them from events it has opened; the query API reads them. One table per projection (`cql/schema.cql`):
//!
//! **customer profile** (current state), **subscriptions**, **refunds** (one row per refund;
//! totals are summed on read, so no crash or replay can count a refund twice), **emails
//! sent** and **referrals**, per customer. The runtime keeps every stream's sealed events
//! and the erased subjects itself (`keel_trails::StreamLog`).
//!
//! **Exactly once in effect.** Rows are keyed by what they describe and every write is
//! `USING TIMESTAMP <log offset>`: a replayed event rewrites the same cells with the same
//! values, and an old event applied late loses to newer ones. Every row records the stream
//! version, partition and offset it reflects.
//!
//! **Sealed at rest.** Personal fields are stored as the ciphertext the event carries
//! ([`StoredField`]); only the query API opens them, with the subject's key. Once that key
//! is destroyed the stored ciphertext is noise.

mod read;
mod write;

pub use keel_projection::StoredField;
pub use read::{EmailRow, Position, ProfileRow, ReferralRow, RefundRow, SubscriptionRow};
pub use write::LoggedEvent;

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

/// The customer profile projection (table version 1).
pub const PROFILES: &str = "customer_profiles.v1";
/// Subscriptions by customer.
pub const SUBSCRIPTIONS: &str = "subscriptions.v1";
/// Refunds by customer.
pub const REFUNDS: &str = "refunds.v1";
/// Emails sent, by customer.
pub const EMAILS: &str = "emails.v1";
/// Referrals, by referring customer.
pub const REFERRALS: &str = "referrals.v1";
/// Every projection of this crate, as checkpoints name them.
pub const ALL: [&str; 5] = [PROFILES, SUBSCRIPTIONS, REFUNDS, EMAILS, REFERRALS];

/// The projections' tables.
pub const SCHEMA: &str = include_str!("cql/schema.cql");

/// The domain projections' tables on a CQL session.
pub struct SupportProjections {
    session: Arc<Session>,
    profile_registered: PreparedStatement,
    profile_deleted: PreparedStatement,
    profile_touched: PreparedStatement,
    subscription_started: PreparedStatement,
    subscription_status: PreparedStatement,
    refund_issued: PreparedStatement,
    refund_reversed: PreparedStatement,
    email_sent: PreparedStatement,
    friend_referred: PreparedStatement,
    select_profile: PreparedStatement,
    select_subscriptions: PreparedStatement,
    select_refunds: PreparedStatement,
    select_emails: PreparedStatement,
    select_referrals: PreparedStatement,
}

impl std::fmt::Debug for SupportProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupportProjections").finish_non_exhaustive()
    }
}

impl SupportProjections {
    /// Creates the tables if missing (in the session's keyspace) and prepares statements.
    pub async fn new(session: Arc<Session>) -> anyhow::Result<Self> {
        keel_cql::apply_schema(&session, SCHEMA).await?;
        let prepare = async |cql: &str| session.prepare(cql.trim()).await;
        Ok(Self {
            profile_registered: prepare(include_str!("cql/profile_registered.cql")).await?,
            profile_deleted: prepare(include_str!("cql/profile_deleted.cql")).await?,
            profile_touched: prepare(include_str!("cql/profile_touched.cql")).await?,
            subscription_started: prepare(include_str!("cql/subscription_started.cql")).await?,
            subscription_status: prepare(include_str!("cql/subscription_status.cql")).await?,
            refund_issued: prepare(include_str!("cql/refund_issued.cql")).await?,
            refund_reversed: prepare(include_str!("cql/refund_reversed.cql")).await?,
            email_sent: prepare(include_str!("cql/email_sent.cql")).await?,
            friend_referred: prepare(include_str!("cql/friend_referred.cql")).await?,
            select_profile: prepare(include_str!("cql/select_profile.cql")).await?,
            select_subscriptions: prepare(include_str!("cql/select_subscriptions.cql")).await?,
            select_refunds: prepare(include_str!("cql/select_refunds.cql")).await?,
            select_emails: prepare(include_str!("cql/select_emails.cql")).await?,
            select_referrals: prepare(include_str!("cql/select_referrals.cql")).await?,
            session,
        })
    }
}

impl keel_projection::Projections for SupportProjections {
    type Domain = keel_customer_support::Customer;
    type Event = keel_customer_support::SupportEvent;

    const NAMES: &'static [&'static str] = &ALL;
    const SCHEMA: &'static str = SCHEMA;

    async fn connect(session: Arc<Session>) -> Result<Self, keel_projection::ProjectionError> {
        Self::new(session)
            .await
            .map_err(|error| keel_projection::ProjectionError::Setup(format!("{error:#}")))
    }

    async fn write(&self, events: &[LoggedEvent<'_>]) -> Result<(), keel_projection::ProjectionError> {
        self.write_events(events)
            .await
            .map_err(|error| match error.downcast::<scylla::errors::ExecutionError>() {
                Ok(store) => keel_projection::ProjectionError::Store(Box::new(store)),
                Err(other) => keel_projection::ProjectionError::Event(format!("{other:#}")),
            })
    }
}
