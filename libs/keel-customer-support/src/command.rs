//! The commands an agent, a job or a person sends about one customer.

use keel_domain::DomainCommand;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A command on one customer's stream. Field values marked *personal* are the customer's
/// (or, for a referral, the friend's) personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupportCommand {
    /// Opens the customer's stream. `name`, `email`, `address`: personal.
    RegisterCustomer {
        /// The customer's id; also the stream id.
        customer_id: String,
        /// Full name (personal).
        name: String,
        /// Email address (personal).
        email: String,
        /// Postal address (personal).
        address: String,
    },
    /// Closes the customer's stream; nothing more can happen on it.
    DeleteCustomer {
        /// Why, for the audit trail.
        reason: String,
    },
    /// Records an email sent to the customer. `to`, `subject`, `body`: personal.
    SendEmail {
        /// Idempotency key of the email within the stream.
        email_id: String,
        /// Recipient address (personal).
        to: String,
        /// Subject line (personal).
        subject: String,
        /// Body (personal).
        body: String,
    },
    /// Records that the customer referred a friend: personal data of both people.
    ReferFriend {
        /// The friend's own data-subject id.
        friend_id: String,
        /// The friend's name (personal, the friend's).
        friend_name: String,
        /// The friend's email (personal, the friend's).
        friend_email: String,
        /// The customer's note to the friend (personal, the customer's).
        message: String,
    },
    /// Starts a subscription to `plan`.
    StartSubscription {
        /// The subscription's id, unique within the customer.
        subscription_id: String,
        /// The plan's name.
        plan: String,
    },
    /// Cancels an active subscription.
    CancelSubscription {
        /// Which subscription.
        subscription_id: String,
        /// Why.
        reason: String,
    },
    /// Compensation: undoes the cancellation event `compensates`.
    ReinstateSubscription {
        /// Which subscription.
        subscription_id: String,
        /// The id of the cancellation event being undone.
        compensates: Uuid,
    },
    /// Refunds `amount_cents` to the customer.
    IssueRefund {
        /// The refund's id, unique within the customer.
        refund_id: String,
        /// Amount in cents; policies may cap it per actor.
        amount_cents: i64,
        /// Why.
        reason: String,
    },
    /// Compensation: undoes the refund event `compensates`.
    ReverseRefund {
        /// Which refund.
        refund_id: String,
        /// The id of the refund event being undone.
        compensates: Uuid,
    },
}

impl DomainCommand for SupportCommand {
    fn command_type(&self) -> &'static str {
        match self {
            Self::RegisterCustomer { .. } => "RegisterCustomer",
            Self::DeleteCustomer { .. } => "DeleteCustomer",
            Self::SendEmail { .. } => "SendEmail",
            Self::ReferFriend { .. } => "ReferFriend",
            Self::StartSubscription { .. } => "StartSubscription",
            Self::CancelSubscription { .. } => "CancelSubscription",
            Self::ReinstateSubscription { .. } => "ReinstateSubscription",
            Self::IssueRefund { .. } => "IssueRefund",
            Self::ReverseRefund { .. } => "ReverseRefund",
        }
    }

    fn quantity(&self, name: &str) -> Option<i64> {
        match (self, name) {
            (Self::IssueRefund { amount_cents, .. }, "amount_cents") => Some(*amount_cents),
            _ => None,
        }
    }
}
