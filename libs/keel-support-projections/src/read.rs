//! Reads of the projections, as stored: personal fields still sealed.

use serde::Serialize;
use uuid::Uuid;

use crate::{StoredField, SupportProjections};

/// The log position and stream version a row reflects.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// The stream version of the last event applied to the row.
    pub version: i64,
    /// Its partition of the events topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

fn position(version: Option<i64>, partition: Option<i32>, offset: Option<i64>) -> Position {
    Position {
        version: version.unwrap_or(0),
        partition: partition.unwrap_or(0),
        offset: offset.unwrap_or(0),
    }
}

/// A customer's current profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// `active` or `deleted`.
    pub status: Option<String>,
    /// Name, sealed.
    pub name: Option<StoredField>,
    /// Email, sealed.
    pub email: Option<StoredField>,
    /// Postal address, sealed.
    pub address: Option<StoredField>,
    /// Registration time, microseconds since the Unix epoch.
    pub registered_at_micros: Option<i64>,
    /// Why it was deleted, once it is.
    pub deleted_reason: Option<String>,
    /// Time of the last event applied.
    pub updated_at_micros: Option<i64>,
    /// What the row reflects.
    pub position: Position,
}

/// One subscription of a customer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Subscription))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRow {
    /// Its id.
    pub subscription_id: String,
    /// The plan.
    pub plan: Option<String>,
    /// `active` or `cancelled`.
    pub status: Option<String>,
    /// The version that started it.
    pub started_version: Option<i64>,
    /// The event that cancelled it, while cancelled.
    pub cancelled_by: Option<Uuid>,
    /// Why, while cancelled.
    pub cancel_reason: Option<String>,
    /// What the row reflects.
    pub position: Position,
}

/// One refund of a customer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Refund))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundRow {
    /// Its id.
    pub refund_id: String,
    /// Amount issued, in cents.
    pub amount_cents: i64,
    /// Why.
    pub reason: Option<String>,
    /// The event that issued it.
    pub issued_by: Option<Uuid>,
    /// Its version.
    pub issued_version: Option<i64>,
    /// When, microseconds since the Unix epoch.
    pub issued_at_micros: Option<i64>,
    /// Amount taken back by a reversal, in cents (0 if none).
    pub reversed_cents: i64,
    /// The reversing event.
    pub reversed_by: Option<Uuid>,
    /// What the row reflects.
    pub position: Position,
}

/// One email sent to a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRow {
    /// Its id.
    pub email_id: String,
    /// Recipient, sealed.
    pub recipient: Option<StoredField>,
    /// Subject line, sealed.
    pub subject: Option<StoredField>,
    /// Body, sealed.
    pub body: Option<StoredField>,
    /// When, microseconds since the Unix epoch.
    pub sent_at_micros: Option<i64>,
    /// What the row reflects.
    pub position: Position,
}

/// One friend a customer referred.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralRow {
    /// The friend's subject id.
    pub friend_id: String,
    /// The friend's name, sealed with the friend's key.
    pub friend_name: Option<StoredField>,
    /// The friend's email, sealed with the friend's key.
    pub friend_email: Option<StoredField>,
    /// The customer's message, sealed with the customer's key.
    pub message: Option<StoredField>,
    /// When, microseconds since the Unix epoch.
    pub referred_at_micros: Option<i64>,
    /// What the row reflects.
    pub position: Position,
}

type Sealed = Option<StoredField>;

impl SupportProjections {
    /// A customer's profile, if the customer was registered.
    pub async fn profile(&self, tenant: &str, customer: &str) -> anyhow::Result<Option<ProfileRow>> {
        type Row = (
            Option<String>,
            Sealed,
            Sealed,
            Sealed,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.select_profile, (tenant, customer))
            .await?
            .into_rows_result()?;
        let Some(row) = rows.maybe_first_row::<Row>()? else {
            return Ok(None);
        };
        let (status, name, email, address, registered, reason, updated, version, partition, offset) = row;
        Ok(Some(ProfileRow {
            status,
            name,
            email,
            address,
            registered_at_micros: registered,
            deleted_reason: reason,
            updated_at_micros: updated,
            position: position(version, partition, offset),
        }))
    }

    /// A customer's subscriptions, by id.
    pub async fn subscriptions(&self, tenant: &str, customer: &str) -> anyhow::Result<Vec<SubscriptionRow>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<Uuid>,
            Option<String>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.select_subscriptions, (tenant, customer))
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>()? {
            let (subscription_id, plan, status, started_version, cancelled_by, cancel_reason, v, p, o) = row?;
            out.push(SubscriptionRow {
                subscription_id,
                plan,
                status,
                started_version,
                cancelled_by,
                cancel_reason,
                position: position(v, p, o),
            });
        }
        Ok(out)
    }

    /// A customer's refunds, in the order they were issued.
    pub async fn refunds(&self, tenant: &str, customer: &str) -> anyhow::Result<Vec<RefundRow>> {
        type Row = (
            String,
            Option<i64>,
            Option<String>,
            Option<Uuid>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<Uuid>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.select_refunds, (tenant, customer))
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>()? {
            let (refund_id, amount, reason, issued_by, issued_version, issued_at, reversed, reversed_by, v, p, o) =
                row?;
            out.push(RefundRow {
                refund_id,
                amount_cents: amount.unwrap_or(0),
                reason,
                issued_by,
                issued_version,
                issued_at_micros: issued_at,
                reversed_cents: reversed.unwrap_or(0),
                reversed_by,
                position: position(v, p, o),
            });
        }
        out.sort_by_key(|refund| (refund.issued_version.unwrap_or(i64::MAX), refund.refund_id.clone()));
        Ok(out)
    }

    /// The emails sent to a customer, in the order they were sent.
    pub async fn emails(&self, tenant: &str, customer: &str) -> anyhow::Result<Vec<EmailRow>> {
        type Row = (
            String,
            Sealed,
            Sealed,
            Sealed,
            Option<i64>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.select_emails, (tenant, customer))
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>()? {
            let (email_id, recipient, subject, body, sent_at_micros, v, p, o) = row?;
            out.push(EmailRow {
                email_id,
                recipient,
                subject,
                body,
                sent_at_micros,
                position: position(v, p, o),
            });
        }
        out.sort_by_key(|email| email.position.version);
        Ok(out)
    }

    /// The friends a customer referred, in the order referred.
    pub async fn referrals(&self, tenant: &str, customer: &str) -> anyhow::Result<Vec<ReferralRow>> {
        type Row = (
            String,
            Sealed,
            Sealed,
            Sealed,
            Option<i64>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.select_referrals, (tenant, customer))
            .await?
            .into_rows_result()?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>()? {
            let (friend_id, friend_name, friend_email, message, referred_at_micros, v, p, o) = row?;
            out.push(ReferralRow {
                friend_id,
                friend_name,
                friend_email,
                message,
                referred_at_micros,
                position: position(v, p, o),
            });
        }
        out.sort_by_key(|referral| referral.position.version);
        Ok(out)
    }
}
