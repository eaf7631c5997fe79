//! The events recorded on a customer's stream. Each variant is one Avro record type in
//! `schemas/`, where its personal fields are marked with the subject they belong to.

use keel_domain::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event on one customer's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupportEvent {
    /// The customer was registered. `name`, `email`, `address`: the customer's personal data.
    CustomerRegistered {
        /// The customer (data subject) id.
        customer_id: String,
        /// Full name (personal).
        name: String,
        /// Email address (personal).
        email: String,
        /// Postal address (personal).
        address: String,
    },
    /// The customer was deleted; the stream is closed.
    CustomerDeleted {
        /// The customer id.
        customer_id: String,
        /// Why.
        reason: String,
    },
    /// An email was sent to the customer. `to`, `subject`, `body`: personal.
    EmailSent {
        /// The customer id.
        customer_id: String,
        /// The email's id.
        email_id: String,
        /// Recipient (personal).
        to: String,
        /// Subject line (personal).
        subject: String,
        /// Body (personal).
        body: String,
    },
    /// The customer referred a friend: personal data of two subjects in one event.
    FriendReferred {
        /// The referring customer's id.
        customer_id: String,
        /// The friend's data-subject id.
        friend_id: String,
        /// The friend's name (personal, the friend's).
        friend_name: String,
        /// The friend's email (personal, the friend's).
        friend_email: String,
        /// The customer's note to the friend (personal, the customer's).
        message: String,
    },
    /// A subscription started.
    SubscriptionStarted {
        /// The customer id.
        customer_id: String,
        /// The subscription id.
        subscription_id: String,
        /// The plan.
        plan: String,
    },
    /// A subscription was cancelled.
    SubscriptionCancelled {
        /// The customer id.
        customer_id: String,
        /// The subscription id.
        subscription_id: String,
        /// Why.
        reason: String,
    },
    /// Compensation: a cancellation was undone and the subscription is active again.
    SubscriptionReinstated {
        /// The customer id.
        customer_id: String,
        /// The subscription id.
        subscription_id: String,
        /// The cancellation event undone.
        compensates: Uuid,
    },
    /// A refund was issued.
    RefundIssued {
        /// The customer id.
        customer_id: String,
        /// The refund id.
        refund_id: String,
        /// Amount in cents.
        amount_cents: i64,
        /// Why.
        reason: String,
    },
    /// Compensation: a refund was reversed.
    RefundReversed {
        /// The customer id.
        customer_id: String,
        /// The refund id.
        refund_id: String,
        /// The amount taken back, in cents.
        amount_cents: i64,
        /// The refund event undone.
        compensates: Uuid,
    },
}

impl DomainEvent for SupportEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CustomerRegistered { .. } => "CustomerRegistered",
            Self::CustomerDeleted { .. } => "CustomerDeleted",
            Self::EmailSent { .. } => "EmailSent",
            Self::FriendReferred { .. } => "FriendReferred",
            Self::SubscriptionStarted { .. } => "SubscriptionStarted",
            Self::SubscriptionCancelled { .. } => "SubscriptionCancelled",
            Self::SubscriptionReinstated { .. } => "SubscriptionReinstated",
            Self::RefundIssued { .. } => "RefundIssued",
            Self::RefundReversed { .. } => "RefundReversed",
        }
    }

    fn compensates(&self) -> Option<Uuid> {
        match self {
            Self::SubscriptionReinstated { compensates, .. } | Self::RefundReversed { compensates, .. } => {
                Some(*compensates)
            }
            _ => None,
        }
    }
}
