//! What the customer aggregate remembers between commands: ids, statuses and amounts, and
//! never personal data (state is snapshotted outside the sealed log).

use std::collections::{BTreeMap, BTreeSet};

use keel_domain::Recorded;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SupportEvent;

/// The state of one customer's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Set by registration; `None` means the stream has not started.
    pub customer_id: Option<String>,
    /// Deleted customers accept no further commands.
    pub deleted: bool,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, SubscriptionState>,
    /// Refunds by id.
    pub refunds: BTreeMap<String, RefundState>,
    /// Refunded and not reversed, in cents.
    pub refunded_cents: i64,
    /// Ids of the emails sent.
    pub emails_sent: BTreeSet<String>,
    /// Data-subject ids of referred friends.
    pub referrals: BTreeSet<String>,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// The plan.
    pub plan: String,
    /// Active or cancelled.
    pub status: SubscriptionStatus,
    /// The event that cancelled it, which a reinstatement must name.
    pub cancelled_by: Option<Uuid>,
}

/// Whether a subscription runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    /// Running.
    Active,
    /// Cancelled; a reinstatement can undo it.
    Cancelled,
}

/// One refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    /// Amount in cents.
    pub amount_cents: i64,
    /// The event that issued it, which a reversal must name.
    pub issued_by: Uuid,
    /// Whether a reversal undid it.
    pub reversed: bool,
}

impl CustomerState {
    /// Folds one recorded event in.
    pub(crate) fn apply(mut self, event: &SupportEvent, recorded: &Recorded) -> Self {
        use SupportEvent as E;
        match event {
            E::CustomerRegistered { customer_id, .. } => self.customer_id = Some(customer_id.clone()),
            E::CustomerDeleted { .. } => self.deleted = true,
            E::EmailSent { email_id, .. } => {
                self.emails_sent.insert(email_id.clone());
            }
            E::FriendReferred { friend_id, .. } => {
                self.referrals.insert(friend_id.clone());
            }
            E::SubscriptionStarted {
                subscription_id, plan, ..
            } => {
                let subscription = SubscriptionState {
                    plan: plan.clone(),
                    status: SubscriptionStatus::Active,
                    cancelled_by: None,
                };
                self.subscriptions.insert(subscription_id.clone(), subscription);
            }
            E::SubscriptionCancelled { subscription_id, .. } => {
                if let Some(subscription) = self.subscriptions.get_mut(subscription_id) {
                    subscription.status = SubscriptionStatus::Cancelled;
                    subscription.cancelled_by = Some(recorded.event_id);
                }
            }
            E::SubscriptionReinstated { subscription_id, .. } => {
                if let Some(subscription) = self.subscriptions.get_mut(subscription_id) {
                    subscription.status = SubscriptionStatus::Active;
                    subscription.cancelled_by = None;
                }
            }
            E::RefundIssued {
                refund_id,
                amount_cents,
                ..
            } => {
                let refund = RefundState {
                    amount_cents: *amount_cents,
                    issued_by: recorded.event_id,
                    reversed: false,
                };
                self.refunds.insert(refund_id.clone(), refund);
                self.refunded_cents = self.refunded_cents.saturating_add(*amount_cents);
            }
            E::RefundReversed {
                refund_id,
                amount_cents,
                ..
            } => {
                if let Some(refund) = self.refunds.get_mut(refund_id) {
                    refund.reversed = true;
                }
                self.refunded_cents = self.refunded_cents.saturating_sub(*amount_cents);
            }
        }
        self
    }
}
