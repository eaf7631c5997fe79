//! Issuing and reversing refunds. How much an actor may refund is a policy limit, checked
//! before the domain sees the command; the domain checks what is true of any refund.

use keel_domain::DomainError;
use uuid::Uuid;

use crate::customer::{MAX_TEXT, ensure_active, text};
use crate::{CustomerState, SupportEvent};

/// The largest refund, in cents: ten billion in the currency's main unit. Large enough for
/// any refund a support desk issues, small enough that no sum of refunds a customer could
/// accumulate overflows a 64-bit total (over 900 million such refunds).
pub const MAX_REFUND_CENTS: i64 = 1_000_000_000_000;

pub(crate) fn issue(
    state: &CustomerState,
    refund_id: &str,
    amount_cents: i64,
    reason: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    text("refund_id", refund_id, MAX_TEXT)?;
    text("reason", reason, MAX_TEXT)?;
    if amount_cents <= 0 || amount_cents > MAX_REFUND_CENTS {
        return Err(DomainError::new(
            "invalid_amount",
            format!("a refund is 1 to {MAX_REFUND_CENTS} cents, got {amount_cents}"),
        ));
    }
    if state.refunds.contains_key(refund_id) {
        return Err(DomainError::new(
            "refund_exists",
            format!("refund {refund_id} already exists"),
        ));
    }
    Ok(vec![SupportEvent::RefundIssued {
        customer_id,
        refund_id: refund_id.to_owned(),
        amount_cents,
        reason: reason.to_owned(),
    }])
}

pub(crate) fn reverse(
    state: &CustomerState,
    refund_id: &str,
    compensates: Uuid,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    let refund = state
        .refunds
        .get(refund_id)
        .ok_or_else(|| DomainError::new("refund_not_found", format!("no refund {refund_id}")))?;
    if refund.reversed {
        return Err(DomainError::new(
            "refund_already_reversed",
            format!("refund {refund_id} was already reversed"),
        ));
    }
    if refund.issued_by != compensates {
        return Err(DomainError::new(
            "compensation_mismatch",
            format!(
                "event {compensates} is not refund {refund_id} ({} is)",
                refund.issued_by
            ),
        ));
    }
    Ok(vec![SupportEvent::RefundReversed {
        customer_id,
        refund_id: refund_id.to_owned(),
        amount_cents: refund.amount_cents,
        compensates,
    }])
}
