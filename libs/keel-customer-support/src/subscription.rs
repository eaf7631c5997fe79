//! Starting, cancelling and reinstating subscriptions.

use keel_domain::DomainError;
use uuid::Uuid;

use crate::customer::{MAX_TEXT, ensure_active, text};
use crate::{CustomerState, SubscriptionState, SubscriptionStatus, SupportEvent};

fn existing<'a>(state: &'a CustomerState, subscription_id: &str) -> Result<&'a SubscriptionState, DomainError> {
    state
        .subscriptions
        .get(subscription_id)
        .ok_or_else(|| DomainError::new("subscription_not_found", format!("no subscription {subscription_id}")))
}

pub(crate) fn start(
    state: &CustomerState,
    subscription_id: &str,
    plan: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    text("subscription_id", subscription_id, MAX_TEXT)?;
    text("plan", plan, MAX_TEXT)?;
    if state.subscriptions.contains_key(subscription_id) {
        return Err(DomainError::new(
            "subscription_exists",
            format!("subscription {subscription_id} already exists"),
        ));
    }
    Ok(vec![SupportEvent::SubscriptionStarted {
        customer_id,
        subscription_id: subscription_id.to_owned(),
        plan: plan.to_owned(),
    }])
}

pub(crate) fn cancel(
    state: &CustomerState,
    subscription_id: &str,
    reason: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    text("reason", reason, MAX_TEXT)?;
    if existing(state, subscription_id)?.status != SubscriptionStatus::Active {
        return Err(DomainError::new(
            "subscription_not_active",
            format!("subscription {subscription_id} is not active"),
        ));
    }
    Ok(vec![SupportEvent::SubscriptionCancelled {
        customer_id,
        subscription_id: subscription_id.to_owned(),
        reason: reason.to_owned(),
    }])
}

pub(crate) fn reinstate(
    state: &CustomerState,
    subscription_id: &str,
    compensates: Uuid,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    let subscription = existing(state, subscription_id)?;
    match subscription.cancelled_by {
        None => Err(DomainError::new(
            "subscription_not_cancelled",
            format!("subscription {subscription_id} is not cancelled"),
        )),
        Some(cancellation) if cancellation != compensates => Err(DomainError::new(
            "compensation_mismatch",
            format!(
                "event {compensates} is not the cancellation of subscription {subscription_id} ({cancellation} is)"
            ),
        )),
        Some(_) => Ok(vec![SupportEvent::SubscriptionReinstated {
            customer_id,
            subscription_id: subscription_id.to_owned(),
            compensates,
        }]),
    }
}
