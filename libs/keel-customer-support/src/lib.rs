//! Keel's worked domain: an AI customer-support agent at work.
//!
//! One stream per customer (the stream id is the customer id). The agent registers
//! customers (name, email and address are personal data), starts and cancels
//! subscriptions, issues refunds, sends emails and records referrals (whose event carries
//! personal data of two people: the customer and the friend). Mistakes are undone by
//! compensations that name the event they undo: a cancelled subscription is reinstated, a
//! refund reversed. Deleting a customer is a command too, which policies keep from agents.
//!
//! The domain is pure ([`keel_domain::Aggregate`]); its state holds no personal data, only
//! ids, statuses and amounts, because it is snapshotted outside the sealed event log.

mod command;
mod customer;
mod event;
mod refund;
mod state;
mod subscription;

pub use command::SupportCommand;
pub use event::SupportEvent;
pub use refund::MAX_REFUND_CENTS;
pub use state::{CustomerState, RefundState, SubscriptionState, SubscriptionStatus};

use keel_domain::{Aggregate, DomainError, Recorded, WireSchemas};

/// The customer aggregate of the worked domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Customer;

impl Aggregate for Customer {
    const NAME: &'static str = "customer";
    type State = CustomerState;
    type Command = SupportCommand;
    type Event = SupportEvent;

    fn handle(state: &CustomerState, command: &SupportCommand) -> Result<Vec<SupportEvent>, DomainError> {
        use SupportCommand as C;
        if !matches!(command, C::RegisterCustomer { .. }) {
            customer::ensure_active(state)?;
        }
        match command {
            C::RegisterCustomer {
                customer_id,
                name,
                email,
                address,
            } => customer::register(state, customer_id, name, email, address),
            C::DeleteCustomer { reason } => customer::delete(state, reason),
            C::SendEmail {
                email_id,
                to,
                subject,
                body,
            } => customer::send_email(state, email_id, to, subject, body),
            C::ReferFriend {
                friend_id,
                friend_name,
                friend_email,
                message,
            } => customer::refer_friend(state, friend_id, friend_name, friend_email, message),
            C::StartSubscription { subscription_id, plan } => subscription::start(state, subscription_id, plan),
            C::CancelSubscription {
                subscription_id,
                reason,
            } => subscription::cancel(state, subscription_id, reason),
            C::ReinstateSubscription {
                subscription_id,
                compensates,
            } => subscription::reinstate(state, subscription_id, *compensates),
            C::IssueRefund {
                refund_id,
                amount_cents,
                reason,
            } => refund::issue(state, refund_id, *amount_cents, reason),
            C::ReverseRefund { refund_id, compensates } => refund::reverse(state, refund_id, *compensates),
        }
    }

    fn apply(state: CustomerState, event: &SupportEvent, recorded: &Recorded) -> CustomerState {
        state.apply(event, recorded)
    }
}

impl WireSchemas for Customer {
    const COMMAND_NAMESPACE: &'static str = "dev.keel.support.commands";
    const EVENT_NAMESPACE: &'static str = "dev.keel.support.events";
    const SCHEMAS: &'static [&'static str] = &[
        include_str!("../../../schemas/customer-support/commands/CancelSubscription.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/DeleteCustomer.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/IssueRefund.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/ReferFriend.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/RegisterCustomer.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/ReinstateSubscription.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/ReverseRefund.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/SendEmail.v1.avsc"),
        include_str!("../../../schemas/customer-support/commands/StartSubscription.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/CustomerDeleted.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/CustomerRegistered.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/EmailSent.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/FriendReferred.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/RefundIssued.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/RefundReversed.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/SubscriptionCancelled.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/SubscriptionReinstated.v1.avsc"),
        include_str!("../../../schemas/customer-support/events/SubscriptionStarted.v1.avsc"),
    ];
}

#[cfg(test)]
mod tests;
