//! The approver's decision on a pending action: approved (and so executed) or denied.

use keel_domain::DomainError;

use crate::checks::{MAX_TEXT, line};
use crate::{ActionState, ActionStatus, ApprovalEvent, DeskState};

/// The action `action_id` of the desk.
pub(crate) fn existing<'a>(state: &'a DeskState, action_id: &str) -> Result<&'a ActionState, DomainError> {
    state
        .actions
        .get(action_id)
        .ok_or_else(|| DomainError::new("action_not_found", format!("no action {action_id}")))
}

/// The action and the approver it waits for, if it is pending.
fn pending<'a>(state: &'a DeskState, action_id: &str) -> Result<(&'a ActionState, &'a str), DomainError> {
    let action = existing(state, action_id)?;
    match (&action.status, &action.approver_id) {
        (ActionStatus::Pending, Some(approver_id)) => Ok((action, approver_id)),
        (status, _) => Err(DomainError::new(
            "action_not_pending",
            format!("action {action_id} is {}, not pending", status.as_str()),
        )),
    }
}

pub(crate) fn approve(state: &DeskState, action_id: &str, reason: &str) -> Result<Vec<ApprovalEvent>, DomainError> {
    line("reason", reason, MAX_TEXT)?;
    let (action, approver_id) = pending(state, action_id)?;
    Ok(vec![
        ApprovalEvent::ActionApproved {
            action_id: action_id.to_owned(),
            approver_id: approver_id.to_owned(),
            reason: reason.to_owned(),
        },
        ApprovalEvent::ActionExecuted {
            action_id: action_id.to_owned(),
            automatic: false,
            kind: action.kind,
            amount_cents: action.amount_cents,
        },
    ])
}

pub(crate) fn deny(state: &DeskState, action_id: &str, reason: &str) -> Result<Vec<ApprovalEvent>, DomainError> {
    line("reason", reason, MAX_TEXT)?;
    let (_, approver_id) = pending(state, action_id)?;
    Ok(vec![ApprovalEvent::ActionDenied {
        action_id: action_id.to_owned(),
        approver_id: approver_id.to_owned(),
        reason: reason.to_owned(),
    }])
}
